"A folder with a tiny causal LM (SmolLM2's tokenizer) and a small prepared chat data folder, for the config and experiment tests."
import json
from pathlib import Path
from datasets import Dataset, DatasetDict
from tunebook.core import write_json, sample_path
from tunebook.models import tiny_causal_lm

def make_tiny_workspace(
    w:Path,       # an empty folder to fill: `w/'tiny'` (model) and `w/'data'` (prepared data)
    n_test:int=4, # rows in the test split (taken from the validation rows)
)->Path:          # `w`
    "Save a tiny random model and a 32/8/`n_test` train/validation/test split of the sample chats into `w`."
    m, tok = tiny_causal_lm(hidden=32, layers=2, heads=2); m.save_pretrained(w/'tiny'); tok.save_pretrained(w/'tiny')
    rows = [json.loads(l) for l in open(sample_path('sample_chat.jsonl'))][:40]
    dd = DatasetDict(train=Dataset.from_list(rows[8:]), validation=Dataset.from_list(rows[:8]), test=Dataset.from_list(rows[:n_test]))
    dd.save_to_disk(str(w/'data'/'dataset')); write_json(w/'data'/'report.json', dict(task='chat', counts={k: len(v) for k, v in dd.items()}))
    return w

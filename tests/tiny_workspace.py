"A folder with a tiny causal LM (SmolLM2's tokenizer) and a small prepared chat data folder, for the training, distributed, config and experiment tests."
import json
from pathlib import Path
from datasets import Dataset, DatasetDict
from tunebook.core import write_json, sample_path
from tunebook.models import tiny_causal_lm

def make_tiny_workspace(
    w:Path,        # an empty folder to fill: `w/'tiny'` (model) and `w/'data'` (prepared data)
    n_test:int=4,  # rows in the test split (the first rows of the sample, as the validation split)
    n_val:int=8,   # rows in the validation split: the first `n_val` of the sample (at most 8; an odd 7 splits unevenly over 2 processes)
    n_rows:int=40, # sample rows read: the train split is rows 8 to `n_rows` (never a validation row)
)->Path:           # `w`
    "Save a tiny random model and a train/validation/test split of the sample chats into `w` (train: rows 8..`n_rows`)."
    assert n_val <= 8, 'the validation rows come from the first 8, which training never sees'
    m, tok = tiny_causal_lm(hidden=32, layers=2, heads=2); m.save_pretrained(w/'tiny'); tok.save_pretrained(w/'tiny')
    rows = [json.loads(l) for l in open(sample_path('sample_chat.jsonl'))][:n_rows]
    dd = DatasetDict(train=Dataset.from_list(rows[8:]), validation=Dataset.from_list(rows[:n_val]), test=Dataset.from_list(rows[:n_test]))
    dd.save_to_disk(str(w/'data'/'dataset')); write_json(w/'data'/'report.json', dict(task='chat', counts={k: len(v) for k, v in dd.items()}))
    return w

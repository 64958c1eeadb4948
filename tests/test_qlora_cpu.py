"""QLoRA without a GPU: bitsandbytes (>= 0.48) runs NF4 4-bit layers on the CPU, so `--method qlora` trains, saves, reloads,
evaluates and merges here, on a tiny random Llama (hidden 64: NF4 quantizes in blocks of 64 weights)."""
import json, os, subprocess, sys
from pathlib import Path
import pytest, torch
from datasets import Dataset, DatasetDict
from tunebook.core import write_json, read_json, RunDir, sample_path
from tunebook.models import tiny_causal_lm, load_tuned

pytest.importorskip('bitsandbytes')
ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', TOKENIZERS_PARALLELISM='false', MPLBACKEND='Agg',
           PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "One QLoRA run through the CLI: 6 steps, a checkpoint every 3, validation every 3."
    w = tmp_path_factory.mktemp('qlora')
    m, tok = tiny_causal_lm(hidden=64, layers=2, heads=2); m.save_pretrained(w/'tiny'); tok.save_pretrained(w/'tiny')
    rows = [json.loads(l) for l in open(sample_path('sample_chat.jsonl'))][:40]
    dd = DatasetDict(train=Dataset.from_list(rows[8:]), validation=Dataset.from_list(rows[:8]), test=Dataset.from_list(rows[:4]))
    dd.save_to_disk(str(w/'data'/'dataset')); write_json(w/'data'/'report.json', dict(task='chat', counts={k: len(v) for k, v in dd.items()}))
    cmd = [sys.executable, '-m', 'tunebook.cli', 'train', str(w/'data'), '--out', str(w/'run'), '--model', str(w/'tiny'),
           '--method', 'qlora', '--max-steps', '6', '--batch-size', '2', '--seq-len', '128', '--lr', '1e-2',
           '--eval-every', '3', '--save-every', '3', '--report-to', 'none']
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    return w

def test_trains_on_cpu(run):
    s = read_json(RunDir(run/'run').summary)
    assert s['method'] == 'qlora' and s['device'] == 'cpu' and s['steps'] == 6
    assert s['train_losses'][-1] < s['train_losses'][0] and s['max_param_change'] > 0
    from tunebook.train import latest_checkpoint
    assert latest_checkpoint(run/'run'/'checkpoints', verbose=False).name == 'checkpoint-6'

def test_reload_and_eval(run):
    "The adapter reloads on the 4-bit base (its linear layers are `Linear4bit`) and scores the validation split as training did."
    from tunebook.methods import load_qlora_tuned
    from tunebook.eval import perplexity
    from datasets import load_from_disk
    m, tok = load_qlora_tuned(run/'run'/'adapter', run/'tiny', device='cpu')
    assert type(m.base_model.model.model.layers[0].self_attn.q_proj.base_layer).__name__ == 'Linear4bit'
    val = load_from_disk(str(run/'data'/'dataset'))['validation']
    ppl = perplexity(m, tok, val, seq_len=128, task='chat')
    ppl = ppl['perplexity'] if isinstance(ppl, dict) else float(ppl)
    val_loss = read_json(RunDir(run/'run').summary)['val_loss']
    assert abs(torch.tensor(ppl).log().item() - val_loss) < 2e-2, (ppl, val_loss) # same tokens, eval kernels may differ slightly
    with m.disable_adapter(): base_ppl = perplexity(m, tok, val, seq_len=128, task='chat')
    base_ppl = base_ppl['perplexity'] if isinstance(base_ppl, dict) else float(base_ppl)
    assert ppl < base_ppl

def test_merge_dequantized(run, tmp_path):
    "The export merges into the dequantized 4-bit base and passes its fidelity check; merging into the fp32 original would not match."
    from tunebook.export import export
    out = export(run/'run', tmp_path/'merged', merged=True)
    f = read_json(out/'fidelity.json')
    assert f['passed'] and f['merged'] and f['greedy_identical'] + f['greedy_near_ties'] == f['prompts']
    print(f"QLoRA merge (dequantized NF4 + LoRA, fp32) vs 4-bit + adapter: max logit diff {f['max_logit_diff']:.3g}, mean KL {f['mean_kl']:.3g}")
    # the naive merge (adapter on the original fp32 weights) is further from what was trained than the dequantized merge
    from tunebook.methods import load_qlora_tuned
    from transformers import AutoModelForCausalLM
    ref, tok = load_qlora_tuned(run/'run'/'adapter', run/'tiny', device='cpu')
    naive = load_tuned(run/'run', dtype=torch.float32, device='cpu')[0]
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = tok(['The capital of France is Paris.'], return_tensors='pt')['input_ids']
    with torch.no_grad(): r, n, d = ref(input_ids=ids).logits, naive(input_ids=ids).logits, merged(input_ids=ids).logits
    assert (d - r).abs().max() < (n - r).abs().max()

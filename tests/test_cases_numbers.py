"""Cases 03, 10, 11, 18, 20, 25 (tests/fixtures/cases/NN): the real `tunebook` CLI on each input, as a first-time user runs it,
asserting what each case's expected behaviour is. A tiny random Llama saved with SmolLM2's tokenizer stands in for the model
(case 18 uses the bundled SmolLM2, because its point is the metric on a real model's answers)."""
import json, os, re, shutil, subprocess, sys, math
from pathlib import Path
import pytest
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT/'tests'/'fixtures'/'cases'
ENV = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TOKENIZERS_PARALLELISM='false',
           MPLBACKEND='Agg', PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))

def tb(*args, cwd):
    "Run `tunebook ARGS...` in `cwd`: (exit status, stdout + stderr)."
    r = subprocess.run([sys.executable, '-m', 'tunebook.cli', *map(str, args)], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)
    return r.returncode, r.stdout + r.stderr

def no_traceback(out): assert 'Traceback' not in out, out[-3000:]

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    from tunebook.models import tiny_causal_lm
    d = tmp_path_factory.mktemp('tiny')/'tiny'
    m, tok = tiny_causal_lm(); m.save_pretrained(d); tok.save_pretrained(d)
    return d

def case(n, tmp_path):
    w = tmp_path/f'case{n}'; shutil.copytree(CASES/n, w); return w

def max_lora_b(run): return max(float(v.abs().max()) for k, v in load_file(str(run/'adapter'/'adapter_model.safetensors')).items() if 'lora_B' in k)

def test_case_03_truncation_drops_and_counts(tiny, tmp_path):
    w = case('03', tmp_path)
    assert tb('prep', 'memo_qa.json', '--out', 'out/data', '--val', '0.2', '--test', '0.1', cwd=w)[0] == 0
    code, out = tb('train', 'out/data', '--out', 'out/run', '--model', tiny, '--max-steps', 3, '--batch-size', 4, '--seq-len', 64, '--eval-every', 1, cwd=w)
    assert code == 0, out[-3000:]
    s = json.loads((w/'out/run/summary.json').read_text())
    d = s['dropped']['train']
    assert d['no_answer_left_after_seq_len'] > 0 and d['total'] == d['no_answer_left_after_seq_len'] + d['longer_than_seq_len']
    done = [l for l in out.splitlines() if l.startswith('done:')][-1]
    assert f"dropped {d['total']} of {d['of']} training rows" in done and 'truncated' not in done
    assert s['tokens']['train']['kept'] == d['of'] - d['total']
    recs = [json.loads(l) for l in (w/'out/run/metrics.jsonl').read_text().splitlines()]
    losses = [r[k] for r in recs for k in ('loss', 'eval_loss') if k in r]
    assert losses and all(math.isfinite(x) and x > 0 for x in losses), losses
    # every example too long: refused with the reason and the fix, not trained as all-masked rows
    assert tb('prep', 'all_long.json', '--out', 'out/data_long', '--val', 0, '--test', 0, cwd=w)[0] == 0
    code, out = tb('train', 'out/data_long', '--out', 'out/run_long', '--model', tiny, '--max-steps', 3, '--batch-size', 4, '--seq-len', 64, cwd=w)
    assert code == 2 and 'dropped' in out and 'raise --seq-len' in out, out[-2000:]
    no_traceback(out); assert not (w/'out/run_long/summary.json').exists()

def test_case_10_one_row(tiny, tmp_path):
    w = case('10', tmp_path)
    code, out = tb('prep', 'one.jsonl', '--out', 'out/data', cwd=w)
    assert code == 0, out
    code, out = tb('train', 'out/data', '--out', 'out/run', '--model', tiny, '--max-steps', 3, '--batch-size', 4, cwd=w)
    assert code == 0 and 'larger than the 1 training' in out, out[-2000:]
    code, out = tb('eval', 'out/run', '--max-new-tokens', 8, cwd=w)
    assert code == 2 and "'test' split is empty" in out and '--split train' in out, out[-2000:]
    no_traceback(out)
    code, out = tb('eval', 'out/run', '--split', 'train', '--max-new-tokens', 8, cwd=w)
    assert code == 0 and 'one row: no confidence interval and no verdict' in out, out[-2000:]
    ev = json.loads((w/'out/run/eval.json').read_text())
    assert ev['n'] == 1 and all(m['rows'] == 1 and m['tuned_ci95'] is None for m in ev['metrics'].values())

def test_case_11_resume_to_train_longer(tiny, tmp_path):
    w = case('11', tmp_path)
    assert tb('prep', 'polite.jsonl', '--out', 'out/data', cwd=w)[0] == 0
    args = ('train', 'out/data', '--out', 'out/run', '--model', tiny, '--batch-size', 2, '--save-every', 1)
    assert tb(*args, '--max-steps', 3, cwd=w)[0] == 0
    first = json.loads((w/'out/run/summary.json').read_text())
    code, out = tb(*args, '--max-steps', 6, '--resume', cwd=w)
    assert code == 0, out[-2000:]
    assert len([l for l in out.splitlines() if 'continuing the finished run from checkpoint-3' in l and 're-planned for 6 steps' in l]) == 1
    s = json.loads((w/'out/run/summary.json').read_text())
    assert s['steps'] == 6 and s['planned_steps'] == 6 and len(s['lr_per_step']) == 6 and all(x > 0 for x in s['lr_per_step'])
    assert s['lr_per_step'][:3] == first['lr_per_step'][:3]  # the first three steps are the ones the 3-step run took
    assert (w/'out/run/checkpoints/checkpoint-6').is_dir()
    steps = [json.loads(l)['step'] for l in (w/'out/run/metrics.jsonl').read_text().splitlines() if '"loss"' in l]
    assert steps == [1, 2, 3, 4, 5, 6]
    # the same target again: refused, saying the run is finished and how to train it longer
    code, out = tb(*args, '--max-steps', 6, '--resume', cwd=w)
    assert code == 2 and 'finished run' in out and '--max-steps 12 --resume' in out, out[-2000:]

def test_case_18_exact_match_keeps_signs_and_decimals(tmp_path):
    "Pass 1: the bundled model answers; pass 2: its own answers as references, with typography or the number changed."
    from tunebook.metrics import load_metric
    w = case('18', tmp_path)
    assert tb('prep', 'numbers.jsonl', '--out', 'out/data', '--val', 0, '--test', 0.99, cwd=w)[0] == 0
    code, out = tb('eval', 'smollm2-135m-instruct', '--data', 'out/data', '--out', 'out/e1', '--max-new-tokens', 16, '--n-examples', 20, cwd=w)
    assert code == 0, out[-2000:]
    preds = [e['tuned'] for e in json.loads((w/'out/e1/eval.json').read_text())['examples'] if e['tuned'].strip()]
    same = [p.upper().rstrip('.') + '.' for p in preds]
    wrong, wpred = [], []
    for i, p in enumerate(preds):
        if not (nums := list(re.finditer(r'\d+', p))): continue
        m = nums[-1]
        new = m.group()[0] + '.' + m.group()[1:] if i % 2 == 0 and len(m.group()) > 1 else '-' + m.group()
        wrong.append(p[:m.start()] + new + p[m.end():]); wpred.append(p)
    assert len(wrong) >= 3, preds
    em, f1 = load_metric('exact_match'), load_metric('f1')
    assert em.compute(predictions=preds, references=same)['exact_match'] == 1.0
    assert em.compute(predictions=wpred, references=wrong)['exact_match'] == 0.0
    assert em.compute(predictions=['35', '-3', '2*2'], references=['3.5', '3', '22'], use_aggregator=False)['exact_match'] == [0, 0, 0]
    assert f1.compute(predictions=['35', '-3', '2*2'], references=['3.5', '3', '22'], use_aggregator=False)['f1'] == [0, 0, 0]

def test_case_20_eval_uses_the_runs_seq_len(tiny, tmp_path):
    from tunebook.eval import compare
    w = case('20', tmp_path)
    subprocess.run([sys.executable, 'make_logs.py'], cwd=w, check=True)
    assert tb('prep', 'long_logs.jsonl', '--out', 'out/data', '--val', 0, '--test', 0.5, cwd=w)[0] == 0
    assert tb('train', 'out/data', '--out', 'out/run', '--model', tiny, '--max-steps', 2, '--batch-size', 2, '--seq-len', 1024, cwd=w)[0] == 0
    code, out = tb('eval', 'out/run', '--max-new-tokens', 8, cwd=w)
    assert code == 0 and 'seq_len 1024' in out, out[-2000:]
    ev = json.loads((w/'out/run/eval.json').read_text())
    p = ev['metrics']['perplexity']
    assert ev['settings']['seq_len'] == 1024 and p['rows'] == p['of'] == 6 and p['tokens'] > 0 and p['tuned'] > 1.5
    # scored at 512, every answer is cut away: not a perfect 1.000 but n/a, with the reason
    rep = compare(None, w/'out/run', w/'out/data', seq_len=512, max_new_tokens=4, save=False)
    p = rep['metrics']['perplexity']
    assert p['tuned'] is None and p['tokens'] == 0 and 'no answer token within seq_len 512' in p['note']
    # half long, half short, against the base: the rows and tokens each figure rests on are reported
    assert tb('prep', 'mixed_logs.jsonl', '--out', 'out/data_mixed', '--val', 0, '--test', 0.5, cwd=w)[0] == 0
    rep = compare(str(tiny), w/'out/run', w/'out/data_mixed', seq_len=512, max_new_tokens=4, save=False)
    p = rep['metrics']['perplexity']
    assert 0 < p['rows'] < p['of'] and 'rests on' in (p['note'] or '') or p['rows'] == 1, p
    if p['rows'] == 1: assert p['diff_ci95'] is None

def test_case_25_every_step_trains(tiny, tmp_path):
    w = case('25', tmp_path)
    assert tb('prep', 'apologies.jsonl', '--out', 'out/data', cwd=w)[0] == 0
    code, out = tb('train', 'out/data', '--out', 'out/run_default', '--model', tiny, cwd=w)
    assert code == 0, out[-2000:]
    s = json.loads((w/'out/run_default/summary.json').read_text())
    assert s['steps'] == len(s['lr_per_step']) and all(x > 0 for x in s['lr_per_step'])
    assert max_lora_b(w/'out/run_default') > 0 and s['max_param_change'] > 0 and s['learned_nothing'] == []
    if s['steps'] < 10: assert 'too few to learn much' in out and '--epochs' in out
    code, out = tb('train', 'out/data', '--out', 'out/run_accum', '--model', tiny, '--batch-size', 16, '--grad-accum', 4, '--no-packing', cwd=w)
    assert code == 0 and max_lora_b(w/'out/run_accum') > 0, out[-2000:]
    code, out = tb('train', 'out/data', '--out', 'out/run_lr0', '--model', tiny, '--max-steps', 3, '--lr', 0, cwd=w)
    assert code == 2 and '--lr is 0' in out and not (w/'out/run_lr0/summary.json').exists(); no_traceback(out)
    code, out = tb('train', 'out/data', '--out', 'out/run_lrneg', '--model', tiny, '--max-steps', 3, '--lr=-0.001', cwd=w)
    assert code == 2 and out.strip().splitlines()[-1].startswith('tunebook train: error: --lr must be positive'); no_traceback(out)

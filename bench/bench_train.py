"""Training speed benchmark (slow; not run in CI): tunebook.train vs the usual recipe
(bench/baseline_trainer_peft.py: Trainer + PEFT LoRA, per-batch padding, fp32), same model (bundled SmolLM2-135M),
same length-diverse data, same seq_len (512), LoRA r16 all-linear, measured side by side in one run.

    python bench/bench_train.py [--epochs 1] [--baseline PATH] [--json FILE]     # on an idle machine: ~13 min on 2 cores

Every configuration trains one full epoch over the same 96 examples, so each sees the same real tokens. Speed is real
(non-pad) tokens per wall-clock second in the steady state: the first optimizer step (one-time warm-up) is excluded, for
the baseline exactly as its own script does, for ours from the per-step wall clock in metrics.jsonl, for the ceiling by a
warm-up step. The compute ceiling is fully packed 4x512 rows (no padding, no masks) through the same LoRA model in the
same dtype, measured in its own process and again inside each packed run's process right after training
(same warm state; separate processes differ by up to ~10% on a busy machine). Ours packs 2 rows of 512 per step, about
the baseline's 8 examples per optimizer step, so both make about as many updates per epoch. Quality: after the epoch, every adapter, the baseline's included (the baseline runs unchanged; a wrapper saves its
adapter when it returns), is scored identically: fp32 weights, loss on the validation answers' tokens. Peak RSS of each
process is polled from outside. Figures are only meaningful as ratios taken in one run; the load average is printed.
Last result: bench/results_train_cpu.json (also tabulated in nbs/23_train.ipynb, "How fast, measured").
"""
import argparse, json, os, random, subprocess, sys, tempfile, time
from pathlib import Path
import psutil

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, HF_HUB_OFFLINE='1', TOKENIZERS_PARALLELISM='false', MPLBACKEND='Agg',
           PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))

def make_data(out:Path, n:int=96, seed:int=0)->tuple:
    "Length-diverse instruction data: 70% short Q&A, 30% long document answers (< 512 tokens). Alpaca JSON + prepared folder."
    from datasets import Dataset, DatasetDict
    from tunebook.core import write_json
    rng = random.Random(seed)
    words = ('the model reads each document and writes a careful summary of its key facts, dates, names and numbers '
             'so that a reader can check every claim against the source without reading the whole text again').split()
    rows = []
    for i in range(n):
        if rng.random() < 0.7:
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            rows.append(dict(instruction=f"What is {a} plus {b}?", input='', output=f"{a} plus {b} is {a+b}."))
        else:
            k = rng.randint(180, 330)
            doc = ' '.join(rng.choice(words) for _ in range(k))
            rows.append(dict(instruction=f"Write a report on topic {i}.", input='', output=doc.capitalize() + '.'))
    (out/'alpaca.json').write_text(json.dumps(rows))
    chat = [dict(messages=[dict(role='user', content=r['instruction'], weight=None),
                           dict(role='assistant', content=r['output'], weight=None)]) for r in rows]
    hold = [dict(messages=[dict(role='user', content=f"What is {a} plus {b}?", weight=None),
                           dict(role='assistant', content=f"{a} plus {b} is {a+b}.", weight=None)])
            for a, b in [(rng.randint(2, 99), rng.randint(2, 99)) for _ in range(8)]] + chat[-4:]
    dd = DatasetDict(train=Dataset.from_list(chat), validation=Dataset.from_list(hold), test=Dataset.from_list(hold[:2]))
    dd.save_to_disk(str(out/'data'/'dataset')); write_json(out/'data'/'report.json', dict(task='chat'))
    return out/'alpaca.json', out/'data'

def run(cmd:list, timeout:int=1800)->tuple:
    "Run `cmd`, polling its resident memory; return (stdout, peak RSS in MB)."
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, pp, t = 0, psutil.Process(p.pid), time.time()
    while p.poll() is None and time.time() - t < timeout:
        try: peak = max(peak, pp.memory_info().rss)
        except psutil.Error: pass
        time.sleep(0.2)
    out = p.communicate()[0]
    if p.returncode: raise SystemExit(f"{cmd} failed:\n{out[-3000:]}")
    return out, round(peak/2**20)

BASELINE = """import runpy, sys
out, sys.argv = sys.argv[1], sys.argv[2:]
g = runpy.run_path(sys.argv[0], run_name='__main__')  # the baseline's script, unchanged
g['model'].save_pretrained(out)                       # its adapter, to score it like ours
"""
OURS = """import json, sys, time, torch
from tunebook.train import train
kw = json.loads(sys.argv[3])
s = train(sys.argv[1], sys.argv[2], r=16, targets='all-linear', dropout=0.0, eval_every=None, save_every=10**6, live_plot=False,
          verbose=False, warmup=0, **kw)
recs = [r for r in map(json.loads, open(sys.argv[2] + '/metrics.jsonl')) if 'loss' in r]
a, b = recs[0], recs[-1]  # steady state: from the end of step 1 to the end of the last step, wall clock
s['steady_tokens_per_s'] = round((b['real_tokens'] - a['real_tokens']) / (b['wall'] - a['wall']), 1)
if kw.get('packing'):     # the ceiling again, in this process right after training (same warm allocator, same thread state)
    from tunebook.models import load_base
    from tunebook.methods import apply_method
    model, tok = load_base(dtype={'bf16': torch.bfloat16, 'fp32': torch.float32}[kw['dtype']], device='cpu')
    model = apply_method(model, 'lora', r=16, targets='all-linear', dropout=0.0).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, len(tok), (4, 512), generator=torch.Generator().manual_seed(0))
    def step(): model(input_ids=ids, labels=ids).loss.backward(); opt.step(); opt.zero_grad()
    step(); t = time.perf_counter()
    for _ in range(4): step()
    s['ceiling_same_process_tokens_per_s'] = round(4*4*512/(time.perf_counter() - t), 1)
print('RESULT', json.dumps({k: s[k] for k in ('steady_tokens_per_s', 'ceiling_same_process_tokens_per_s', 'tokens_per_s', 'real_tokens',
                                              'train_time_s', 'train_loss', 'steps', 'dtype') if k in s}))
"""
CEILING = """import json, sys, time, torch
from tunebook.models import load_base
from tunebook.methods import apply_method
dtype = dict(fp32=torch.float32, bf16=torch.bfloat16)[sys.argv[1]]; steps, bs, L = int(sys.argv[2]), int(sys.argv[3]), 512
model, tok = load_base(dtype=dtype, device='cpu')
model = apply_method(model, 'lora', r=16, targets='all-linear', dropout=0.0).train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
ids = torch.randint(0, len(tok), (bs, L), generator=torch.Generator().manual_seed(0))
def step():
    model(input_ids=ids, labels=ids).loss.backward(); opt.step(); opt.zero_grad()
step(); t, c = time.perf_counter(), time.process_time()
for _ in range(steps): step()
print('RESULT', json.dumps(dict(tokens_per_s=round(steps*bs*L/(time.perf_counter()-t), 1),
                                tokens_per_cpu_s=round(steps*bs*L/(time.process_time()-c), 1))))
"""

def val_loss_fp32(run:Path, data:Path)->float:
    "Validation loss of a run's adapter, evaluated the same way for every run: fp32 weights, loss averaged over trained tokens."
    import torch
    from tunebook.models import load_tuned
    from tunebook.clean import load_prepared
    from tunebook.format import tokenize_dataset
    model, tok = load_tuned(run, dtype=torch.float32, device='cpu')
    ds, _ = load_prepared(data); val, _ = tokenize_dataset(ds['validation'], tok, seq_len=512, task='chat')
    tot = n = 0
    with torch.no_grad():
        for r in val:
            ids, lab = torch.tensor([r['input_ids']]), torch.tensor([r['labels']])
            k = int((lab[:, 1:] != -100).sum()); tot += float(model(input_ids=ids, labels=lab).loss)*k; n += k
    return round(tot/n, 4)

def result(out:str)->dict: return json.loads([l for l in out.splitlines() if l.startswith('RESULT')][-1][7:])

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--epochs', type=float, default=1.0); ap.add_argument('--ceiling-steps', type=int, default=4)
    ap.add_argument('--baseline', default=str(ROOT/'bench'/'baseline_trainer_peft.py')); ap.add_argument('--json', default=None)
    a = ap.parse_args()
    from tunebook.models import smollm2_dir
    w = Path(tempfile.mkdtemp(prefix='bench_train_')); alpaca, data = make_data(w)
    n_rows = len(json.loads(alpaca.read_text()))
    import shutil, math; shutil.copytree(ROOT/'tunebook', w/'pkg'/'tunebook') # a frozen copy: editing the tree mid-run changes nothing
    ENV['PYTHONPATH'] = str(w/'pkg') + os.pathsep + ENV['PYTHONPATH']
    (w/'ours.py').write_text(OURS); (w/'ceiling.py').write_text(CEILING); (w/'baseline.py').write_text(BASELINE)
    res, load = {}, [os.getloadavg()[0]]
    baseline_steps = math.ceil(a.epochs * n_rows / 8)
    out, rss = run([sys.executable, str(w/'baseline.py'), str(w/'baseline_adapter'), a.baseline, str(smollm2_dir()), str(alpaca), str(baseline_steps), '8', '512'])
    base = json.loads([l for l in out.splitlines() if l.startswith('{"baseline"')][-1])
    res['baseline'] = dict(base, steady_tokens_per_s=base.pop('real_tok_per_s'), steps=baseline_steps, peak_rss_mb=rss,
                       val_loss_fp32=val_loss_fp32(w/'baseline_adapter', data))
    load.append(os.getloadavg()[0])
    # examples per optimizer step as the baseline's 8: 2 packed rows of 512 hold ~8.5 examples here; unpacked, 8 rows
    for name, kw in [('ours_packed_bf16', dict(packing=True, dtype='bf16', batch_size=2)), ('ours_packed_fp32', dict(packing=True, dtype='fp32', batch_size=2)),
                     ('ours_padded_fp32', dict(packing=False, dtype='fp32', batch_size=8))]:
        out, rss = run([sys.executable, str(w/'ours.py'), str(data), str(w/name),
                        json.dumps(dict(kw, epochs=a.epochs, seq_len=512, lr=2e-4))])
        res[name] = dict(result(out), peak_rss_mb=rss, val_loss_fp32=val_loss_fp32(w/name, data)); load.append(os.getloadavg()[0])
    base_val = val_loss_fp32(smollm2_dir(), data)
    for dt in ('fp32', 'bf16'):
        out, rss = run([sys.executable, str(w/'ceiling.py'), dt, str(a.ceiling_steps), '4'])
        res[f'ceiling_{dt}'] = dict(result(out), peak_rss_mb=rss); load.append(os.getloadavg()[0])
    P, B, F, D = res['baseline']['steady_tokens_per_s'], res['ours_packed_bf16'], res['ours_packed_fp32'], res['ours_padded_fp32']
    CB, CF = res['ceiling_bf16']['tokens_per_s'], res['ceiling_fp32']['tokens_per_s']
    r = lambda a, b: round(a/b, 2)
    res['ratios'] = dict( # steady-state real tokens per wall-clock second, all measured in this run
        ours_bf16_packed_vs_baseline=r(B['steady_tokens_per_s'], P),
        ours_bf16_packed_pct_of_bf16_ceiling=round(100*B['steady_tokens_per_s']/CB, 1),
        ours_fp32_packed_vs_baseline=r(F['steady_tokens_per_s'], P),
        ours_fp32_packed_pct_of_fp32_ceiling=round(100*F['steady_tokens_per_s']/CF, 1),
        ours_bf16_packed_pct_of_ceiling_same_process=round(100*B['steady_tokens_per_s']/B['ceiling_same_process_tokens_per_s'], 1),
        ours_fp32_packed_pct_of_ceiling_same_process=round(100*F['steady_tokens_per_s']/F['ceiling_same_process_tokens_per_s'], 1),
        ours_fp32_padded_vs_baseline=r(D['steady_tokens_per_s'], P),
        packing_gain_fp32=r(F['steady_tokens_per_s'], D['steady_tokens_per_s']),
        bf16_gain_packed=r(B['steady_tokens_per_s'], F['steady_tokens_per_s']),
        ceiling_bf16_vs_fp32=r(CB, CF))
    res['memory'] = dict(peak_rss_mb_baseline=res['baseline']['peak_rss_mb'], peak_rss_mb_ours_bf16=B['peak_rss_mb'],
                         peak_rss_mb_ours_fp32=F['peak_rss_mb'], ours_bf16_over_baseline=r(B['peak_rss_mb'], res['baseline']['peak_rss_mb']),
                         ours_fp32_over_baseline=r(F['peak_rss_mb'], res['baseline']['peak_rss_mb']))
    res['quality'] = dict( # validation answers' loss (fp32) after one epoch over the same examples: the same real tokens for everyone
        examples_seen=dict(baseline=baseline_steps*8, ours=n_rows*a.epochs),
        val_loss_base_model=base_val, val_loss_baseline=res['baseline']['val_loss_fp32'], val_loss_ours_bf16=B['val_loss_fp32'],
        val_loss_ours_fp32=F['val_loss_fp32'], val_loss_ours_padded_fp32=D['val_loss_fp32'])
    res['machine'] = dict(cpus=os.cpu_count(), load_avg_after_each=[round(x, 2) for x in load], omp_threads=os.environ.get('OMP_NUM_THREADS'))
    print(json.dumps(res, indent=1))
    if a.json: Path(a.json).write_text(json.dumps(res, indent=1) + '\n')

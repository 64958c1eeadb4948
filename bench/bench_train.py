"""Training speed benchmark (slow; not run in CI): tunebook.train vs the peer recipe the seed articles teach
(/work/shared/bench/peer_baseline.py: Trainer + PEFT LoRA, per-batch padding, fp32), same model (bundled SmolLM2-135M),
same length-diverse data, same seq_len (512), LoRA r16 all-linear, measured side by side in one run.

    OMP_NUM_THREADS=1 python bench/bench_train.py [--steps 3] [--peer-steps 4] [--peer PATH]

Prints one JSON object: real (non-pad) tokens per CPU-second of each configuration (the peer runs unchanged, through a
wrapper whose `time.time` is the process CPU clock, so other jobs sharing the cores do not distort the ratios), the compute
ceiling (fully packed 512-token rows, same LoRA model, same dtype), peak RSS of each process, the validation loss of each
adapter evaluated identically in fp32, and the ratios. Figures are only meaningful as ratios taken in one run.
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

PEER_CPU = """import runpy, sys, time
time.time = time.process_time  # the peer's own timer now counts its CPU seconds (fair when the machine is shared)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""
OURS = """import json, sys, torch
from tunebook.train import train
kw = json.loads(sys.argv[3])
s = train(sys.argv[1], sys.argv[2], r=16, targets='all-linear', dropout=0.0, eval_every=None, save_every=10**6, live_plot=False,
          verbose=False, warmup=0, **kw)
print('RESULT', json.dumps({k: s[k] for k in ('tokens_per_s', 'tokens_per_cpu_s', 'real_tokens', 'train_time_s', 'train_loss', 'steps', 'dtype')}))
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
    ap.add_argument('--steps', type=int, default=3); ap.add_argument('--peer-steps', type=int, default=4)
    ap.add_argument('--peer', default='/work/shared/bench/peer_baseline.py')
    a = ap.parse_args()
    from tunebook.models import smollm2_dir
    w = Path(tempfile.mkdtemp(prefix='bench_train_')); alpaca, data = make_data(w)
    import shutil; shutil.copytree(ROOT/'tunebook', w/'pkg'/'tunebook') # a frozen copy: editing the tree mid-run changes nothing
    ENV['PYTHONPATH'] = str(w/'pkg') + os.pathsep + ENV['PYTHONPATH']
    (w/'ours.py').write_text(OURS); (w/'ceiling.py').write_text(CEILING)
    res = {}
    (w/'peer_cpu.py').write_text(PEER_CPU)
    out, rss = run([sys.executable, str(w/'peer_cpu.py'), a.peer, str(smollm2_dir()), str(alpaca), str(a.peer_steps), '8', '512'])
    peer = json.loads([l for l in out.splitlines() if l.startswith('{"peer"')][-1])
    res['peer'] = dict(peer, tokens_per_cpu_s=peer.pop('real_tok_per_s'), cpu_seconds=peer.pop('seconds'), peak_rss_mb=rss)
    for name, kw in [('ours_packed_bf16', dict(packing=True, dtype='bf16')), ('ours_packed_fp32', dict(packing=True, dtype='fp32')),
                     ('ours_padded_fp32', dict(packing=False, dtype='fp32'))]:
        out, rss = run([sys.executable, str(w/'ours.py'), str(data), str(w/name),
                        json.dumps(dict(kw, max_steps=a.steps, batch_size=4, seq_len=512))])
        res[name] = dict(result(out), peak_rss_mb=rss, val_loss_fp32=val_loss_fp32(w/name, data))
    base_val = val_loss_fp32(smollm2_dir(), data)
    for dt in ('fp32', 'bf16'):
        out, rss = run([sys.executable, str(w/'ceiling.py'), dt, str(max(1, a.steps - 1)), '4'])
        res[f'ceiling_{dt}'] = dict(result(out), peak_rss_mb=rss)
    P, B, F, D = res['peer']['tokens_per_cpu_s'], res['ours_packed_bf16'], res['ours_packed_fp32'], res['ours_padded_fp32']
    r = lambda a, b: round(a/b, 2)
    res['ratios_per_cpu_second'] = dict( # tokens per CPU-second: robust to other processes sharing the cores
        ours_bf16_packed_vs_peer=r(B['tokens_per_cpu_s'], P),
        ours_bf16_packed_pct_of_bf16_ceiling=round(100*B['tokens_per_cpu_s']/res['ceiling_bf16']['tokens_per_cpu_s'], 1),
        ours_fp32_packed_vs_peer=r(F['tokens_per_cpu_s'], P),
        ours_fp32_packed_pct_of_fp32_ceiling=round(100*F['tokens_per_cpu_s']/res['ceiling_fp32']['tokens_per_cpu_s'], 1),
        ours_fp32_padded_vs_peer=r(D['tokens_per_cpu_s'], P),
        packing_gain_fp32=r(F['tokens_per_cpu_s'], D['tokens_per_cpu_s']),
        bf16_gain_packed=r(B['tokens_per_cpu_s'], F['tokens_per_cpu_s']),
        ceiling_bf16_vs_fp32=r(res['ceiling_bf16']['tokens_per_cpu_s'], res['ceiling_fp32']['tokens_per_cpu_s']))
    res['memory'] = dict(peak_rss_mb_peer=res['peer']['peak_rss_mb'], peak_rss_mb_ours_bf16=B['peak_rss_mb'],
                         peak_rss_mb_ours_fp32=F['peak_rss_mb'], ours_bf16_over_peer=r(B['peak_rss_mb'], res['peer']['peak_rss_mb']))
    res['quality'] = dict( # same examples, same order, same real tokens: only the frozen weights' dtype differs
        val_loss_fp32_eval_ours_bf16=B['val_loss_fp32'], val_loss_fp32_eval_ours_fp32=F['val_loss_fp32'],
        val_loss_fp32_eval_ours_padded_fp32=D['val_loss_fp32'], val_loss_base_model=base_val)
    res['machine'] = dict(cpus=os.cpu_count(), load_avg=os.getloadavg(), omp_threads=os.environ.get('OMP_NUM_THREADS'))
    print(json.dumps(res, indent=1))

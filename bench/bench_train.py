"""Training benchmark (slow; not run in CI): tunebook with its defaults vs the usual recipe (bench/baseline_trainer_peft.py:
Trainer + PEFT LoRA r16 all-linear, per-batch padding, fp32), same bundled SmolLM2-135M, same data, one epoch each,
measured side by side in one run, each run in its own process.

    python bench/bench_train.py [--data DATA_DIR] [--train-rows 176] [--ours '{"batch_size": 4}'] [--before REV] [--json FILE]

Data: a built-in held-out set that is none of the lessons' data (`make_data`: deterministic, length-diverse, answers of
1 to ~320 tokens), or any prepared data folder (`--data`, `tunebook prep` output; its validation split is the held-out set).
Reported, for each run:
- whole_process_s: wall clock of the whole process (imports, load, tokenize, train, final eval, save), from outside;
- steady_tokens_per_s: real (non-pad) tokens per second from the end of step 1 to the end of the last step;
- peak_memory_mb: `tunebook.core.peak_memory_mb()` (the process's resident high-water mark) at the end of the process;
- heldout_loss_fp32: every adapter scored the same way after its epoch (fp32 weights, mean loss on the held-out answers' tokens);
- the ceiling: a bare forward/backward/AdamW loop over fully packed 4x512 rows of random tokens (no masks, no padding) through
  the same LoRA model, fp32 (and bf16 when this CPU computes bf16 natively), in its own process;
- the planner's memory estimate (`tunebook.plan.estimate`) for tunebook's run, beside its measured peak.
`--ours` adds keyword arguments to tunebook's run (default: none, i.e. defaults); `--variant NAME=JSON` adds extra tunebook runs;
`--before REV` adds tunebook's defaults as of git revision REV (its package, frozen), so before and after run side by side.
Figures are meaningful only as ratios taken in one run on a shared machine: the load average is printed.
"""
import argparse, json, math, os, random, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TOKENIZERS_PARALLELISM='false', MPLBACKEND='Agg',
           PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))

WORDS = ('amber basalt cedar delta ember fjord granite harbor iris juniper kelp lagoon meadow nectar orchid prairie quartz '
         'ripple sierra tundra umber valley willow xenon yarrow zephyr').split()

def _row(rng:random.Random, n:int)->tuple[str, str]:
    "One instruction and its answer, the answer about `n` tokens long."
    if n <= 4:
        a, b = rng.randint(2, 999), rng.randint(2, 999)
        return f"Add {a} and {b}. Reply with the number only.", str(a + b)
    kind = rng.choice(['multiples', 'sort', 'reverse'])
    if kind == 'multiples':
        k, m = rng.randint(2, 19), max(1, n//4)
        return f"List the first {m} multiples of {k}, separated by commas.", ', '.join(str(k*i) for i in range(1, m + 1))
    if kind == 'sort':
        xs = [rng.randint(0, 999) for _ in range(max(2, n//4))]
        return f"Sort these numbers from smallest to largest: {' '.join(map(str, xs))}", ' '.join(map(str, sorted(xs)))
    ws = [rng.choice(WORDS) for _ in range(max(2, n//4))]
    return f"Write these words in reverse order: {' '.join(ws)}", ' '.join(reversed(ws))

def make_data(out:Path, n_train:int=176, n_heldout:int=24, seed:int=17)->Path:
    "A prepared data folder of length-diverse chat rows (answer lengths log-uniform in 1..~320 tokens), deterministic."
    from datasets import Dataset, DatasetDict
    from tunebook.core import write_json
    rng = random.Random(seed)
    def rows(k):
        out = []
        for _ in range(k):
            q, a = _row(rng, round(math.exp(rng.uniform(0, math.log(320)))))
            out.append(dict(messages=[dict(role='user', content=q, weight=None), dict(role='assistant', content=a, weight=None)],
                            source=f"bench:{len(out) + 1}"))
        return out
    train, held = rows(n_train), rows(n_heldout)
    dd = DatasetDict(train=Dataset.from_list(train), validation=Dataset.from_list(held), test=Dataset.from_list(held[:4]))
    dd.save_to_disk(str(out/'dataset')); write_json(out/'report.json', dict(task='chat', counts=dict(train=n_train, validation=n_heldout)))
    return out

def run(cmd:list, timeout:int=3600, env:dict|None=None)->tuple[str, float]:
    "Run `cmd` in its own process; return (its output, whole-process wall seconds)."
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    dt = time.perf_counter() - t
    if p.returncode: raise RunFailed(f"exit {p.returncode}{' (killed: out of memory?)' if p.returncode == -9 else ''} after {dt:.0f} s: "
                                     + p.stdout[-300:].replace('\n', ' '))
    return p.stdout, round(dt, 1)

class RunFailed(Exception): pass

BASELINE = """import runpy, sys, json
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')  # the usual recipe's script, unchanged
from tunebook.core import peak_memory_mb
print('RESULT', json.dumps(dict(peak_memory_mb=peak_memory_mb())))
"""
OURS = """import json, sys
from tunebook.train import train
s = train(sys.argv[1], sys.argv[2], verbose=False, live_plot=False, **json.loads(sys.argv[3]))
print('RESULT', json.dumps({k: s.get(k) for k in ('steps', 'real_tokens', 'tokens_per_s', 'train_loss', 'val_loss', 'peak_memory_mb',
                                                  'dtype', 'batch_size_used', 'config')}))
"""
CEILING = """import json, sys, time, torch
from tunebook.models import load_base
from tunebook.methods import apply_method
from tunebook.core import peak_memory_mb
dtype = dict(fp32=torch.float32, bf16=torch.bfloat16)[sys.argv[1]]; steps, bs, L = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model, tok = load_base(dtype=dtype, device='cpu')
model = apply_method(model, 'lora', r=16, targets='all-linear', dropout=0.0).train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
ids = torch.randint(0, len(tok), (bs, L), generator=torch.Generator().manual_seed(0))
def step(): model(input_ids=ids, labels=ids).loss.backward(); opt.step(); opt.zero_grad()
step(); t = time.perf_counter()
for _ in range(steps): step()
print('RESULT', json.dumps(dict(tokens_per_s=round(steps*bs*L/(time.perf_counter()-t), 1), shape=f'{bs}x{L}', peak_memory_mb=peak_memory_mb())))
"""

def heldout_loss_fp32(adapter:Path, data:Path)->float:
    "Mean loss on the held-out answers' tokens, every run's adapter scored the same way (fp32 weights, one row at a time)."
    import torch
    from tunebook.models import load_tuned
    from tunebook.clean import load_prepared
    from tunebook.format import tokenize_dataset
    model, tok = load_tuned(adapter, dtype=torch.float32, device='cpu')
    ds, _ = load_prepared(data); val, _ = tokenize_dataset(ds['validation'], tok, seq_len=512, task='chat')
    tot = n = 0
    with torch.no_grad():
        for r in val:
            ids, lab = torch.tensor([r['input_ids']]), torch.tensor([r['labels']])
            k = int((lab[:, 1:] != -100).sum()); tot += float(model(input_ids=ids, labels=lab).loss)*k; n += k
    return round(tot/n, 4)

def steady(run:Path)->float:
    "Real tokens per second from the end of step 1 to the end of the last step, from the run's metrics.jsonl."
    recs = [r for r in map(json.loads, open(run/'metrics.jsonl')) if 'loss' in r and 'wall' in r]
    a, b = recs[0], recs[-1]
    return round((b['real_tokens'] - a['real_tokens'])/(b['wall'] - a['wall']), 1) if b is not a else None

def result(out:str)->dict: return json.loads([l for l in out.splitlines() if l.startswith('RESULT')][-1][7:])

def native_bf16()->bool:
    "True when this CPU computes bf16 natively (AVX512-BF16 or AMX)."
    try: flags = open('/proc/cpuinfo').read()
    except OSError: return False
    return 'avx512_bf16' in flags or 'amx_bf16' in flags

def data_stats(data:Path)->dict:
    from tunebook.clean import load_prepared
    from tunebook.format import tokenize_dataset
    from tunebook.models import load_tokenizer
    tok = load_tokenizer('smollm2-135m-instruct'); ds, _ = load_prepared(data)
    t, _ = tokenize_dataset(ds['train'], tok, seq_len=512, task='chat')
    n = sorted(len(r['input_ids']) for r in t)
    return dict(train_rows=len(n), tokens_min=n[0], tokens_median=n[len(n)//2], tokens_max=n[-1], tokens_total=sum(n))

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', default=None, help='a prepared data folder (default: the built-in length-diverse set)')
    ap.add_argument('--ours', default='{}', help="keyword arguments for tunebook's run, as JSON (default: none)")
    ap.add_argument('--variant', action='append', default=[], help='NAME=JSON: an extra tunebook run with these arguments')
    ap.add_argument('--train-rows', type=int, default=176); ap.add_argument('--heldout-rows', type=int, default=24)
    ap.add_argument('--before', default=None, help='a git revision: also run tunebook defaults as of that revision')
    ap.add_argument('--no-bf16-ceiling', action='store_true')
    ap.add_argument('--ceiling-steps', type=int, default=3); ap.add_argument('--no-baseline', action='store_true')
    ap.add_argument('--json', default=None)
    a = ap.parse_args()
    from tunebook.models import smollm2_dir
    w = Path(tempfile.mkdtemp(prefix='bench_train_'))
    data = Path(a.data) if a.data else make_data(w/'data', a.train_rows, a.heldout_rows)
    shutil.copytree(ROOT/'tunebook', w/'pkg'/'tunebook')  # a frozen copy: editing the tree mid-run changes nothing
    ENV['PYTHONPATH'] = str(w/'pkg') + os.pathsep + ENV['PYTHONPATH']
    (w/'ours.py').write_text(OURS); (w/'ceiling.py').write_text(CEILING); (w/'baseline.py').write_text(BASELINE)
    res = dict(command=' '.join(['python', 'bench/bench_train.py'] + sys.argv[1:]), data=str(a.data or 'built-in (make_data)'),
               data_stats=data_stats(data))
    load = [os.getloadavg()[0]]
    def save():  # after every stage, so a run cut short still leaves what it measured
        res['machine'] = dict(cpus=os.cpu_count(), native_bf16=native_bf16(), load_avg_after_each=[round(x, 2) for x in load],
                              omp_threads=os.environ.get('OMP_NUM_THREADS'))
        if a.json: Path(a.json).write_text(json.dumps(res, indent=1) + '\n')
    def ceiling(dt):
        out, wall = run([sys.executable, str(w/'ceiling.py'), dt, str(a.ceiling_steps), '4', '512'])
        res[f'ceiling_{dt}'] = result(out); load.append(os.getloadavg()[0]); save()
    if not a.no_baseline:
      try:
        out, wall = run([sys.executable, str(w/'baseline.py'), str(ROOT/'bench'/'baseline_trainer_peft.py'), str(smollm2_dir()),
                         str(data), str(w/'baseline_adapter')])
        b = json.loads([l for l in out.splitlines() if l.startswith('{"baseline"')][-1])
        res['usual_recipe'] = dict(whole_process_s=wall, steady_tokens_per_s=b['real_tok_per_s'], steps=b['steps'], examples=b['examples'],
                                   peak_memory_mb=result(out)['peak_memory_mb'], dtype='float32',
                                   heldout_loss_fp32=heldout_loss_fp32(w/'baseline_adapter', data))
        load.append(os.getloadavg()[0]); save()
      except RunFailed as e: res['usual_recipe'] = dict(failed=str(e)); save()
    ceiling('fp32')
    runs = [('tunebook', a.ours)] + [tuple(v.split('=', 1)) for v in a.variant]
    if a.before:  # the package as of REV, frozen, first on the path of that run only
        (w/'before').mkdir()
        tar = subprocess.run(['git', '-C', str(ROOT), 'archive', a.before, 'tunebook'], check=True, capture_output=True).stdout
        subprocess.run(['tar', '-x', '-C', str(w/'before')], input=tar, check=True)
        runs = runs[:1] + [(f'tunebook_before_{a.before}', '{}')] + runs[1:]
    for name, kw in runs:
        env = dict(ENV, PYTHONPATH=str(w/'before') + os.pathsep + ENV['PYTHONPATH']) if name.startswith('tunebook_before') else ENV
        try: out, wall = run([sys.executable, str(w/'ours.py'), str(data), str(w/name), kw], env=env)
        except RunFailed as e: res[name] = dict(args=json.loads(kw), failed=str(e)); load.append(os.getloadavg()[0]); save(); continue
        s = result(out)
        res[name] = dict(args=json.loads(kw), whole_process_s=wall, steady_tokens_per_s=steady(w/name), steps=s['steps'],
                         real_tokens=s['real_tokens'], peak_memory_mb=s['peak_memory_mb'], dtype=s['dtype'],
                         batch_size=s['batch_size_used'], grad_accum=s['config'].get('grad_accum'), seq_len=s['config'].get('seq_len'),
                         heldout_loss_fp32=heldout_loss_fp32(w/name/'adapter', data))
        from tunebook.plan import estimate
        cfg = s['config']
        e = estimate('smollm2-135m-instruct', seq_len=cfg.get('seq_len', 512), batch_size=s['batch_size_used'], grad_accum=cfg.get('grad_accum', 1),
                     dtype={'float32': 'fp32', 'bfloat16': 'bf16', 'float16': 'fp16'}[s['dtype']], device='cpu',
                     dropout=json.loads((w/name/'adapter'/'adapter_config.json').read_text()).get('lora_dropout', 0.0)) # the run's own
        res[name]['planner_estimate_mb'] = round(e['total_gb']*1024)  # today's planner (the working tree's), for every run
        res[name]['measured_over_estimate'] = round(s['peak_memory_mb']/res[name]['planner_estimate_mb'], 2)
        load.append(os.getloadavg()[0]); save()
    if native_bf16() and not a.no_bf16_ceiling: ceiling('bf16')
    base_loss = heldout_loss_fp32(smollm2_dir(), data)
    C = res['ceiling_fp32']['tokens_per_s']
    summary = {}
    for name, _ in runs:
        if 'failed' in res[name]: continue
        r = res[name]; c = res.get(f"ceiling_{'bf16' if r['dtype'] == 'bfloat16' else 'fp32'}", res['ceiling_fp32'])['tokens_per_s']
        summary[name] = dict(pct_of_fp32_ceiling=round(100*r['steady_tokens_per_s']/C, 1), pct_of_own_dtype_ceiling=round(100*r['steady_tokens_per_s']/c, 1))
        if 'steady_tokens_per_s' in res.get('usual_recipe', {}):
            u = res['usual_recipe']
            summary[name] |= dict(whole_process_speedup=round(u['whole_process_s']/r['whole_process_s'], 2),
                                  steady_speedup=round(r['steady_tokens_per_s']/u['steady_tokens_per_s'], 2),
                                  memory_ratio=round(r['peak_memory_mb']/u['peak_memory_mb'], 2),
                                  heldout_loss_delta=round(r['heldout_loss_fp32'] - u['heldout_loss_fp32'], 4))
    res['summary'] = summary
    res['heldout_loss_base_model'] = base_loss
    save(); print(json.dumps(res, indent=1))
    shutil.rmtree(w, ignore_errors=True)

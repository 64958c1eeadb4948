"""`train` under torchrun on CPU (gloo), on a tiny random Llama: 2 processes with batch b match 1 process with batch 2b,
only the main process writes and prints, checkpoints hold every rank's RNG state and are published once, a rank killed while
a checkpoint is staged fails the job (no hang, no checkpoint that looks complete), the whole job SIGKILLed resumes to the same
adapter as an uninterrupted run, and two `--nnodes 2` launches on 127.0.0.1 train like one node with 2 processes.
Every run: 6 steps, seq_len 128, lr 1e-3, LoRA dropout 0 (dropout masks depend on how rows are split between processes).
Every job writes its output (all ranks) to a file, never an unread pipe that could fill and block a rank, and is killed
after JOB_TIMEOUT with that output shown: a hang is a failure, never a stuck CI."""
import contextlib, json, os, random, shutil, socket, subprocess, sys, time
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from tunebook.core import read_json, RunDir
from tiny_workspace import make_tiny_workspace

ROOT = Path(__file__).resolve().parents[1]
# TUNEBOOK_DDP_TIMEOUT: a rank left waiting in a barrier fails after 300 s (tunebook.distributed.ddp_timeout), well inside JOB_TIMEOUT
ENV = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', TOKENIZERS_PARALLELISM='false', MPLBACKEND='Agg', TUNEBOOK_DDP_TIMEOUT='300',
           PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'): ENV.pop(k, None)
JOB_TIMEOUT = 420 # seconds any one job may run (62-97 s measured under load 9-18) before it is killed and the test fails
ARGS = dict(max_steps=6, seq_len=128, lr=1e-3, eval_every=3, save_every=1, keep_last=2, seed=1, dropout=0.0,
            verbose=False, live_plot=False, report_to='none')
DRIVER = """import json, os, sys, time, torch
torch.set_num_threads(1)
import tunebook.train as T
if pause := os.environ.get('PAUSE_IN_STAGING'): # 'rank:step': that rank stops inside staged_checkpoint after writing its part
    r, s = map(int, pause.split(':')); staged = T.staged_checkpoint
    def paused(ckdir, step, write, finish):
        def w(stage):
            write(stage)
            if step == s and int(os.environ['RANK']) == r: (stage/f'rank{r}-paused').touch(); time.sleep(3600) # the test kills it here
        return staged(ckdir, step, w, finish)
    T.staged_checkpoint = paused
T.train(sys.argv[1], sys.argv[2], model=sys.argv[3], **json.loads(sys.argv[4]))
"""
# float reduction order differs (one batch of 4 vs two all-reduced batches of 2): the final adapters agree to this relative norm
TOL = 1e-4

@pytest.fixture(scope='module')
def w(tmp_path_factory):
    "48 train / 7 validation chats (7: the two ranks evaluate 4 and 3 rows), the tiny model, the driver."
    w = make_tiny_workspace(tmp_path_factory.mktemp('ddp'), n_test=2, n_val=7, n_rows=56)
    (w/'driver.py').write_text(DRIVER)
    return w

def free_port()->int:
    "A port that binds now, below the kernel's ephemeral range (where other jobs' outgoing connections take theirs)."
    rng = Path('/proc/sys/net/ipv4/ip_local_port_range')
    lo = int(rng.read_text().split()[0]) if rng.exists() else 32768
    for _ in range(100):
        port = random.randrange(20000, lo) if lo > 21000 else random.randrange(lo, 65536) # (a system whose range starts low: anywhere)
        with socket.socket() as s:
            try: s.bind(('127.0.0.1', port)); return port
            except OSError: continue
    raise RuntimeError('no free port')

JOBS = [] # every job started, so that none outlives the tests (a failed test may leave one running)

@pytest.fixture(scope='module', autouse=True)
def no_orphans():
    yield
    for p in JOBS:
        if p.poll() is None: kill_tree(p)

def start(cmd:list, log:Path, env:dict|None=None)->subprocess.Popen:
    "Start `cmd` with all its output (every rank's, under torchrun) going to the file `log`."
    with open(log, 'w') as f: p = subprocess.Popen(cmd, env=env or ENV, stdout=f, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    p.log = Path(log); JOBS.append(p)
    return p

def launch(w, out, nproc=2, node=None, port=None, env=None, **kw)->subprocess.Popen:
    "One process (nproc=0: plain python) or a torchrun job; `node`: (node_rank, nnodes) for a multi-node launch on 127.0.0.1."
    run = [str(w/'driver.py'), str(w/'data'), str(out), str(w/'tiny'), json.dumps({**ARGS, **kw})]
    name = f"{Path(out).name}{f'-node{node[0]}' if node else ''}-{time.monotonic_ns()}"
    # --tee 3: every line a rank prints comes prefixed with the rank ([default1]:...), in the log and in a failure's message
    torchrun = [sys.executable, '-m', 'torch.distributed.run', '--tee=3', f'--log-dir={w}/ranks-{name}', f'--nproc_per_node={nproc}']
    if nproc == 0: cmd = [sys.executable] + run
    elif node is None: cmd = torchrun + ['--standalone'] + run
    else: cmd = torchrun + [f'--nnodes={node[1]}', f'--node_rank={node[0]}', '--master_addr=127.0.0.1', f'--master_port={port}'] + run
    return start(cmd, Path(w)/f'{name}.log', env)

def output(p)->str: return p.log.read_text(errors='replace')

def kill_tree(p):
    "SIGKILL the launcher and every process under it (torchrun starts each worker in its own session)."
    import psutil # (an accelerate dependency)
    try: procs = [psutil.Process(p.pid)] + psutil.Process(p.pid).children(recursive=True)
    except psutil.NoSuchProcess: procs = [] # it has ended already
    for q in procs:
        with contextlib.suppress(psutil.NoSuchProcess): q.kill()
    p.wait()

def finish(p, ok=True, timeout=JOB_TIMEOUT)->str:
    "Wait for a job; one still running after `timeout` is killed and fails the test with what its ranks printed."
    try: p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(p); pytest.fail(f'job hung: still running after {timeout} s, killed. Its output:\n' + output(p)[-6000:])
    if ok: assert p.returncode == 0, output(p)[-4000:]
    return output(p)

def wait_for(p, path:Path, timeout=JOB_TIMEOUT):
    "Wait until `path` exists while `p` runs; fail with the job's output if it ends or hangs first."
    t = time.time()
    while not path.exists():
        if p.poll() is not None: pytest.fail(f'job ended before {path.name} appeared:\n' + output(p)[-4000:])
        if time.time() - t > timeout: kill_tree(p); pytest.fail(f'no {path.name} after {timeout} s (job killed):\n' + output(p)[-6000:])
        time.sleep(0.05)

def adapter(run): return load_file(str(Path(run)/'adapter'/'adapter_model.safetensors'))
def rel_diff(a, b): return (torch.cat([(a[k]-b[k]).flatten() for k in a]).norm()/torch.cat([a[k].flatten() for k in a]).norm()).item()

def rank_logs(log_dir:Path)->dict:
    "Each local rank's (stdout, stderr), from torchrun's per-rank files (`--log-dir`, `--redirects 3`)."
    out = {}
    for e in Path(log_dir).rglob('stderr.log'): out[int(e.parent.name)] = ((e.parent/'stdout.log').read_text(), e.read_text())
    return out

@pytest.fixture(scope='module')
def runs(w):
    "The 1-process run with batch 4 and the 2-process run with batch 2 (in parallel: the machine has 2 cores either way)."
    # the 2-process run goes through the command line: `tunebook train ... --nproc 2` re-launches itself under torchrun;
    # torchrun reads its options from PET_* variables too: here, each rank's output also goes to its own files
    # it reads its own copy of the data, so that its ranks tokenize afresh (no cache left by the other run) and print what they print
    shutil.copytree(w/'data', w/'data2')
    cli = [sys.executable, '-m', 'tunebook.cli', 'train', str(w/'data2'), '--out', str(w/'two'), '--model', str(w/'tiny'), '--batch-size', '2',
           '--max-steps', '6', '--seq-len', '128', '--lr', '1e-3', '--eval-every', '3', '--save-every', '1', '--keep-last', '2',
           '--seed', '1', '--dropout', '0', '--report-to', 'none', '--nproc', '2']
    t = time.time(); p1 = launch(w, w/'one', nproc=0, batch_size=4)
    p2 = start(cli, w/'two.log', dict(ENV, PET_LOG_DIR=str(w/'two-ranks'), PET_REDIRECTS='3', PET_TEE='3'))
    finish(p1); out = finish(p2); print(f'1-process and 2-process runs: {time.time()-t:.1f} s')
    return w/'one', w/'two', out, rank_logs(w/'two-ranks')

def test_two_processes_match_one_with_double_batch(runs):
    one, two, *_ = runs
    a, b = adapter(one), adapter(two)
    assert a.keys() == b.keys()
    d = rel_diff(a, b)
    print(f'adapter relative difference, 2 x batch 2 vs 1 x batch 4: {d:.2e} (tolerance {TOL:.0e})')
    assert d < TOL
    s1, s2 = read_json(RunDir(one).summary), read_json(RunDir(two).summary)
    assert s1['real_tokens'] == s2['real_tokens'] # every rank's tokens, counted once
    assert abs(s1['val_loss'] - s2['val_loss']) < 1e-4 # evaluation gathered across ranks: the same tokens, each once
    for l1, l2 in zip(s1['train_losses'], s2['train_losses']): assert abs(l1 - l2) < 1e-4

def test_only_the_main_process_writes(runs):
    _, two, *_ = runs
    recs = [json.loads(l) for l in RunDir(two).metrics.read_text().splitlines()]
    steps = [r['step'] for r in recs if 'loss' in r]
    assert steps == sorted(set(steps)) == list(range(1, 7)) # one writer: no step logged twice
    ck = two/'checkpoints'
    assert not list(ck.glob('.staging-*')) and [p.name for p in sorted(ck.iterdir())] == ['checkpoint-5', 'checkpoint-6']
    man = read_json(ck/'checkpoint-6'/'manifest.json')
    assert {'rng_state_0.pth', 'rng_state_1.pth', 'adapter_model.safetensors', 'optimizer.pt', 'tunebook_state.json'} <= set(man['files'])
    from tunebook.train import checkpoint_problem
    assert checkpoint_problem(ck/'checkpoint-6') is None

def test_only_the_main_process_prints(runs):
    "Rank 0 prints the progress and the datasets progress bars; rank 1 prints no bar, no progress, no transformers notice."
    *_, out, logs = runs
    assert sorted(logs) == [0, 1], logs.keys()
    (out0, err0), (out1, err1) = logs[0], logs[1]
    assert 'done: 6 steps' in out0 and out.count('done: 6 steps') == 1
    assert 'tokenizing (chat)' in err0 and '%|' in err0 # the main process shows datasets' progress bars...
    assert '%|' not in err1 and 'tokenizing' not in err1, err1[-2000:] # ...the other rank none
    assert out1.strip() == '', out1[-2000:]

def test_crash_of_one_rank_then_of_the_job(w, runs):
    """SIGKILL rank 1 while checkpoint-3 is being staged: the job fails with the dead rank named (torchrun stops rank 0, which
    was waiting in a barrier), and no checkpoint-3 looks complete. Resume; SIGKILL the whole job (launcher and both workers)
    after checkpoint-4; resume again: the adapter is torch.equal to the uninterrupted 2-process run."""
    _, two, *_ = runs
    from tunebook.train import latest_checkpoint, checkpoint_problem
    import psutil
    ck, t = w/'killed'/'checkpoints', time.time()
    p = launch(w, w/'killed', nproc=2, batch_size=2, env=dict(ENV, PAUSE_IN_STAGING='1:3'))
    wait_for(p, ck/'.staging-3'/'rank1-paused') # rank 1 has written its part of checkpoint-3; rank 0 waits in the barrier
    rank1 = [q for q in psutil.Process(p.pid).children(recursive=True) if q.environ().get('RANK') == '1']
    assert len(rank1) == 1; rank1[0].kill(); t_kill = time.time()
    out = finish(p, ok=False, timeout=180)
    print(f'job ended {time.time()-t_kill:.1f} s after rank 1 was killed, exit status {p.returncode}')
    assert p.returncode != 0 and 'SIGKILL' in out and 'local_rank: 1' in out, out[-3000:] # torchrun's report names the dead rank
    assert not (w/'killed'/'summary.json').exists()
    assert not (ck/'checkpoint-3').exists() or checkpoint_problem(ck/'checkpoint-3') is not None # nothing that looks complete
    assert latest_checkpoint(ck, verbose=False).name == 'checkpoint-2' and (ck/'.staging-3').exists()
    p = launch(w, w/'killed', nproc=2, batch_size=2, resume=True)
    wait_for(p, ck/'checkpoint-4'/'manifest.json')
    assert not (ck/'.staging-3').exists() # resume removed the torn staging folder
    kill_tree(p); assert not (w/'killed'/'summary.json').exists(), 'the job finished before it was killed'
    finish(launch(w, w/'killed', nproc=2, batch_size=2, resume=True))
    print(f'rank killed + resumed + job killed + resumed, 2 processes: {time.time()-t:.1f} s')
    a, b = adapter(two), adapter(w/'killed')
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list(ck.glob('.staging-*'))
    steps = [json.loads(l)['step'] for l in RunDir(w/'killed').metrics.read_text().splitlines() if '"loss"' in l]
    assert steps == list(range(1, 7))

def test_two_nodes_on_loopback(w, runs):
    "Two `torchrun --nnodes 2` launches (one process each) rendezvous on 127.0.0.1 and train like one node with 2 processes."
    _, two, *_ = runs
    t = time.time()
    in_use = lambda p: 'EADDRINUSE' in output(p) or 'address already in use' in output(p).lower()
    for attempt in range(3): # node 0 could not bind the port (taken since we checked it, by another test worker): try another
        port = free_port(); out = w/f'nodes{attempt}'
        ps = [launch(w, out, nproc=1, node=(i, 2), port=port, batch_size=2) for i in (0, 1)]
        finish(ps[0], ok=False)
        if ps[0].returncode != 0: kill_tree(ps[1]) # node 1 alone would wait for its peer until the rendezvous times out
        else: finish(ps[1], ok=False)
        if all(p.returncode == 0 for p in ps): break
        if not in_use(ps[0]): pytest.fail('a node failed:\n' + '\n'.join(output(p)[-3000:] for p in ps))
    else: pytest.fail('port taken three times:\n' + output(ps[0])[-3000:])
    print(f'2 nodes x 1 process on loopback: {time.time()-t:.1f} s')
    a, b = adapter(two), adapter(out)
    d = rel_diff(a, b)
    print(f'adapter relative difference, 2 nodes vs 1 node x 2 processes: {d:.2e}')
    assert d < TOL

BARRIER = """import os, time
from tunebook.distributed import init_distributed, barrier, rank
init_distributed()
if rank() == 1: time.sleep(120) # never reaches the barrier
t = time.time()
try: barrier()
except Exception as e: print(f'rank 0: barrier failed after {time.time()-t:.0f} s: {type(e).__name__}: {str(e)[:200]}', flush=True); raise
"""

def test_a_stuck_rank_fails_the_barrier_instead_of_hanging(w):
    "With TUNEBOOK_DDP_TIMEOUT=5 the process group times out: rank 0's barrier raises after ~5 s and torchrun stops the job."
    (w/'barrier.py').write_text(BARRIER)
    t = time.time()
    p = start([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '--tee=3', f'--log-dir={w}/ranks-barrier',
               str(w/'barrier.py')], w/'barrier.log',
              dict(ENV, TUNEBOOK_DDP_TIMEOUT='5'))
    out = finish(p, ok=False, timeout=100)
    print(f'stuck rank: job failed after {time.time()-t:.1f} s')
    assert p.returncode != 0 and 'rank 0: barrier failed after' in out and 'Timed out' in out, out[-3000:]

def test_accelerate_configs_ship_and_parse(tmp_path):
    "Every shipped config is a valid Accelerate config, `tunebook accelerate-config NAME` prints it, and the wheel carries it."
    from accelerate.commands.config.config_args import ClusterConfig
    from tunebook.scale import ACCELERATE_CONFIGS, accelerate_config
    kinds = dict(ddp='MULTI_GPU', fsdp='FSDP', zero2='DEEPSPEED', zero3='DEEPSPEED')
    for n in ACCELERATE_CONFIGS:
        (tmp_path/f'{n}.yaml').write_text(accelerate_config(n))
        assert str(ClusterConfig.from_yaml_file(str(tmp_path/f'{n}.yaml')).distributed_type).endswith(kinds[n])
    assert ClusterConfig.from_yaml_file(str(tmp_path/'fsdp.yaml')).fsdp_config['fsdp_version'] == 2
    p = subprocess.run([sys.executable, '-m', 'tunebook.cli', 'accelerate-config', 'zero3'], env=ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout == accelerate_config('zero3')
    from tunebook.core import TunebookError
    with pytest.raises(TunebookError, match='choose one of'): accelerate_config('zero1')
    assert "'accelerate/*.yaml'" in (ROOT/'setup.py').read_text()

# Measured (CPU, torch 2.13 + gloo, 2 cores shared with other jobs, load average 3-4), reproduce with
#   OMP_NUM_THREADS=1 pytest tests/test_distributed.py -q -s --durations=0
# - 2 processes x batch 2 vs 1 process x batch 4, 6 steps at lr 1e-3: final adapters 8.05e-08 apart (relative norm;
#   tolerance 1e-4), train losses, validation loss and real tokens equal; the lesson's 4-step run: 1.9e-08.
# - two `--nnodes 2` launches on 127.0.0.1 vs one node x 2 processes: 0.0 (bitwise equal).
# - rank 1 SIGKILLed inside the staging of checkpoint-3: torchrun ends the job 0.9 s later (rank 0 SIGTERMed in its barrier,
#   report: root cause rank 1, SIGKILL); checkpoint-2 + .staging-3 left; resume, whole-job SIGKILL after checkpoint-4, resume:
#   torch.equal to the uninterrupted run.
# - times, alone / under `-n 2 --dist loadfile` beside test_qlora_cpu: 1- and 2-process runs (module fixture) 49 / 52 s,
#   rank crash + job kill + resumes 48 / 55 s, loopback 22 / 25 s, stuck-rank barrier timeout 15 / 13 s, configs 8 / 7 s;
#   the file 152 / 180 s.
# - FSDP on CPU: with use_cpu the Trainer (transformers 5.23, accelerate 1.15) does not enable FSDP and wraps the
#   model in DDP (checked under torchrun: trainer.is_fsdp_enabled False), so FSDP is left to the lesson's `#| cuda` cell.

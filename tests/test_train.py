"""Training stage, end to end on a tiny random Llama with the real SmolLM2 tokenizer (CPU, fp32):
resume after SIGKILL is bit-exact, torn checkpoints are skipped, a NaN loss aborts without saving, the CLI works."""
import json, os, signal, subprocess, sys, time, shutil
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from tunebook.core import read_json, RunDir, TunebookError
from tunebook.models import tiny_causal_lm
from tiny_workspace import make_tiny_workspace

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', TOKENIZERS_PARALLELISM='false', MPLBACKEND='Agg',
           PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
# the run every resume test repeats: 8 steps, a checkpoint after every step, LoRA dropout on (so RNG restore matters; the default is off)
ARGS = dict(max_steps=8, batch_size=2, seq_len=128, lr=1e-3, eval_every=4, save_every=1, keep_last=3, seed=3, dropout=0.05, verbose=False)
DRIVER = """import json, sys, torch
torch.set_num_threads(1)
from tunebook.train import train
kw = json.loads(sys.argv[4]); kw.setdefault('live_plot', False)
train(sys.argv[1], sys.argv[2], model=sys.argv[3], **kw)
"""

@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    "The tiny model and 48 train / 8 validation / 2 test chats (tests/tiny_workspace.py), and the driver script."
    w = make_tiny_workspace(tmp_path_factory.mktemp('train'), n_test=2, n_val=8, n_rows=56)
    (w/'driver.py').write_text(DRIVER)
    return w

def start(w, out, **kw):
    return subprocess.Popen([sys.executable, str(w/'driver.py'), str(w/'data'), str(out), str(w/'tiny'), json.dumps({**ARGS, **kw})],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

def finish(p, timeout=300):
    out, _ = p.communicate(timeout=timeout)
    assert p.returncode == 0, out[-3000:]
    return out

def kill_after_checkpoint(p, ckdir:Path, step:int, timeout=300):
    "SIGKILL `p` as soon as checkpoint-`step` exists (it is then somewhere in the next step or the next save)."
    t = time.time()
    while not (ckdir/f'checkpoint-{step}').exists():
        assert p.poll() is None, f'run ended before checkpoint-{step}: {p.stdout.read()[-2000:]}'
        assert time.time() - t < timeout
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()

def adapter(run): return load_file(str(Path(run)/'adapter'/'adapter_model.safetensors'))

@pytest.fixture(scope='module')
def reference(setup):
    finish(start(setup, setup/'ref'))
    return setup/'ref'

def test_reference_run_folder(reference):
    run = RunDir(reference)
    s = read_json(run.summary)
    assert s['steps'] == 8 and s['real_tokens'] > 0 and s['tokens_per_s'] > 0 and s['peak_memory_mb'] > 0
    for k in ('base_model', 'task', 'method', 'config', 'train_loss', 'val_loss', 'runtime_s', 'device', 'dtype', 'data_dir', 'data_report'):
        assert k in s, k
    assert run.loss_plot.exists() and any(run.logs.iterdir())
    assert [c.name for c in sorted(run.checkpoints.iterdir())] == ['checkpoint-6', 'checkpoint-7', 'checkpoint-8'] # keep_last=3
    steps = [r['step'] for r in map(json.loads, run.metrics.read_text().splitlines()) if 'loss' in r]
    assert steps == list(range(1, 9))

def test_resume_after_sigkill_is_exact(setup, reference):
    out = setup/'killed'
    kill_after_checkpoint(start(setup, out), out/'checkpoints', 2)
    kill_after_checkpoint(start(setup, out, resume=True), out/'checkpoints', 5)
    log = finish(start(setup, out, resume=True, verbose=True))
    assert 'resuming from' in log
    a, b = adapter(reference), adapter(out)
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), k
    steps = [r['step'] for r in map(json.loads, (out/'metrics.jsonl').read_text().splitlines()) if 'loss' in r]
    assert steps == list(range(1, 9)) # no step logged twice, none lost
    assert read_json(out/'summary.json')['real_tokens'] == read_json(reference/'summary.json')['real_tokens']

def test_torn_checkpoint_is_skipped(setup, reference):
    from tunebook.train import latest_checkpoint, checkpoint_problem
    out = setup/'torn'; shutil.copytree(reference, out)
    for p in ('adapter', 'summary.json', 'loss.png'): shutil.rmtree(out/p) if (out/p).is_dir() else (out/p).unlink()
    ck8, ck7 = out/'checkpoints'/'checkpoint-8', out/'checkpoints'/'checkpoint-7'
    with open(ck8/'adapter_model.safetensors', 'r+b') as f: f.truncate(100)  # killed while writing the weights
    (ck7/'manifest.json').unlink()                                            # killed before the manifest
    assert 'bytes' in checkpoint_problem(ck8) and 'manifest' in checkpoint_problem(ck7)
    assert latest_checkpoint(out/'checkpoints', verbose=False).name == 'checkpoint-6'
    log = finish(start(setup, out, resume=True, verbose=True))
    assert 'skipping checkpoint-8' in log and 'skipping checkpoint-7' in log and 'checkpoint-6' in log
    a, b = adapter(reference), adapter(out)
    for k in a: assert torch.equal(a[k], b[k]), k

def test_nan_loss_aborts_without_saving(setup):
    m, tok = tiny_causal_lm(hidden=32, layers=2, heads=2)
    with torch.no_grad(): m.model.norm.weight[0] = float('nan') # a broken base model: every loss is NaN
    m.save_pretrained(setup/'broken'); tok.save_pretrained(setup/'broken')
    out = setup/'nan'
    p = subprocess.Popen([sys.executable, str(setup/'driver.py'), str(setup/'data'), str(out), str(setup/'broken'), json.dumps(ARGS)],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log, _ = p.communicate(timeout=300)
    assert p.returncode != 0 and 'not a finite number' in log, log[-2000:]
    assert not (out/'adapter').exists() and not (out/'summary.json').exists()
    for ck in (out/'checkpoints').glob('checkpoint-*'):
        for k, t in load_file(str(ck/'adapter_model.safetensors')).items(): assert torch.isfinite(t).all(), (ck, k)

def test_refuses_to_overwrite_finished_run(setup, reference):
    from tunebook.train import train
    with pytest.raises(TunebookError, match='finished run'): train(setup/'data', reference, model=str(setup/'tiny'), max_steps=1)
    # resume on a finished run with no larger target: refused, saying how to train it longer (never a silent exit 0)
    kw = {k: v for k, v in ARGS.items() if k != 'verbose'}
    with pytest.raises(TunebookError, match='nothing to resume'): train(setup/'data', reference, model=str(setup/'tiny'), resume=True, **kw)
    before = read_json(RunDir(reference).summary)
    assert before['steps'] == 8 and all(lr > 0 for lr in before['lr_per_step']) and before['learned_nothing'] == []

def test_cli(setup, capsys):
    out = setup/'cli'
    cmd = [sys.executable, '-m', 'tunebook.cli', 'train', str(setup/'data'), '--out', str(out), '--model', str(setup/'tiny'),
           '--max-steps', '2', '--batch-size', '2', '--seq-len', '64', '--eval-every', '2', '--no-packing', '--r', '4']
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    s = read_json(out/'summary.json')
    assert s['config']['packing'] is False and s['steps'] == 2 and s['config']['r'] == 4
    from tunebook.cli import main
    assert main(cmd[3:]) == 2
    assert 'finished run' in capsys.readouterr().err

def test_planner_sanity(setup, reference):
    from transformers import LlamaConfig
    from tunebook.plan import estimate, recommend, model_shape, compare_estimate, trainable_params
    sh = model_shape(str(setup/'tiny'))
    s = read_json(reference/'summary.json')
    assert trainable_params(sh, 'lora', r=16) == s['trainable_params']  # counted from shapes == what PEFT trained
    e = estimate(str(setup/'tiny'), 'lora', seq_len=128, batch_size=2, device='cpu', shape=sh)
    assert e['fits'] and e['tokens_per_s'] > 0
    assert 0.05 < compare_estimate(e, s).loc['peak memory (GB)', 'measured_over_estimate'] < 20
    big = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, vocab_size=32000)
    assert recommend(big, 'T4', seq_len=1024)['method'] == 'qlora' and recommend(big, 'H100-80GB', seq_len=1024)['method'] == 'lora'
    assert estimate(big, 'full', device='A100-80GB')['fits'] is False

def test_dora_grad_ckpt_early_stopping_keeps_best(setup):
    "DoRA + gradient checkpointing train; with early stopping the saved adapter is the best-validation checkpoint's."
    from tunebook.train import train
    out = setup/'es'
    s = train(setup/'data', out, model=str(setup/'tiny'), method='dora', grad_ckpt=True, max_steps=6, batch_size=2, seq_len=128,
              lr=0.3, eval_every=1, early_stopping=2, keep_last=10, verbose=False, live_plot=False)
    assert s['method'] == 'dora' and s['best_step'] is not None
    best = s['restored_best_step'] or s['steps']
    ck = load_file(str(out/'checkpoints'/f'checkpoint-{best}'/'adapter_model.safetensors'))
    final = adapter(out)
    for k in ck: assert torch.equal(ck[k], final[k]), k

def test_resume_refuses_changed_settings(setup, reference):
    from tunebook.train import train
    out = setup/'changed'; shutil.copytree(reference, out)
    for p in ('adapter', 'summary.json'): shutil.rmtree(out/p) if (out/p).is_dir() else (out/p).unlink()
    kw = {**ARGS, 'lr': 5e-4, 'live_plot': False}
    with pytest.raises(TunebookError, match='Cannot resume'): train(setup/'data', out, model=str(setup/'tiny'), resume=True, **kw)

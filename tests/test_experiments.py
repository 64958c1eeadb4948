"""Sweeps and A/B comparisons end to end on a tiny random Llama (CPU, fp32): a grid sweep from the CLI with its table,
plot and best trial; an interrupted sweep resumed; the planner skipping a trial that cannot fit; Optuna trials with
pruning; `tunebook compare` on two runs."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from tunebook.core import write_json, read_json, TunebookError
from tunebook.experiments import parse_space, sweep, compare_runs
from tunebook.cli import main
from tiny_workspace import make_tiny_workspace

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', TOKENIZERS_PARALLELISM='false', MPLBACKEND='Agg',
           PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))

@pytest.fixture(scope='module')
def w(tmp_path_factory):
    w = make_tiny_workspace(tmp_path_factory.mktemp('exp'), n_test=6)
    (w/'base.yaml').write_text(f"model: {w/'tiny'}\nbatch_size: 2\nseq_len: 128\neval_every: 2\nsave_every: 1\nkeep_last: 1\nmax_steps: 4\n")
    return w

@pytest.fixture(scope='module')
def grid_sweep(w):
    out = w/'grid'
    assert main(['sweep', str(w/'data'), '--out', str(out), '--config', str(w/'base.yaml'), '--lr', '1e-3,5e-3', '--r', '4']) == 0
    return out

def test_grid_sweep_table_plot_best(grid_sweep):
    rep = read_json(grid_sweep/'sweep.json')
    assert rep['strategy'] == 'grid' and rep['n_finished'] == rep['n_planned'] == 2
    assert [t['params'] for t in rep['trials']] == [dict(lr=1e-3, r=4), dict(lr=5e-3, r=4)]
    for t in rep['trials']:
        assert t['status'] == 'done' and t['steps'] == 4 and t['best_val_loss'] > 0 and t['train_time_s'] > 0 and t['peak_memory_mb'] > 0
        assert (grid_sweep/t['run']/'adapter'/'adapter_model.safetensors').exists() and (grid_sweep/t['run']/'config.yaml').exists()
    assert rep['best']['best_val_loss'] == min(t['best_val_loss'] for t in rep['trials'])
    md = (grid_sweep/'sweep.md').read_text()
    assert f"**Best: {rep['best']['run']}**" in md and '| trial | lr | r | status |' in md and '(best)' in md
    assert (grid_sweep/'sweep.png').read_bytes()[:4] == b'\x89PNG'

def test_sweep_refuses_a_used_folder_and_a_different_sweep(w, grid_sweep, capsys):
    assert main(['sweep', str(w/'data'), '--out', str(grid_sweep), '--config', str(w/'base.yaml'), '--lr', '1e-3,5e-3', '--r', '4']) == 2
    assert 'Pass --resume' in capsys.readouterr().err
    assert main(['sweep', str(w/'data'), '--out', str(grid_sweep), '--config', str(w/'base.yaml'), '--lr', '1e-3', '--resume']) == 2
    assert 'holds a different sweep' in capsys.readouterr().err
    assert main(['sweep', str(w/'data'), '--out', str(w/'x'), '--lrr', '1e-3']) == 2          # argparse: unknown flag
    assert main(['sweep', str(w/'data'), '--out', str(w/'x'), '--r', '4,eight']) == 2
    assert "r = 'eight' is not valid" in capsys.readouterr().err

DRIVER = """import sys, json, torch
torch.set_num_threads(1)
from tunebook.cli import main
sys.exit(main(json.loads(sys.argv[1])))
"""

def _kill_when(p, path:Path, timeout=300):
    t = time.time()
    while not path.exists():
        assert p.poll() is None, p.stdout.read()[-3000:]
        assert time.time() - t < timeout; time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()

def test_interrupted_sweep_resumes(w, tmp_path):
    out = tmp_path/'sw'
    args = ['sweep', str(w/'data'), '--out', str(out), '--config', str(w/'base.yaml'), '--lr', '1e-3,2e-3,5e-3']
    (tmp_path/'d.py').write_text(DRIVER)
    p = subprocess.Popen([sys.executable, str(tmp_path/'d.py'), json.dumps(args)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _kill_when(p, out/'trial-001'/'checkpoints'/'checkpoint-2'/'manifest.json')   # killed inside the second trial
    done0 = (out/'trial-000'/'summary.json').stat().st_mtime_ns
    assert not (out/'trial-001'/'summary.json').exists() and not (out/'trial-002').exists()
    assert read_json(out/'sweep.json')['n_finished'] == 1
    assert main(args + ['--resume']) == 0
    rep = read_json(out/'sweep.json')
    assert rep['n_finished'] == 3 and all(t['status'] == 'done' and t['steps'] == 4 for t in rep['trials'])
    assert (out/'trial-000'/'summary.json').stat().st_mtime_ns == done0              # a finished trial is not trained again
    steps = [r['step'] for r in map(json.loads, (out/'trial-001'/'metrics.jsonl').read_text().splitlines()) if 'loss' in r]
    assert steps == [1, 2, 3, 4]                                                       # resumed from its checkpoint, no step twice

def test_planner_skips_a_trial_that_cannot_fit(w, tmp_path):
    rep = sweep(w/'data', tmp_path/'sw', parse_space(batch_size='2,1000000', seq_len='2048'),
                base=dict(model=str(w/'tiny'), max_steps=2, eval_every=1), verbose=False)
    st = {t['params']['batch_size']: t for t in rep['trials']}
    assert st[2]['status'] == 'done' and st[1000000]['status'] == 'skipped'
    assert 'planner estimates' in st[1000000]['note'] and not (tmp_path/'sw'/st[1000000]['run']).exists()
    assert 'skipped: the planner' in (tmp_path/'sw'/'sweep.md').read_text()

def test_optuna_trials_with_pruning_and_resume(w, tmp_path):
    pytest.importorskip('optuna')
    space = parse_space({'lr': {'low': 1e-4, 'high': 1e-2, 'log': True}, 'r': [4, 8]})
    base = dict(model=str(w/'tiny'), batch_size=2, seq_len=128, eval_every=1, max_steps=4, save_every=1)
    rep = sweep(w/'data', tmp_path/'opt', space, base=base, trials=5, seed=1, verbose=False)
    assert rep['strategy'] == 'optuna' and rep['n_finished'] == 5 and (tmp_path/'opt'/'optuna.journal').exists()
    assert {t['status'] for t in rep['trials']} <= {'done', 'pruned'} and rep['best'] is not None
    for t in rep['trials']:
        assert 1e-4 <= t['params']['lr'] <= 1e-2 and t['params']['r'] in (4, 8)
        if t['status'] == 'pruned': assert t['steps'] < 4 and 'pruned by Optuna' in t['note']
    again = sweep(w/'data', tmp_path/'opt', space, base=base, trials=5, seed=1, verbose=False, resume=True)  # finished: nothing to do
    assert [t['run'] for t in again['trials']] == [t['run'] for t in rep['trials']]

def test_compare_two_runs(w, grid_sweep, capsys):
    a, b = grid_sweep/'trial-000', grid_sweep/'trial-001'
    assert main(['compare', str(a), str(b), '--max_new_tokens', '8', '--n_examples', '2']) == 0
    out = grid_sweep/'compare-trial-000-vs-trial-001'
    res = read_json(out/'compare.json')
    assert res['n'] == 6 and res['split'] == 'test' and res['settings_diff'] == {'lr': [1e-3, 5e-3]}
    for k in ('perplexity', 'rouge1', 'bleu'):
        e = res['metrics'][k]
        assert e['diff_ci95'][0] <= e['diff'] <= e['diff_ci95'][1] and e['verdict'] in ('A better', 'B better', 'no clear difference')
    assert len(res['examples']) <= 2 and all(x['a'] != x['b'] for x in res['examples'])
    md = (out/'compare.md').read_text()
    assert '| metric | A | B | B - A [95% CI] | verdict |' in md and 'Settings that differ: lr' in md
    assert (out/'compare.png').read_bytes()[:4] == b'\x89PNG'
    assert '| perplexity ↓ |' in capsys.readouterr().out

def test_compare_needs_one_data_folder(w, grid_sweep, tmp_path):
    import shutil
    b = tmp_path/'b'; shutil.copytree(grid_sweep/'trial-001', b)
    s = read_json(b/'summary.json'); s['data_dir'] = str(tmp_path/'elsewhere'); write_json(b/'summary.json', s)
    with pytest.raises(TunebookError, match='different data folders'): compare_runs(grid_sweep/'trial-000', b, save=False)
    res = compare_runs(grid_sweep/'trial-000', b, data_dir=w/'data', limit=2, max_new_tokens=4, save=False)
    assert res['n'] == 2

def test_optuna_pruning_stops_a_clearly_worse_trial(w, tmp_path):
    "Two finished trials that reached a loss of 1.0: a real run at ~10.8 is above their median at its first evaluation."
    optuna = pytest.importorskip('optuna')
    from tunebook.experiments import optuna_pruning, run_trial
    study = optuna.create_study(direction='minimize', pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
    for _ in range(2):
        t = study.ask()
        for step in range(1, 5): t.report(1.0, step)
        study.tell(t, 1.0)
    trial, run = study.ask(), tmp_path/'pruned'
    cb = optuna_pruning(trial)
    row = run_trial(w/'data', run, dict(model=str(w/'tiny'), batch_size=2, seq_len=128, eval_every=1, max_steps=4), callbacks=[cb])
    assert cb.pruned and row['steps'] == 1 and row['status'] == 'done'  # the sweep marks it 'pruned'; the run folder is complete
    assert (run/'adapter'/'adapter_model.safetensors').exists()

def test_interrupted_optuna_sweep_resumes_the_crashed_trial(w, tmp_path):
    "SIGKILL inside Optuna's second trial: on --resume that trial is run again with the same settings in the same folder, from its checkpoint."
    pytest.importorskip('optuna')
    out = tmp_path/'opt'
    args = ['sweep', str(w/'data'), '--out', str(out), '--config', str(w/'base.yaml'), '--lr', '1e-3,5e-3', '--r', '4,8',
            '--trials', '3', '--no-prune']
    (tmp_path/'d.py').write_text(DRIVER)
    p = subprocess.Popen([sys.executable, str(tmp_path/'d.py'), json.dumps(args)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _kill_when(p, out/'trial-001'/'checkpoints'/'checkpoint-2'/'manifest.json')
    assert not (out/'trial-001'/'summary.json').exists()
    import yaml
    before = yaml.safe_load((out/'trial-001'/'config.yaml').read_text())
    assert main(args + ['--resume']) == 0
    rep = read_json(out/'sweep.json')
    assert rep['n_finished'] == 3 and [t['run'] for t in rep['trials']] == ['trial-000', 'trial-001', 'trial-002']
    assert all(t['status'] == 'done' and t['steps'] == 4 for t in rep['trials'])
    t1 = rep['trials'][1]
    assert (t1['params']['lr'], t1['params']['r']) == (before['lr'], before['r'])       # the same settings as before the crash
    steps = [r['step'] for r in map(json.loads, (out/'trial-001'/'metrics.jsonl').read_text().splitlines()) if 'loss' in r]
    assert steps == [1, 2, 3, 4]                                                       # resumed from its checkpoint

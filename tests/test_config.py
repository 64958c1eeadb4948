"""Run configs end to end on a tiny random Llama (CPU, fp32): the schema covers every training option, a run folder's
config.yaml reproduces the run bit for bit, flags override a file, bad keys and types are clear errors, and trackers:
MLflow (a local file store) read back with MLflow's own API, with no token or secret reaching it."""
import inspect, uuid
from pathlib import Path
import pytest, torch, yaml
from safetensors.torch import load_file
from tunebook.core import read_json
from tunebook.config import TrainConfig, METHOD_KWARGS, data_hash, given_flags
from tunebook.methods import method_config
from tunebook import train as ttrain
from tunebook.cli import main
from tiny_workspace import make_tiny_workspace

@pytest.fixture(scope='module')
def w(tmp_path_factory):
    return make_tiny_workspace(tmp_path_factory.mktemp('config'), n_test=4)

def cli(*args): return main(['train', *map(str, args)])

def adapter(run): return load_file(str(Path(run)/'adapter'/'adapter_model.safetensors'))

NOT_OPTIONS = {'verbose', 'live_plot', 'resume', 'overwrite', 'callbacks', 'method_kwargs'} # actions and plumbing, not settings

def test_schema_covers_train_and_its_defaults():
    sig = inspect.signature(ttrain.train).parameters
    fields = TrainConfig.model_fields
    for k, p in sig.items():
        if k in NOT_OPTIONS or p.kind is p.VAR_KEYWORD: continue
        assert k in fields, f"train() takes {k!r}, which the run-config schema lacks"
        if p.default is not inspect.Parameter.empty: assert fields[k].default == p.default, k
    for k in METHOD_KWARGS:
        assert fields[k].default == inspect.signature(method_config).parameters[k].default, k
    for k in inspect.signature(inspect.unwrap(ttrain.train_cli)).parameters:
        # launch options say how a run is started (from a file, resumed, replaced, on N processes), not what it is
        assert k in fields or k in {'config', 'resume', 'overwrite', 'nproc'}, f"train_cli takes {k!r}, which the schema lacks"

def test_config_yaml_reproduces_the_run(w, capsys):
    a, b = w/'a', w/'b'
    assert cli(w/'data', '--out', a, '--model', w/'tiny', '--max_steps', 4, '--batch_size', 2, '--seq_len', 128, '--lr', '1e-3',
               '--eval_every', 2, '--r', 4, '--seed', 3) == 0
    cfg = yaml.safe_load((a/'config.yaml').read_text())
    assert set(cfg) == set(TrainConfig.model_fields)  # every option explicit
    assert (cfg['lr'], cfg['r'], cfg['max_steps'], cfg['seed'], cfg['dtype'], cfg['device']) == (1e-3, 4, 4, 3, 'fp32', 'cpu')
    assert cfg['data_hash'] == data_hash(w/'data') and cfg['versions']['torch'] == torch.__version__
    assert '--config config.yaml' in (a/'config.yaml').read_text()
    assert cli('--config', a/'config.yaml', '--out', b) == 0  # no DATA_DIR: the file names it
    ta, tb = adapter(a), adapter(b)
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert yaml.safe_load((b/'config.yaml').read_text()) == cfg | dict(out=str(b))

def test_flags_override_the_file(w):
    assert cli('--config', w/'a'/'config.yaml', '--out', w/'c', '--max_steps', 2, '--report_to', 'none') == 0
    cfg = yaml.safe_load((w/'c'/'config.yaml').read_text())
    assert (cfg['max_steps'], cfg['lr'], cfg['r'], cfg['report_to']) == (2, 1e-3, 4, 'none')  # given flags win, the rest from the file
    assert read_json(w/'c'/'summary.json')['steps'] == 2 and not (w/'c'/'logs').exists()     # report_to=none: no TensorBoard files

def test_given_flags_compares_with_defaults():
    assert given_flags(inspect.unwrap(ttrain.train_cli), dict(lr=2e-4, r=8, out='x', packing=True)) == dict(r=8, out='x')

def test_bad_configs_are_clear_errors(w, tmp_path, capsys):
    bad = tmp_path/'bad.yaml'
    bad.write_text(f"data_dir: {w/'data'}\nlearning_rate: 1e-4\nbach_size: 2\n")
    assert cli('--config', bad, '--out', tmp_path/'r') == 2
    err = capsys.readouterr().err
    assert "unknown key 'learning_rate'; did you mean 'lr'?" in err and "unknown key 'bach_size'; did you mean 'batch_size'?" in err
    assert 'Traceback' not in err and str(bad) in err
    bad.write_text(f"data_dir: {w/'data'}\nmax_steps: many\n")
    assert cli('--config', bad, '--out', tmp_path/'r') == 2
    assert "max_steps = 'many' is not valid: expected int or null" in capsys.readouterr().err
    bad.write_text("lr: [1e-4\n")
    assert cli('--config', bad, '--out', tmp_path/'r') == 2
    assert 'not valid YAML' in capsys.readouterr().err
    assert cli('--out', tmp_path/'r') == 2 and 'DATA_DIR is required' in capsys.readouterr().err
    assert cli(w/'data', '--out', tmp_path/'r', '--report_to', 'mlfow') == 2
    assert "unknown tracker 'mlfow'; did you mean 'mlflow'?" in capsys.readouterr().err
    assert not (tmp_path/'r').exists()

def test_changed_data_warns_when_reproducing(w, tmp_path, capsys):
    import shutil
    d2 = tmp_path/'data2'; shutil.copytree(w/'data', d2)
    (d2/'report.json').write_text((d2/'report.json').read_text().replace('"chat"', '"chat" '))
    cfg = yaml.safe_load((w/'a'/'config.yaml').read_text()) | dict(data_dir=str(d2), max_steps=1)
    (tmp_path/'run.yaml').write_text(yaml.safe_dump(cfg))
    assert cli('--config', tmp_path/'run.yaml', '--out', tmp_path/'r') == 0
    assert 'is not the data this config was written for' in capsys.readouterr().err

def test_mlflow_logs_params_and_metrics_and_no_secret(w, tmp_path, monkeypatch, capfd):
    pytest.importorskip('mlflow')
    canary = f"CANARY{uuid.uuid4().hex}"
    for k in ('HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'MLFLOW_TRACKING_TOKEN', 'MLFLOW_TRACKING_PASSWORD', 'WANDB_API_KEY', 'OPENAI_API_KEY'):
        monkeypatch.setenv(k, f"{k.lower()}_{canary}")
    uri = f"sqlite:///{tmp_path/'mlflow.db'}"  # a local database file: MLflow's recommended store (its ./mlruns folder store is deprecated)
    monkeypatch.setenv('MLFLOW_TRACKING_URI', uri)
    monkeypatch.setenv('MLFLOW_EXPERIMENT_NAME', 'tunebook-test')
    run = tmp_path/'ml'
    assert cli(w/'data', '--out', run, '--model', w/'tiny', '--max_steps', 3, '--batch_size', 2, '--seq_len', 128,
               '--eval_every', 2, '--lr', '1e-3', '--report_to', 'tensorboard,mlflow') == 0
    from mlflow.tracking import MlflowClient
    c = MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name('tunebook-test')
    runs = c.search_runs([exp.experiment_id])
    assert len(runs) == 1
    r = runs[0]
    assert float(r.data.params['learning_rate']) == 1e-3 and int(r.data.params['max_steps']) == 3
    assert 'loss' in r.data.metrics and 'eval_loss' in r.data.metrics
    assert len(c.get_metric_history(r.info.run_id, 'loss')) == 3
    assert r.info.run_name == 'ml' and any((run/'logs').iterdir())  # TensorBoard too
    out, err = capfd.readouterr()
    assert canary not in out + err
    for root in (tmp_path,):  # the MLflow database, its artifacts and the run folder
        for p in root.rglob('*'):
            if p.is_file(): assert canary.encode() not in p.read_bytes(), p

def test_wandb_offline_logs_and_no_secret(w, tmp_path, monkeypatch, capfd):
    "W&B in offline mode: the run is written locally (no network), holds the metrics, and no canary token."
    pytest.importorskip('wandb')
    canary = f"CANARY{uuid.uuid4().hex}"
    for k in ('HF_TOKEN', 'WANDB_API_KEY', 'MLFLOW_TRACKING_TOKEN'): monkeypatch.setenv(k, f"{k.lower()}_{canary}")
    monkeypatch.setenv('WANDB_MODE', 'offline'); monkeypatch.setenv('WANDB_DIR', str(tmp_path))
    monkeypatch.setenv('WANDB_PROJECT', 'tunebook-test'); monkeypatch.setenv('WANDB_SILENT', 'true')
    run = tmp_path/'wb'
    assert cli(w/'data', '--out', run, '--model', w/'tiny', '--max_steps', 2, '--batch_size', 2, '--seq_len', 128,
               '--eval_every', 1, '--report_to', 'wandb') == 0
    import wandb
    wandb.finish()  # a CLI process finishes its run at exit; in-process we close it to read it back
    runs = list((tmp_path/'wandb').glob('offline-run-*'))
    assert len(runs) == 1
    import time
    keys, t = (b'train/loss', b'eval/loss', b'learning_rate'), time.time()
    while True:  # the offline run's record log (protobuf), what `wandb sync` uploads; the W&B service may still be writing it
        log = next(runs[0].glob('run-*.wandb')).read_bytes()
        if all(k in log for k in keys) or time.time() - t > 30: break
        time.sleep(0.5)
    for k in keys: assert k in log, k
    out, err = capfd.readouterr()
    assert canary not in out + err
    for p in tmp_path.rglob('*'):
        if p.is_file(): assert canary.encode() not in p.read_bytes(), p

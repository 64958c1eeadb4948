"""Bad-input sweep of `tunebook train`, `eval`, `push`, `chat` and `export`: every wrong argument or file gets a message and
exit status 2, never a traceback."""
import json, os, subprocess, sys
from pathlib import Path
import pytest
from datasets import Dataset, DatasetDict
from tunebook.core import write_json
from tunebook.models import tiny_causal_lm

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TOKENIZERS_PARALLELISM='false',
           MPLBACKEND='Agg', PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))

@pytest.fixture(scope='module')
def w(tmp_path_factory):
    w = tmp_path_factory.mktemp('bad')
    m, tok = tiny_causal_lm(hidden=32, layers=1, heads=2); m.save_pretrained(w/'tiny'); tok.save_pretrained(w/'tiny')
    rows = [dict(messages=[dict(role='user', content=f'q{i}', weight=None), dict(role='assistant', content=f'a{i}', weight=None)]) for i in range(6)]
    dd = DatasetDict(train=Dataset.from_list(rows[:4]), validation=Dataset.from_list(rows[4:5]), test=Dataset.from_list(rows[5:]))
    dd.save_to_disk(str(w/'data'/'dataset')); write_json(w/'data'/'report.json', dict(task='chat'))
    from tunebook.train import train
    train(w/'data', w/'run', model=str(w/'tiny'), max_steps=1, batch_size=2, seq_len=64, verbose=False, live_plot=False)
    (w/'file.txt').write_text('not a folder')
    (w/'broken_run').mkdir(); (w/'broken_run'/'summary.json').write_text('{not json')
    (w/'empty').mkdir()
    (w/'no_adapter').mkdir(); write_json(w/'no_adapter'/'summary.json', dict(base_model='x', data_dir=str(w/'data')))
    (w/'bad_adapter'/'adapter').mkdir(parents=True); (w/'bad_adapter'/'adapter'/'adapter_config.json').write_text('{"peft_type": "LORA"')
    return w

SWEEP = [ # (name, arguments with {w} for the work folder)
    ('train: no such data folder', 'train {w}/nowhere --out {w}/o1 --model {w}/tiny'),
    ('train: data is a file', 'train {w}/file.txt --out {w}/o2 --model {w}/tiny'),
    ('train: data folder not prepared', 'train {w}/empty --out {w}/o3 --model {w}/tiny'),
    ('train: no --out', 'train {w}/data --model {w}/tiny'),
    ('train: model folder without config', 'train {w}/data --out {w}/o4 --model {w}/empty'),
    ('train: unknown model offline', 'train {w}/data --out {w}/o5 --model nobody/no-such-model'),
    ('train: unknown method', 'train {w}/data --out {w}/o6 --model {w}/tiny --method magic'),
    ('train: unknown dtype', 'train {w}/data --out {w}/o7 --model {w}/tiny --dtype fp8'),
    ('train: unknown task', 'train {w}/data --out {w}/o8 --model {w}/tiny --task poetry'),
    ('train: not a number', 'train {w}/data --out {w}/o9 --model {w}/tiny --max-steps many'),
    ('train: unknown option', 'train {w}/data --out {w}/o10 --model {w}/tiny --learning-rate 1e-3'),
    ('train: finished run, no flag', 'train {w}/data --out {w}/run --model {w}/tiny'),
    ('eval: no such run', 'eval {w}/nowhere'),
    ('eval: run without adapter', 'eval {w}/no_adapter'),
    ('eval: broken summary.json', 'eval {w}/broken_run'),
    ('eval: no such split', 'eval {w}/run --split dev'),
    ('eval: data is a file', 'eval {w}/run --data {w}/file.txt'),
    ('eval: broken adapter config', 'eval {w}/bad_adapter --data {w}/data'),
    ('eval: negative n-examples', 'eval {w}/run --n-examples -1'),
    ('push: no repo id', 'push {w}/run --dry-run {w}/d1'),
    ('push: bad repo id', 'push {w}/run --repo-id "not a repo" --dry-run {w}/d2'),
    ('push: not a run folder', 'push {w}/empty --repo-id ada/x --dry-run {w}/d3'),
    ('push: no such run', 'push {w}/nowhere --repo-id ada/x --dry-run {w}/d4'),
    ('push: offline real push', 'push {w}/run --repo-id ada/x'),
    ('chat: no such run', 'chat {w}/nowhere --prompt hi'),
    ('chat: empty folder', 'chat {w}/empty --prompt hi'),
    ('chat: zero budget', 'chat {w}/run --prompt hi --max-new-tokens 0'),
    ('chat: context smaller than reply', 'chat {w}/run --prompt hi --max-new-tokens 64 --max-context-tokens 16'),
    ('export: no such run', 'export {w}/nowhere --out {w}/e1'),
    ('export: empty folder', 'export {w}/empty --out {w}/e2'),
]

@pytest.mark.parametrize('name,args', SWEEP, ids=[n for n, _ in SWEEP])
def test_bad_input_gives_a_message_and_exit_2(w, name, args):
    import shlex
    argv = shlex.split(args.format(w=w))
    env = dict(ENV, HF_TOKEN='hf_' + 'x'*34) if name == 'push: offline real push' else ENV
    r = subprocess.run([sys.executable, '-m', 'tunebook.cli', *argv], env=env, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 2, f'{name}: exit {r.returncode}\n{out[-2000:]}'
    assert 'Traceback' not in out, f'{name}:\n{out[-3000:]}'
    assert out.strip(), name
    if name == 'push: offline real push': assert 'hf_xxxx' not in out

"Model card, staging, push pre-flight (offline), and the canary test: a token never reaches a file or an output."
import os, sys, json, subprocess, uuid
import pytest, yaml, torch
from pathlib import Path
from huggingface_hub import ModelCard
from tunebook.core import TunebookError, RunDir, read_json, write_json
from tunebook.export import export
from tunebook.demo import demo_run
from tunebook.hub import model_card, stage_upload, push, preflight, allowed_files, get_token, _check_access, usage_code
from tunebook.chat import Chat

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    return demo_run(tmp_path_factory.mktemp('run')/'run', base='tiny', steps=1)

def _meta(card): return yaml.safe_load(card.content.split('---')[1])

def test_card_metadata_and_sections(run):
    card = model_card(run.root, repo_id='ada/tiny-demo', datasets=['ada/data'])
    m = _meta(card)
    assert m['library_name'] == 'peft' and m['pipeline_tag'] == 'text-generation' and m['license'] == 'apache-2.0'
    assert m['datasets'] == ['ada/data'] and 'base_model' not in m  # a local tiny base has no Hub id
    ev = read_json(run.eval_json)
    res = m['model-index'][0]['results'][0]
    assert res['metrics'][0]['type'] == 'answer_loss' and res['metrics'][0]['value'] == ev['metrics']['answer_loss']['tuned']
    assert res['dataset']['type'] == 'ada/data'
    for h in ('Intended use', 'How to use it', 'Training data', 'Training configuration', 'Evaluation', 'Limitations'): assert f'## {h}' in card.text
    s = read_json(run.summary)
    assert s['data_report']['hashes']['train'] in card.text
    assert f"| optimizer steps | {s['steps']} |" in card.text
    assert ModelCard(card.content).data.eval_results[0].metric_value == ev['metrics']['answer_loss']['tuned']

def test_card_maps_alias_to_hub_id_and_never_copies_rows(run, tmp_path):
    r = tmp_path/'run'; import shutil; shutil.copytree(run.root, r)
    s = read_json(r/'summary.json'); s['base_model'] = 'smollm2-135m-instruct'; s['config']['hub_token'] = 'hf_SECRETSECRETSECRETSECRET1'
    write_json(r/'summary.json', s)
    card = model_card(r)
    assert _meta(card)['base_model'] == 'HuggingFaceTB/SmolLM2-135M-Instruct'
    assert 'hub_token' not in card.content and 'SECRETSECRET' not in card.content
    from tunebook.demo import DEMO_CHATS
    for q, a in DEMO_CHATS: assert a not in card.content
    for ex in read_json(r/'eval.json')['examples']: assert ex['reference'] not in card.content

def test_card_without_eval_and_bad_json(run, tmp_path):
    r = tmp_path/'run'; import shutil; shutil.copytree(run.root, r)
    (r/'eval.json').unlink()
    card = model_card(r, merged=True)
    assert 'model-index' not in _meta(card) and 'not been evaluated' in card.text and _meta(card)['library_name'] == 'transformers'
    (r/'eval.json').write_text('{"metrics": ')
    with pytest.raises(TunebookError, match='eval.json, line 1'): model_card(r)

def test_usage_code_runs_against_a_staged_folder(run, tmp_path):
    staged = stage_upload(run.root, tmp_path/'staged', repo_id='ada/tiny-demo')
    base = read_json(run.adapter/'adapter_config.json')['base_model_name_or_path']
    code = usage_code(str(staged), base)
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={**os.environ, 'PYTHONPATH': ''}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'import tunebook' not in code and 'from tunebook' not in code

def test_staging_is_exactly_the_allowlist(run, tmp_path):
    for merged in (False, True):
        st = stage_upload(run.root, tmp_path/f'st{merged}', merged=merged, repo_id='ada/x')
        names = sorted(p.name for p in st.iterdir())
        assert 'README.md' in names and 'fidelity.json' in names
        assert ('model.safetensors' in names) == merged and ('adapter_model.safetensors' in names) != merged
        import fnmatch
        assert all(any(fnmatch.fnmatchcase(n, p) for p in allowed_files(merged)) for n in names)
        assert not any(p.is_dir() for p in st.iterdir())
    assert (run.card).exists()  # the run keeps its card

def test_dry_run_needs_no_token(run, tmp_path, monkeypatch):
    monkeypatch.delenv('HF_TOKEN', raising=False); monkeypatch.setenv('HF_HOME', str(tmp_path/'hf_home'))
    assert get_token() is None
    assert push(run.root, 'ada/tiny', dry_run=tmp_path/'dry') == str(tmp_path/'dry')
    with pytest.raises(TunebookError, match='No Hugging Face token found'): push(run.root, 'ada/tiny')
    assert not (run.root/'.push').exists()

def test_preflight_offline_is_clear(monkeypatch):
    monkeypatch.setenv('HF_TOKEN', 'hf_NotRealNotRealNotRealNotReal1')
    with pytest.raises(TunebookError, match='HF_HUB_OFFLINE') as e: preflight('ada/tiny')
    assert 'NotReal' not in str(e.value)
    with pytest.raises(TunebookError, match='USER/NAME'): preflight('no-namespace')

def test_check_access():
    me = {'name': 'ada', 'orgs': [{'name': 'lab'}], 'auth': {'accessToken': {'role': 'write'}}}
    assert _check_access(me, 'lab/x') == 'ada'
    with pytest.raises(TunebookError, match='read-only'): _check_access({**me, 'auth': {'accessToken': {'role': 'read'}}}, 'ada/x')
    fg = {'role': 'fineGrained', 'fineGrained': {'scoped': [{'entity': {'name': 'ada'}, 'permissions': ['repo.write']}]}}
    assert _check_access({**me, 'auth': {'accessToken': fg}}, 'ada/x') == 'ada'
    with pytest.raises(TunebookError, match='no write permission'): _check_access({**me, 'auth': {'accessToken': fg}}, 'lab/x')

def _cli(*args, env=None, input=None):
    return subprocess.run([sys.executable, '-c', 'import sys; from tunebook.cli import main; sys.exit(main())', *args],
                          capture_output=True, text=True, env=env, input=input)

def _train_run(out:Path, env)->Path:
    "A real training run with `tunebook train` when the training stage exists, else the export lesson's demo run."
    try: import tunebook.train  # noqa
    except ImportError: return demo_run(out, base='tiny', steps=2).root
    data = Path(__file__).parents[1]/'tunebook'/'samples'/'sample_chat.jsonl'
    prep = _cli('prep', str(data), '--out', str(out.parent/'data'), env=env)
    assert prep.returncode == 0, prep.stderr[-2000:]
    from tunebook.demo import tiny_base
    tr = _cli('train', str(out.parent/'data'), '--out', str(out), '--model', tiny_base(), '--max_steps', '2', '--seq_len', '128',
              '--batch_size', '2', '--eval_every', '1', env=env)
    assert tr.returncode == 0, tr.stderr[-2000:]
    return out

def test_canary_token_is_never_written_or_printed(tmp_path, monkeypatch, capfd):
    "HF_TOKEN set to a canary: every writer of the pipeline runs; the canary appears in no file and no output."
    canary = f"hf_CANARY{uuid.uuid4().hex}"
    monkeypatch.setenv('HF_TOKEN', canary)
    env = {**os.environ, 'HF_TOKEN': canary}
    outputs = []
    root = _train_run(tmp_path/'run', env)
    export(root, tmp_path/'adapter'); export(root, tmp_path/'merged', merged=True)
    model_card(root, repo_id='ada/canary').save(tmp_path/'card.md')
    stage_upload(root, tmp_path/'staged', repo_id='ada/canary')
    push(root, 'ada/canary', dry_run=tmp_path/'dry', merged=True)
    with pytest.raises(TunebookError) as e: push(root, 'ada/canary')  # offline: the pre-flight fails
    outputs.append(str(e.value))
    chat = Chat(root, max_new_tokens=4); outputs.append(chat.ask('hello'))
    for args in (['export', str(root), '--out', str(tmp_path/'cli_export')],
                 ['push', str(root), '--repo-id', 'ada/canary', '--dry-run', str(tmp_path/'cli_dry')],
                 ['push', str(root), '--repo-id', 'ada/canary'],
                 ['chat', str(root), '--prompt', 'hi', '--max_new_tokens', '4']):
        r = _cli(*args, env=env); outputs += [r.stdout, r.stderr]
    assert r.returncode == 0 and 'HF_HUB_OFFLINE' in outputs[-3]  # the real push (stderr) failed for the right reason
    cap = capfd.readouterr(); outputs += [cap.out, cap.err]
    for o in outputs: assert canary not in o
    files = [p for p in tmp_path.rglob('*') if p.is_file()]
    assert len(files) > 20
    leaked = [str(p) for p in files if canary.encode() in p.read_bytes()]
    assert not leaked, leaked
    assert (root/'README.md').exists() and (tmp_path/'dry'/'model.safetensors').exists()

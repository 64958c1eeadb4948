"""Every setting is checked against the model and the data up front: one clear message (exit 2 from the CLI), or capped
with a printed note; never a library traceback or a silent overflow. One test per setting."""
import json, os, subprocess, sys
from pathlib import Path
import pytest, torch
from datasets import Dataset, DatasetDict
from tunebook.core import TunebookError, write_json, read_json
from tunebook.models import tiny_causal_lm, load_tuned

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TOKENIZERS_PARALLELISM='false',
           MPLBACKEND='Agg', PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
CHATS = [[{'role': 'user', 'content': f'Say number {i}.'}, {'role': 'assistant', 'content': f'Number {i}, politely.'}] for i in range(12)]

def tb(*args, cwd=None, input=None):
    r = subprocess.run([sys.executable, '-m', 'tunebook.cli', *map(str, args)], cwd=cwd, env=ENV, capture_output=True, text=True,
                       timeout=600, input=input)
    return r.returncode, r.stdout + r.stderr

@pytest.fixture(scope='module')
def w(tmp_path_factory):
    "A tiny model (64 positions), a prepared data folder and a finished 2-step run."
    w = tmp_path_factory.mktemp('settings')
    m, tok = tiny_causal_lm(hidden=32, layers=1, heads=2)
    m.config.max_position_embeddings = 96; m.save_pretrained(w/'tiny'); tok.save_pretrained(w/'tiny')
    rows = [dict(messages=[dict(x, weight=None) for x in c]) for c in CHATS]
    dd = DatasetDict(train=Dataset.from_list(rows[:8]), validation=Dataset.from_list(rows[8:10]), test=Dataset.from_list(rows[10:]))
    dd.save_to_disk(str(w/'data'/'dataset')); write_json(w/'data'/'report.json', dict(task='chat', counts={k: len(v) for k, v in dd.items()}))
    from tunebook.train import train
    train(w/'data', w/'run', model=str(w/'tiny'), max_steps=2, batch_size=2, seq_len=64, verbose=False, live_plot=False)
    return w

def train_args(w, out, *extra): return ('train', w/'data', '--out', w/out, '--model', w/'tiny', '--seq-len', 64, *extra)

@pytest.mark.parametrize('opt,val,msg', [('--lr', 0, '--lr is 0'), ('--lr', -1e-3, '--lr must be positive'), ('--lr', 'nan', '--lr must be a finite number'),
    ('--batch-size', 0, '--batch-size must be at least 1'), ('--grad-accum', 0, '--grad-accum must be at least 1'),
    ('--max-steps', 0, '--max-steps must be at least 1'), ('--epochs', 0, '--epochs must be more than 0'),
    ('--eval-every', 0, '--eval-every must be at least 1'), ('--save-every', -1, '--save-every must be at least 1'),
    ('--keep-last', -1, '--keep-last must be at least 0')])
def test_train_settings_refused_up_front(w, opt, val, msg):
    code, out = tb(*train_args(w, 'bad'), f'{opt}={val}')
    assert code == 2 and msg in out and 'Traceback' not in out, out[-1500:]
    assert not (w/'bad').exists()

def test_train_seq_len_beyond_model_positions(w):
    code, out = tb('train', w/'data', '--out', w/'long', '--model', w/'tiny', '--seq-len', 128, '--max-steps', 1)
    assert code == 2 and '--seq-len 128 is longer than' in out and '96 positions' in out, out[-1500:]

def test_train_batch_larger_than_dataset_is_capped_with_a_note(w):
    code, out = tb(*train_args(w, 'big', '--batch-size', 64, '--max-steps', 1, '--no-packing'))
    assert code == 0 and 'note: --batch-size 64 is larger than the 8 training rows: each batch holds 8' in out, out[-1500:]
    assert read_json(w/'big'/'summary.json')['batch_size_used'] == 8

def test_lora_options_on_a_method_without_lora(w):
    code, out = tb(*train_args(w, 'ia3', '--method', 'ia3', '--r', 4, '--max-steps', 1))
    assert code == 2 and '--r and --targets set the LoRA adapter' in out

def test_a_run_that_learned_nothing_says_so(w, capsys):
    "A learning rate so small that fp32 rounds every update to 0: the weights do not move, and the summary says so loudly."
    from tunebook.train import train
    s = train(w/'data', w/'frozen', model=str(w/'tiny'), max_steps=3, batch_size=2, seq_len=64, lr=1e-46, verbose=True, live_plot=False)
    assert s['max_param_change'] == 0.0 and any('did not change' in x for x in s['learned_nothing'])
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith('WARNING: this run learned nothing')

@pytest.mark.parametrize('val', [0, -5])
def test_eval_max_new_tokens(w, val):
    code, out = tb('eval', w/'run', f'--max-new-tokens={val}')
    assert code == 2 and '--max-new-tokens must be a whole number of at least 1' in out, out[-1500:]

@pytest.mark.parametrize('opt', ['--batch-size', '--limit'])
def test_eval_batch_and_limit(w, opt):
    code, out = tb('eval', w/'run', f'{opt}=0')
    assert code == 2 and f'{opt} must be at least 1' in out

def test_generation_budget_capped_to_model_positions(w):
    from tunebook.eval import generate
    m, tok = load_tuned(w/'run', device='cpu', dtype=torch.float32)
    prompt = 'words ' * 40
    with pytest.MonkeyPatch.context() as mp:
        import io, contextlib
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf): out = generate(m, tok, [prompt], max_new_tokens=500)
    assert 'capped' in buf.getvalue() and "96 positions" in buf.getvalue() and isinstance(out[0], str)
    with pytest.raises(TunebookError, match='reads at most 96 positions'): generate(m, tok, ['words ' * 200], max_new_tokens=4)

def test_chat_budgets(w, capsys):
    from tunebook.chat import Chat
    with pytest.raises(TunebookError, match='--max-new-tokens must be a whole number'): Chat(w/'run', max_new_tokens=0)
    with pytest.raises(TunebookError, match='must be smaller than max_context_tokens'): Chat(w/'run', max_new_tokens=64, max_context_tokens=32)
    chat = Chat(w/'run', max_new_tokens=8, max_context_tokens=4096)
    assert chat.max_context_tokens == 96 and 'using 96' in capsys.readouterr().out
    for i in range(6): chat.ask(f'message {i} with a few more words')
    assert chat.dropped['default'] > 0 and 'dropped the 1 oldest exchange' in capsys.readouterr().out

def test_chat_cli_settings(w):
    code, out = tb('chat', w/'run', '--prompt', 'hi', '--max-new-tokens', -1)
    assert code == 2 and '--max-new-tokens must be a whole number' in out and 'Traceback' not in out
    code, out = tb('chat', w/'run', '--prompt', 'hi', '--max-new-tokens', 4, '--max-context-tokens', 100000)
    assert code == 0 and 'using 96' in out, out[-1500:]

def test_adapter_on_a_base_of_another_shape(w):
    other = w/'other'
    m, tok = tiny_causal_lm(hidden=64, layers=1, heads=4); m.save_pretrained(other); tok.save_pretrained(other)
    with pytest.raises(TunebookError) as e: load_tuned(w/'run', base=other, device='cpu')
    msg = str(e.value)
    assert str(other) in msg and 'hidden_size 32 vs 64' in msg and len(msg.splitlines()) == 1

def test_adapter_base_reference_resolves_from_another_folder(w, tmp_path):
    ref = json.loads((w/'run'/'adapter'/'tunebook_base.json').read_text())
    assert Path(ref['name']).is_absolute() and ref['fingerprint']['shape']['hidden_size'] == 32 and len(ref['fingerprint']['sha256']) == 16
    # a run trained with a *relative* --model path still loads when you work from somewhere else
    code, out = tb('train', 'data', '--out', 'rel', '--model', 'tiny', '--seq-len', 64, '--max-steps', 1, cwd=w)
    assert code == 0, out[-1500:]
    assert json.loads((w/'rel'/'adapter'/'adapter_config.json').read_text())['base_model_name_or_path'] == str((w/'tiny').resolve())
    code, out = tb('chat', w/'rel', '--prompt', 'hi', '--max-new-tokens', 2, cwd=tmp_path)
    assert code == 0, out[-1500:]

@pytest.mark.parametrize('repo', ['no-slash', 'a/b/c', 'bad name/x', '/x', 'a/' + 'x'*100])
def test_push_dry_run_checks_the_repo_id(w, tmp_path, repo):
    code, out = tb('push', w/'run', '--repo-id', repo, '--dry-run', tmp_path/'dry')
    assert code == 2 and 'is not a repo id' in out and not (tmp_path/'dry').exists(), out[-1500:]

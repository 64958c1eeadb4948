"Chat on a tiny model: per-user histories, the context budget, batched == one at a time, the CLI loop."
import sys, subprocess
import pytest
from tunebook.core import TunebookError
from tunebook.models import tiny_causal_lm, complete
from tunebook.demo import demo_run
from tunebook.chat import Chat
from tunebook.eval import generate

@pytest.fixture(scope='module')
def lm(): return tiny_causal_lm(layers=1)

def test_batched_equals_single(lm):
    model, tok = lm; side = tok.padding_side
    qs = ['hi', 'a much longer question about the weather in spring and autumn', 'two words']
    batched = generate(model, tok, [[{'role': 'user', 'content': q}] for q in qs], max_new_tokens=8)
    assert batched == [complete(model, tok, q, max_new_tokens=8) for q in qs]
    assert tok.padding_side == side  # left padding only for the call

def test_histories_are_per_user_and_reset(lm):
    chat = Chat(lm, system='Be brief.', max_new_tokens=4)
    chat.ask_many({'a': 'one', 'b': 'two'}); chat.ask('three', user='a')
    assert [m['content'] for m in chat.histories['a'] if m['role'] == 'user'] == ['one', 'three']
    assert [m['content'] for m in chat.histories['b'] if m['role'] == 'user'] == ['two']
    chat.reset('a'); assert 'a' not in chat.histories and 'b' in chat.histories

def test_budget_drops_oldest_and_keeps_system(lm):
    chat = Chat(lm, system='You are a pirate.', max_context_tokens=80, max_new_tokens=8)
    for i in range(8): chat.ask(f'message number {i} with some padding words')
    assert chat.dropped['default'] > 0 and chat.prompt_tokens['default'] <= 72
    p = chat.prompt('default', 'last')
    assert p[0] == {'role': 'system', 'content': 'You are a pirate.'} and p[-1]['content'] == 'last'
    assert 'message number 0' not in str(p) and 'message number 7' in str(p)
    with pytest.raises(TunebookError, match='shorten it'): chat.ask('word ' * 100)
    with pytest.raises(TunebookError, match='must be smaller'): Chat(lm, max_context_tokens=10, max_new_tokens=10)

def _cli(*args, input=None):
    return subprocess.run([sys.executable, '-c', 'import sys; from tunebook.cli import main; sys.exit(main())', *args],
                          capture_output=True, text=True, input=input)

def test_cli(tmp_path):
    run = demo_run(tmp_path/'run', base='tiny', steps=1)
    r = _cli('chat', str(run.root), '--prompt', 'Hello', '--max_new_tokens', '3'); assert r.returncode == 0, r.stderr[-2000:]
    r = _cli('chat', str(run.root), '--max_new_tokens', '3', input='Hello\n/reset\nAgain\n')  # EOF ends the loop
    assert r.returncode == 0 and r.stdout.count('bot>') == 2 and '(conversation forgotten)' in r.stdout
    r = _cli('chat', str(tmp_path/'missing')); assert r.returncode == 2 and 'error' in r.stderr

"`tunebook serve` end to end: a real server on 127.0.0.1, the official `openai` client, error shapes, batching under load."
import os, sys, json, time, socket, subprocess, concurrent.futures as cf
import pytest, torch, httpx, openai
from openai import OpenAI
from tunebook.models import tiny_causal_lm, load_tokenizer, SMOLLM2
from tunebook.eval import generate
from tunebook.serve import load_for_serving, make_app, Server

KEY = 'test-key-not-secret-1234'

@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
    "A tiny random Llama with SmolLM2's tokenizer, weights scaled up so that greedy answers vary from prompt to prompt."
    model, tok = tiny_causal_lm()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2: p.mul_(20)
    d = tmp_path_factory.mktemp('m')/'tiny-chat'
    model.save_pretrained(d); tok.save_pretrained(d)
    return d

def _free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def cli_server(model_dir):
    "`tunebook serve` started as a user would, with an API key from the environment."
    port = _free_port()
    env = {**os.environ, 'TUNEBOOK_API_KEY': KEY, 'HF_HUB_OFFLINE': '1'}
    p = subprocess.Popen([sys.executable, '-m', 'tunebook.cli', 'serve', str(model_dir), '--port', str(port), '--max-tokens', '32'],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = f'http://127.0.0.1:{port}'
    for _ in range(600):  # bounded: at most ~120 s to load
        if p.poll() is not None: pytest.fail(f"tunebook serve exited: {p.stdout.read()}")
        try:
            if httpx.get(f'{url}/health', headers={'authorization': f'Bearer {KEY}'}, timeout=1).status_code == 200: break
        except httpx.HTTPError: pass
        time.sleep(0.2)
    else: p.kill(); pytest.fail('tunebook serve did not start within 120 s')
    yield url, p
    p.terminate(); out = p.communicate(timeout=30)[0]
    assert KEY not in out  # the key is never printed

@pytest.fixture(scope='module')
def client(cli_server): return OpenAI(base_url=cli_server[0] + '/v1', api_key=KEY, max_retries=0, timeout=60)

def _chat(client, q, **kw):
    return client.chat.completions.create(model='tiny-chat', messages=[{'role': 'user', 'content': q}], **{'max_tokens': 16, **kw})

def test_chat_models_and_health(client, cli_server, model_dir):
    assert [m.id for m in client.models.list()] == ['tiny-chat']
    r = _chat(client, 'What is tunebook?')
    model, tok = tiny_causal_lm(); tok = load_tokenizer(model_dir)
    m, tok, _ = load_for_serving(model_dir, dtype=torch.float32, device='cpu')
    assert r.choices[0].message.content == generate(m, tok, ['What is tunebook?'], max_new_tokens=16)[0] != ''
    assert r.choices[0].finish_reason == 'length' and r.usage.completion_tokens == 16 and r.usage.prompt_tokens > 10
    assert r.object == 'chat.completion' and r.model == 'tiny-chat' and r.id.startswith('chatcmpl-')
    h = httpx.get(cli_server[0] + '/health', headers={'authorization': f'Bearer {KEY}'}).json()
    assert h['status'] == 'ok' and h['model'] == 'tiny-chat' and h['requests'] >= 1

def test_streaming_equals_non_streaming(client):
    whole = _chat(client, 'Tell me a story.', max_tokens=24).choices[0].message.content
    chunks = list(_chat(client, 'Tell me a story.', max_tokens=24, stream=True, stream_options={'include_usage': True}))
    assert chunks[0].choices[0].delta.role == 'assistant'
    text = ''.join(c.choices[0].delta.content or '' for c in chunks if c.choices)
    assert text == whole and len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == 'length'
    assert chunks[-1].usage.completion_tokens == 24

def test_api_key_required_on_every_route(cli_server):
    url = cli_server[0]
    for path in ['/health', '/v1/models']:
        for h in [{}, {'authorization': 'Bearer wrong'}, {'authorization': KEY}]:
            r = httpx.get(url + path, headers=h)
            assert r.status_code == 401 and r.json()['error']['code'] == 'invalid_api_key', (path, h)
    with pytest.raises(openai.AuthenticationError): OpenAI(base_url=url + '/v1', api_key='nope', max_retries=0).models.list()

def _post(url, body, raw=False):
    return httpx.post(url + '/v1/chat/completions', content=body if raw else json.dumps(body), timeout=60,
                      headers={'authorization': f'Bearer {KEY}', 'content-type': 'application/json'})

def test_bad_requests_get_openai_shaped_4xx_and_server_keeps_serving(cli_server, client):
    url, ok = cli_server[0], dict(model='tiny-chat', messages=[{'role': 'user', 'content': 'Hi'}])
    cases = [(b'{"model": "tiny-chat", "messages": [', 400, 'not valid JSON'), (b'[1]', 400, 'JSON object'),
             (dict(messages=ok['messages']), 400, 'model'), ({**ok, 'model': 'gpt-4o'}, 404, 'does not exist here'),
             ({**ok, 'messages': []}, 400, 'messages'), ({**ok, 'messages': 'hi'}, 400, 'messages'),
             ({**ok, 'messages': [{'role': 'tool', 'content': 'x'}]}, 400, "role is 'tool'"),
             ({**ok, 'messages': [{'role': 'user', 'content': [{'type': 'image_url', 'image_url': {'url': 'x'}}]}]}, 400, 'not text'),
             ({**ok, 'messages': [{'role': 'user'}]}, 400, 'content is missing'),
             ({**ok, 'max_tokens': 33}, 400, 'allows 1 to 32'), ({**ok, 'max_tokens': 0}, 400, 'allows 1 to 32'),
             ({**ok, 'max_tokens': 'many'}, 400, 'max_tokens'), ({**ok, 'n': 2}, 400, 'n=1'), ({**ok, 'temperature': -1}, 400, 'temperature'),
             ({**ok, 'messages': [{'role': 'user', 'content': 'word ' * 2100}]}, 400, 'context is 2048 tokens')]
    for body, status, msg in cases:
        r = _post(url, body, raw=isinstance(body, bytes))
        assert r.status_code == status, (body, r.text)
        err = r.json()['error']
        assert set(err) == {'message', 'type', 'param', 'code'} and msg in err['message'], (body, err)
        assert 'Traceback' not in r.text
    assert httpx.get(url + '/v2/nothing', headers={'authorization': f'Bearer {KEY}'}).json()['error']['code'] == 'not_found'
    with pytest.raises(openai.NotFoundError, match='does not exist here'):
        client.chat.completions.create(model='gpt-4o', messages=[{'role': 'user', 'content': 'x'}])
    assert _chat(client, 'Still there?').choices[0].message.content  # and it keeps serving

def test_load_32_requests_from_8_clients_equal_one_at_a_time(client, cli_server, model_dir):
    qs = [f"Question {i}: what is {i} plus {i}?" for i in range(32)]
    before = httpx.get(cli_server[0] + '/health', headers={'authorization': f'Bearer {KEY}'}).json()
    with cf.ThreadPoolExecutor(8) as ex: got = list(ex.map(lambda q: _chat(client, q).choices[0].message.content, qs))
    after = httpx.get(cli_server[0] + '/health', headers={'authorization': f'Bearer {KEY}'}).json()
    m, tok, _ = load_for_serving(model_dir, dtype=torch.float32, device='cpu')
    assert got == generate(m, tok, qs, max_new_tokens=16, batch_size=1)
    assert after['requests'] - before['requests'] == 32
    assert after['batches'] - before['batches'] < 32  # concurrent requests were batched
    assert len(set(got)) > 16  # real, varied answers

@pytest.fixture(scope='module')
def tiny(model_dir): return load_for_serving(model_dir, dtype=torch.float32, device='cpu')

def test_full_queue_refuses_with_429_and_recovers(tiny):
    m, tok, name = tiny
    with Server(make_app(m, tok, name, max_tokens=64, max_batch=1, max_queue=1)) as s:
        c = OpenAI(base_url=s.url, api_key='x', max_retries=0, timeout=60)
        def ask(i):
            try: return _chat(c, f'q{i}', max_tokens=64).choices[0].finish_reason
            except openai.RateLimitError as e: return e.body['code']
        with cf.ThreadPoolExecutor(8) as ex: got = list(ex.map(ask, range(16)))
        assert 'queue_full' in got and 'length' in got, got
        assert set(got) <= {'queue_full', 'length'}
        assert _chat(c, 'after the rush').choices[0].finish_reason == 'length'

def test_timeout_is_a_504_in_the_openai_shape(tiny):
    m, tok, name = tiny
    with Server(make_app(m, tok, name, timeout=0.001)) as s:
        r = httpx.post(s.url + '/chat/completions', json=dict(model=name, messages=[{'role': 'user', 'content': 'Hi'}], max_tokens=64))
        assert r.status_code == 504 and r.json()['error']['code'] == 'timeout'

def test_template_refusal_is_a_400(tiny):
    m, tok, name = tiny
    tok = load_tokenizer(tok.name_or_path)
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
                         "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
                         "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    with Server(make_app(m, tok, name)) as s:
        c = OpenAI(base_url=s.url, api_key='x', max_retries=0)
        with pytest.raises(openai.BadRequestError, match='System role not supported'):
            c.chat.completions.create(model=name, messages=[{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}], max_tokens=4)
        assert _chat(c, 'Hi', max_tokens=4).choices[0].message.content is not None

def test_real_model_stops_at_end_of_turn():
    m, tok, _ = load_for_serving(SMOLLM2, dtype=torch.float32, device='cpu')
    with Server(make_app(m, tok, 'smollm2')) as s:
        c = OpenAI(base_url=s.url, api_key='x', max_retries=0, timeout=120)
        r = c.chat.completions.create(model='smollm2', messages=[{'role': 'user', 'content': 'What is 2+2? Answer with a number.'}], max_tokens=64)
        assert r.choices[0].finish_reason == 'stop' and r.usage.completion_tokens < 64
        assert '4' in r.choices[0].message.content and '<|im_end|>' not in r.choices[0].message.content

def test_binds_localhost_by_default(tiny):
    m, tok, name = tiny
    s = Server(make_app(m, tok, name))
    assert s.host == '127.0.0.1'
    s.app.state.served.batcher.close()

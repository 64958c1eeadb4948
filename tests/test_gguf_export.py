"GGUF export end to end on a tiny (real, trained) run: llama.cpp's converter, the Modelfile, and a round-trip check that catches broken exports."
import os, io, json, shutil
from contextlib import redirect_stderr, redirect_stdout
import pytest, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from tunebook.core import TunebookError, read_json, write_json
from tunebook.models import load_tokenizer, load_tuned
from tunebook.format import end_of_turn_id
from tunebook.demo import demo_run
from tunebook.cli import main
from tunebook.gguf_export import (export_gguf, check_gguf, check_family, check_stop, check_logits, gguf_metadata, template_parts,
                                  render_parts, ollama_template, modelfile, modelfile_stops, modelfile_template, GGUF_TOLERANCES)

ZEPHYR = ("{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + eos_token + '\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")

@pytest.fixture(scope='module')
def run(tmp_path_factory): return demo_run(tmp_path_factory.mktemp('run')/'run', base='tiny', steps=2)

@pytest.fixture(scope='module')
def exported(run, tmp_path_factory): return export_gguf(run.root, tmp_path_factory.mktemp('gguf')/'out', quant='f32', runtime=False)

def cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err): code = main(['export', *map(str, args)])
    return code, out.getvalue(), err.getvalue()

def test_export_writes_gguf_modelfile_readme_and_a_passing_check(run, exported):
    names = sorted(p.name for p in exported.iterdir())
    assert names == ['Modelfile', 'README.md', 'gguf_check.json', 'run-f32.gguf'], names
    rep = read_json(exported/'gguf_check.json')
    assert rep['passed'] and rep['problems'] == [] and rep['quant'] == 'f32'
    t = rep['template']
    assert t['same_template'] and t['rendered_identical'] == t['tokens_identical'] == t['modelfile_rendered_identical'] == t['renderings'] >= 10
    assert rep['stop']['end_of_turn'] == '<|im_end|>' and rep['stop']['gguf_stops_there'] and rep['stop']['modelfile_stops_there']
    assert rep['logits']['max_logit_diff'] <= GGUF_TOLERANCES['f32'][0] and rep['logits']['greedy_identical'] == rep['logits']['prompts']
    assert str(run.root) not in json.dumps(rep)  # no local paths in what gets shipped
    meta = gguf_metadata(exported/'run-f32.gguf')
    tok = load_tokenizer(run.adapter)
    assert meta['chat_template'] == tok.chat_template and meta['eos_token_id'] == end_of_turn_id(tok) and meta['architecture'] == 'llama'
    mf = (exported/'Modelfile').read_text()
    assert mf.startswith('FROM ./run-f32.gguf\n') and modelfile_stops(mf) == ['<|im_end|>'] and 'PARAMETER temperature' in mf
    assert 'ollama create' in (exported/'README.md').read_text()

def test_gguf_reloads_in_plain_transformers_with_the_merged_logits(run, exported):
    m = AutoModelForCausalLM.from_pretrained(exported, gguf_file='run-f32.gguf', dtype=torch.float32).eval()
    ref = load_tuned(run.root, dtype=torch.float32, device='cpu')[0].merge_and_unload().eval()
    ids = torch.tensor([[1, 42, 7, 99, 3, 500]])
    with torch.no_grad(): assert (m(input_ids=ids).logits - ref(input_ids=ids).logits).abs().max() < 1e-4
    gt = AutoTokenizer.from_pretrained(exported, gguf_file='run-f32.gguf')
    msgs = [{'role': 'user', 'content': 'Héllo 🙂'}]
    assert gt.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == \
           load_tokenizer(run.adapter).apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

def test_q8_0_is_smaller_and_within_its_tolerance(run, exported, tmp_path):
    q = export_gguf(run.root, tmp_path/'q8', quant='q8_0', runtime=False)
    rep = read_json(q/'gguf_check.json')
    assert rep['passed'] and rep['quant'] == 'q8_0' and 0 < rep['logits']['max_logit_diff'] <= GGUF_TOLERANCES['q8_0'][0]
    assert (q/'run-q8_0.gguf').stat().st_size < 0.5*(exported/'run-f32.gguf').stat().st_size

def test_wrong_template_is_caught_and_nothing_is_written(run, tmp_path):
    with pytest.raises(TunebookError, match='renders .* conversations differently') as e:
        export_gguf(run.root, tmp_path/'bad', quant='f32', chat_template=ZEPHYR, runtime=False)
    assert 'not the template the run was trained with' in str(e.value)
    assert not (tmp_path/'bad').exists()
    (tmp_path/'zephyr.jinja').write_text(ZEPHYR)
    code, out, err = cli(run.root, '--format', 'gguf', '--quant', 'f32', '--chat-template', tmp_path/'zephyr.jinja', '--out', tmp_path/'bad_cli')
    assert code == 2 and 'GGUF check failed' in err and 'Traceback' not in err and not (tmp_path/'bad_cli').exists()

def test_missing_stop_token_in_the_modelfile_is_caught(run, exported, tmp_path):
    broken = shutil.copytree(exported, tmp_path/'nostop')
    mf = (broken/'Modelfile').read_text()
    (broken/'Modelfile').write_text(''.join(l for l in mf.splitlines(True) if not l.startswith('PARAMETER stop')))
    rep = check_gguf(broken, run.root, runtime=False)
    assert not rep['passed'] and any('no PARAMETER stop' in p for p in rep['problems']), rep['problems']
    code, out, err = cli(run.root, '--format', 'gguf', '--check', broken)
    assert code == 2 and 'FAILED' in out and 'no PARAMETER stop' in out
    assert read_json(broken/'gguf_check.json')['passed'] is False
    code, out, err = cli(run.root, '--format', 'gguf', '--check', exported)
    assert code == 0 and 'PASSED' in out

def test_a_modelfile_template_edited_by_hand_is_caught(run, exported, tmp_path):
    broken = shutil.copytree(exported, tmp_path/'tpl')
    mf = (broken/'Modelfile').read_text()
    (broken/'Modelfile').write_text(mf.replace('<|im_start|>assistant\n"""', '<|im_start|>assistant\n\n"""'))
    assert any("Modelfile's TEMPLATE" in p for p in check_gguf(broken, run.root, runtime=False)['problems'])

def test_stop_check_on_metadata_that_ends_turns_elsewhere(run):
    tok = load_tokenizer(run.adapter)
    ok = check_stop(tok, dict(eos_token_id=2, eot_token_id=None), ['<|im_end|>'])
    assert ok['gguf_stops_there'] and ok['modelfile_stops_there']
    bad = check_stop(tok, dict(eos_token_id=0, eot_token_id=None), ['</s>'])
    assert not bad['gguf_stops_there'] and not bad['modelfile_stops_there']

def test_logit_check_catches_other_weights(run, exported):
    ref = load_tuned(run.root, dtype=torch.float32, device='cpu')[0].merge_and_unload().eval()
    with torch.no_grad():
        for p in ref.parameters(): p.add_(torch.randn_like(p)*0.05)
    assert not check_logits(ref, load_tokenizer(run.adapter), exported/'run-f32.gguf', 'f32')['ok']

def test_template_parts_reproduce_the_template_and_drop_bos_when_the_runtime_adds_it():
    tok = load_tokenizer('smollm2-135m-instruct')
    p = template_parts(tok)
    conv = [dict(role='system', content='S'), dict(role='user', content='U'), dict(role='assistant', content='A'), dict(role='user', content='V')]
    for c in (conv, conv[1:], conv[1:2]):
        for g in (False, True): assert render_parts(p, c, g) == tok.apply_chat_template(c, tokenize=False, add_generation_prompt=g)
    assert ollama_template({**p, 'head_nosys': '<s>x', 'head_sys': '<s>'}, bos='<s>').count('<s>') == 0
    assert '{{ "{{ odd }}" }}' in ollama_template({**p, 'user_prefix': '{{ odd }}'})
    mf = modelfile('m.gguf', ollama_template(p), ['<|im_end|>', '<|endoftext|>'])
    assert modelfile_stops(mf) == ['<|im_end|>', '<|endoftext|>'] and modelfile_template(mf) == ollama_template(p)

def test_refusals(run, tmp_path):
    (tmp_path/'neox').mkdir(); write_json(tmp_path/'neox'/'config.json', dict(model_type='gpt_neox'))
    with pytest.raises(TunebookError, match="this model is 'gpt_neox'"): check_family(tmp_path/'neox')
    with pytest.raises(TunebookError, match='--quant must be one of'): export_gguf(run.root, tmp_path/'x', quant='q4_k')
    assert cli(run.root, '--format', 'onnx', '--out', tmp_path/'y')[0] == 2
    assert cli(run.root, '--format', 'gguf')[0] == 2  # --out required
    with pytest.raises(TunebookError, match='not a GGUF export'): check_gguf(tmp_path, run.root)

@pytest.mark.skipif(not os.environ.get('TUNEBOOK_SLOW'), reason='slow (a SmolLM2 export and llama.cpp): set TUNEBOOK_SLOW=1')
def test_llama_cpp_runtime_greedy_answers_and_stops(tmp_path):
    "The GGUF of the SmolLM2 demo run in llama.cpp itself: greedy answers equal the merged model's and stop at <|im_end|>."
    pytest.importorskip('llama_cpp', reason='llama-cpp-python is not installed (it builds llama.cpp from source; CI does not)')
    out = export_gguf(demo_run().root, tmp_path/'smol', quant='f16', name='smol')
    r = read_json(out/'gguf_check.json')['runtime']
    assert 'skipped' not in r and r['ok'], r
    assert r['identical'] == r['prompts'] and r['should_stop'] >= 1 and r['stopped'] == r['should_stop']

"Export end to end on a tiny (real, trained) run: adapter and merged exports reload with plain transformers/peft and match."
import json, shutil
import pytest, torch
from pathlib import Path
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel
from tunebook.core import TunebookError, RunDir, read_json
from tunebook.models import load_tuned, resolve_model
from tunebook.export import export, probe, fidelity, check_fidelity, hub_id
from tunebook.demo import demo_run, tiny_base

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    return demo_run(tmp_path_factory.mktemp('run')/'run', base='tiny', steps=2)

def _logits(model, ids): 
    with torch.no_grad(): return model(input_ids=ids).logits

def test_adapter_export_reloads_with_plain_peft(run, tmp_path):
    out = export(run.root, tmp_path/'adapter')
    names = {p.name for p in out.iterdir()}
    assert {'adapter_model.safetensors', 'adapter_config.json', 'tokenizer.json', 'chat_template.jinja', 'fidelity.json'} <= names
    assert not [n for n in names if n.endswith(('.bin', '.pt', '.pth', '.pkl'))]
    cfg = read_json(out/'adapter_config.json')
    assert cfg['base_model_name_or_path'] == tiny_base()  # a local base keeps its path (no Hub id)
    base = AutoModelForCausalLM.from_pretrained(cfg['base_model_name_or_path'])
    plain = PeftModel.from_pretrained(base, out).eval()
    ref, _ = load_tuned(run.root, dtype=torch.float32)
    ids = torch.tensor([[1, 42, 7, 99, 3]])
    assert torch.equal(_logits(plain, ids), _logits(ref, ids))
    f = read_json(out/'fidelity.json')
    assert f['passed'] and f['max_logit_diff'] == 0.0 and f['greedy_identical'] == f['prompts']
    assert 'source' not in f and str(run.root) not in json.dumps(f)  # no local paths leak into what may be uploaded

def test_merged_export_is_standalone_and_faithful(run, tmp_path):
    out = export(run.root, tmp_path/'merged', merged=True)
    names = {p.name for p in out.iterdir()}
    assert {'model.safetensors', 'config.json', 'generation_config.json', 'tokenizer.json', 'chat_template.jinja'} <= names
    assert 'adapter_config.json' not in names
    m = AutoModelForCausalLM.from_pretrained(out).eval(); tok = AutoTokenizer.from_pretrained(out)
    assert not any('lora' in n for n, _ in m.named_parameters())
    ref, _ = load_tuned(run.root, dtype=torch.float32)
    ids = torch.tensor([[1, 42, 7, 99, 3]])
    assert (_logits(m, ids) - _logits(ref, ids)).abs().max() < 1e-4
    assert tok.chat_template and '<|im_start|>' in tok.apply_chat_template([{'role': 'user', 'content': 'hi'}], tokenize=False)
    f = read_json(out/'fidelity.json')
    assert f['merged'] and f['dtype'] == 'float32' and f['max_logit_diff'] < f['atol']

def test_merged_bf16_uses_bf16_tolerance_and_dtype(run, tmp_path):
    out = export(run.root, tmp_path/'bf16', merged=True, dtype=torch.bfloat16)
    assert read_json(out/'config.json')['dtype'] == 'bfloat16'
    f = read_json(out/'fidelity.json'); assert f['atol'] == 1.0 and f['dtype'] == 'bfloat16'
    # the same export held to a float32-style tolerance fails loudly and writes nothing
    with pytest.raises(TunebookError, match='Fidelity check failed'):
        export(run.root, tmp_path/'bf16_strict', merged=True, dtype=torch.bfloat16, atol=1e-4, kl_tol=1e-9)
    assert not (tmp_path/'bf16_strict').exists()

def test_fidelity_detects_a_different_model(run):
    model, tok = load_tuned(run.root, dtype=torch.float32)
    ref = probe(model, tok, ['hello', 'what is 2+2?'], max_new_tokens=6)
    other = AutoModelForCausalLM.from_pretrained(tiny_base()).eval()
    with torch.no_grad():
        for p in other.parameters(): p.add_(torch.randn_like(p)*0.05)
    rep = fidelity(ref, other, tok)
    with pytest.raises(TunebookError, match='does not behave like the trained adapter'): check_fidelity(rep)

def test_refuses_bad_input(run, tmp_path):
    with pytest.raises(TunebookError, match='nothing to export'): export(tmp_path, tmp_path/'x')
    export(run.root, tmp_path/'once')
    with pytest.raises(TunebookError, match='will not overwrite'): export(run.root, tmp_path/'once')
    export(run.root, tmp_path/'once', overwrite=True)

def test_full_finetune_run_exports_its_model(run, tmp_path):
    full = tmp_path/'full_run'; (full/'model').mkdir(parents=True)
    m, tok = load_tuned(run.root, dtype=torch.float32); m = m.merge_and_unload()
    m.save_pretrained(full/'model'); tok.save_pretrained(full/'model')
    out = export(full, tmp_path/'full_export')
    assert (out/'model.safetensors').exists() and read_json(out/'fidelity.json')['max_logit_diff'] == 0.0

def test_hub_id():
    assert hub_id('smollm2-135m-instruct') == 'HuggingFaceTB/SmolLM2-135M-Instruct'
    assert hub_id('Qwen/Qwen2.5-0.5B') == 'Qwen/Qwen2.5-0.5B'
    assert hub_id('/some/local/folder') is None and hub_id('gpt2') is None  # bare names: not sure it is a Hub id

def test_cli(run, tmp_path, capsys):
    from tunebook.cli import main
    assert main(['export', str(run.root), '--out', str(tmp_path/'cli'), '--merged']) == 0
    out = capsys.readouterr().out
    assert 'exported merged model' in out and 'greedy identical 3/3' in out
    assert main(['export', str(run.root)]) == 2 and '--out DIR is required' in capsys.readouterr().err

"Masks on real chat templates (SmolLM2's, Llama-3-style and Gemma-style built offline, Alpaca fallback), packing isolation, collators."
import copy, json, os
from pathlib import Path
import pytest, torch
from datasets import Dataset
from tunebook.core import TunebookError
from tunebook.models import load_tokenizer, load_base, tiny_causal_lm
from tunebook.format import (IGNORE, tokenize_chat, tokenize_text, tokenize_dataset, lint_masks, show_mask, pack_examples,
                             PackedCollator, PaddedCollator, packed_attention_mask, end_of_turn_id, row_seq_lens)

def cli(*args):
    "Run `tunebook ARGS` in-process: (exit status, stdout, stderr)."
    import io
    from contextlib import redirect_stdout, redirect_stderr
    from tunebook.cli import main
    o, e = io.StringIO(), io.StringIO()
    with redirect_stdout(o), redirect_stderr(e): rc = main([str(a) for a in args])
    return rc, o.getvalue(), e.getvalue()

ROWS = [json.loads(l) for l in open(Path(__file__).parents[1]/'tunebook'/'samples'/'sample_chat.jsonl')]

LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + "
          "'<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
          "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
GEMMA = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
         "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
         "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
         "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
         "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
         "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")

@pytest.fixture(scope='module')
def tok(): return load_tokenizer()

def family(tok, name):
    "A copy of the SmolLM2 tokenizer turned into another chat family (special tokens, BOS behaviour, template)."
    t = copy.deepcopy(tok)
    if name == 'llama3':
        t.add_special_tokens({'bos_token': '<|begin_of_text|>', 'eos_token': '<|eot_id|>',
                              'additional_special_tokens': ['<|start_header_id|>', '<|end_header_id|>']})
        t.add_bos_token, t.chat_template = True, LLAMA3
    elif name == 'gemma':
        t.add_special_tokens({'bos_token': '<bos>', 'eos_token': '<eos>', 'additional_special_tokens': ['<start_of_turn>', '<end_of_turn>']})
        t.add_bos_token, t.chat_template = True, GEMMA
    elif name == 'alpaca': t.chat_template = None
    return t

FAMILIES = ['smollm2', 'llama3', 'gemma', 'alpaca']
EOT = {'smollm2': '<|im_end|>', 'llama3': '<|eot_id|>', 'gemma': '<end_of_turn>', 'alpaca': '<|im_end|>'}
CONVOS = [
    [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello!'}],
    [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': '2+2?'}, {'role': 'assistant', 'content': '4'}],
    [{'role': 'user', 'content': 'A'}, {'role': 'assistant', 'content': 'one', 'weight': 0},
     {'role': 'user', 'content': 'B'}, {'role': 'assistant', 'content': 'two'},
     {'role': 'user', 'content': 'C'}, {'role': 'assistant', 'content': 'three', 'weight': None}],
]

def trained_text(ex, t): return t.decode([i for i in ex['labels'] if i != IGNORE])

@pytest.mark.parametrize('name', FAMILIES)
def test_masks_train_exactly_the_answers_and_their_end_of_turn(tok, name):
    t = family(tok, name)
    eot = EOT[name]
    assert t.convert_ids_to_tokens(end_of_turn_id(t)) == eot
    for convo in CONVOS:
        if name == 'gemma' and convo[0]['role'] == 'system': continue
        ex = tokenize_chat(convo, t)
        want = ''.join(m['content'] + eot for m in convo if m['role'] == 'assistant' and m.get('weight', 1) != 0)
        assert trained_text(ex, t) == want, (name, str(show_mask(ex, t)))
        ids = ex['input_ids']
        if name in ('llama3', 'gemma'):  # BOS distinct from turn markers: exactly one, first
            assert ids[0] == t.bos_token_id and ids.count(t.bos_token_id) == 1
        if name == 'smollm2': assert ids[0] == t.bos_token_id and ids[1] != t.bos_token_id
        assert ex['labels'][0] == IGNORE and len(ex['labels']) == len(ids)
        # every user/system end-of-turn is masked, every assistant one (with weight) trained
        n_eot = sum(1 for i, l in zip(ids, ex['labels']) if i == end_of_turn_id(t) and l != IGNORE)
        assert n_eot == sum(1 for m in convo if m['role'] == 'assistant' and m.get('weight', 1) != 0)

@pytest.mark.parametrize('name', ['smollm2', 'llama3', 'alpaca'])
def test_lint_passes_on_whole_sample_dataset(tok, name):
    t = family(tok, name)
    ds, stats = tokenize_dataset(Dataset.from_list(ROWS), t, seq_len=512)
    assert stats['kept'] == len(ROWS) and stats['too_long'] == 0
    s = lint_masks(ds, t, seq_len=512)
    assert s['examples'] == len(ROWS) and 0 < s['trained_tokens'] < s['tokens']

def test_gemma_refuses_system_role_with_a_clear_error(tok):
    with pytest.raises(TunebookError, match='System role not supported'): tokenize_chat(CONVOS[1], family(tok, 'gemma'))

def test_gemma_trains_end_of_turn_not_eos(tok):
    t = family(tok, 'gemma')
    ex = tokenize_chat(CONVOS[0], t)
    assert t.eos_token_id not in ex['input_ids'] and trained_text(ex, t).endswith('<end_of_turn>')

def test_eos_trained_through_both_collators_when_pad_is_eos(tok):
    assert tok.pad_token_id == tok.eos_token_id
    ds, _ = tokenize_dataset(Dataset.from_list(ROWS[:6]), tok, seq_len=512)
    pb = PaddedCollator(tok)([ds[i] for i in range(6)])
    assert int((pb['labels'] == tok.eos_token_id).sum()) == 6                 # one answer each
    assert (pb['labels'][pb['attention_mask'] == 0] == IGNORE).all()
    packed = pack_examples(ds, 256, verbose=False)
    kb = PackedCollator(tok)([packed[i] for i in range(len(packed))])
    assert int((kb['labels'] == tok.eos_token_id).sum()) == 6

def test_truncate_and_drop_are_counted(tok):
    ds = Dataset.from_list(ROWS[:40])
    full, s0 = tokenize_dataset(ds, tok, seq_len=512)
    n_long = sum(n > 80 for n in full['length'])
    assert 0 < n_long < 40
    tr, s1 = tokenize_dataset(ds, tok, seq_len=80)
    dr, s2 = tokenize_dataset(ds, tok, seq_len=80, overflow='drop')
    assert s1['too_long'] == s2['too_long'] == s2['dropped_too_long'] == n_long
    assert s1['truncated'] + s1['dropped_no_target'] == n_long and len(tr) == 40 - s1['dropped_no_target']
    assert len(dr) == 40 - n_long and not any(dr['truncated'])
    assert sum(tr['truncated']) == s1['truncated'] and max(tr['length']) <= 80
    lint_masks(tr, tok, seq_len=80)   # truncated answers may lack their end-of-turn, and are marked so
    with pytest.raises(TunebookError, match="overflow must be"): tokenize_dataset(ds, tok, overflow='silent')
    with pytest.raises(TunebookError, match="needs a `text` column"): tokenize_dataset(ds, tok, task='text')

def test_weight_zero_only_conversation_is_dropped_and_counted(tok):
    ds = Dataset.from_list([{'messages': CONVOS[0]}, {'messages': [CONVOS[0][0], {**CONVOS[0][1], 'weight': 0}]}])
    out, stats = tokenize_dataset(ds, tok)
    assert len(out) == 1 and stats['dropped_no_target'] == 1

def test_text_task(tok):
    t = family(tok, 'llama3')
    ds, stats = tokenize_dataset(Dataset.from_dict({'text': ['first document', 'the second document']}), t, task='text')
    assert lint_masks(ds, t, task='text')['examples'] == 2
    ex = ds[0]
    assert ex['input_ids'][0] == t.bos_token_id and ex['input_ids'].count(t.bos_token_id) == 1 and ex['input_ids'][-1] == t.eos_token_id

def test_pack_examples_is_a_partition(tok):
    ds, _ = tokenize_dataset(Dataset.from_list(ROWS[:60]), tok)
    p = pack_examples(ds, 300, verbose=False)
    assert all(len(r) <= 300 for r in p['input_ids'])
    assert sorted(n for r in p['seq_lens'] for n in r) == sorted(ds['length'])
    assert sum(map(len, p['input_ids'])) == sum(ds['length'])
    for row in p: assert row_seq_lens({'input_ids': row['input_ids'], 'position_ids': row['position_ids']}) == row['seq_lens']
    with pytest.raises(TunebookError, match='more than seq_len'): pack_examples(ds, 50, verbose=False)

def _isolation(model, feats, collator):
    "Max logit difference packed vs alone, packed loss and token-weighted loss of the examples alone."
    batch = collator(feats)
    with torch.no_grad():
        out = model(**batch)
        diff, loss_sum, n_tok = 0., 0., 0
        for b, f in enumerate(feats):
            off = 0
            for n in row_seq_lens(f):
                ids = torch.tensor([f['input_ids'][off:off+n]], device=model.device)
                lab = torch.tensor([f['labels'][off:off+n]], device=model.device)
                alone = model(input_ids=ids, labels=lab)
                diff = max(diff, (alone.logits[0].float() - out.logits[b, off:off+n].float()).abs().max().item())
                k = int((lab[0, 1:] != IGNORE).sum()); loss_sum += alone.loss.item()*k; n_tok += k
                off += n
    return diff, out.loss.item(), loss_sum/n_tok, batch

@pytest.fixture(scope='module')
def packed_rows(tok):
    ds, _ = tokenize_dataset(Dataset.from_list(ROWS[:14]), tok, seq_len=512)
    return pack_examples(ds, 256, verbose=False)

@pytest.mark.parametrize('impl,mask', [('sdpa', 'bool'), ('eager', 'float')])
def test_packed_equals_unpacked_tiny(packed_rows, impl, mask):
    model, tok = tiny_causal_lm()
    model.config._attn_implementation = impl
    feats = [packed_rows[i] for i in range(3)]   # rows of different totals: padding inside the batch too
    assert len({sum(f['seq_lens']) for f in feats}) > 1 and all(len(f['seq_lens']) > 1 for f in feats)
    diff, packed_loss, unpacked_loss, batch = _isolation(model, feats, PackedCollator(tok, mask=mask))
    assert diff < 1e-4 and abs(packed_loss - unpacked_loss) < 1e-5
    # the hazard this guards against: position_ids alone do not isolate examples (transformers 5.23, use_cache on)
    with torch.no_grad(): pos_only = model(input_ids=batch['input_ids'], position_ids=batch['position_ids']).logits
    assert (pos_only - model(**batch).logits).abs().max() > 1e-2

def test_packed_gradients_equal_unpacked(packed_rows):
    model, tok = tiny_causal_lm(); model.train()
    feats = [packed_rows[i] for i in range(2)]
    model(**PackedCollator(tok)(feats)).loss.backward()
    g_packed = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    pieces, total = [], 0
    for f in feats:
        off = 0
        for n in f['seq_lens']:
            lab = torch.tensor([f['labels'][off:off+n]]); k = int((lab[0, 1:] != IGNORE).sum())
            pieces.append((torch.tensor([f['input_ids'][off:off+n]]), lab, k)); total += k; off += n
    for ids, lab, k in pieces: (model(input_ids=ids, labels=lab).loss * k / total).backward()
    for gp, p in zip(g_packed, model.parameters()): torch.testing.assert_close(gp, p.grad, rtol=1e-4, atol=1e-6)

def test_packed_equals_unpacked_smollm2(packed_rows):
    model, tok = load_base(dtype=torch.float32, device='cpu')
    feats = [max(packed_rows, key=lambda r: len(r['seq_lens']))]
    assert len(feats[0]['seq_lens']) >= 3
    diff, packed_loss, unpacked_loss, _ = _isolation(model, feats, PackedCollator(tok))
    assert diff < 1e-4, diff
    assert abs(packed_loss - unpacked_loss) < 1e-4

def test_collator_works_after_trainer_drops_seq_lens(packed_rows, tok):
    "Trainer's remove_unused_columns keeps `position_ids` (a forward argument): the collator rebuilds the same batch from it."
    feats = [packed_rows[i] for i in range(2)]
    a = PackedCollator(tok)(feats)
    b = PackedCollator(tok)([{k: f[k] for k in ('input_ids', 'labels', 'position_ids')} for f in feats])
    for k in a: assert torch.equal(a[k], b[k]), k

def test_trainer_steps_with_packed_collator(packed_rows, tmp_path):
    from transformers import Trainer, TrainingArguments
    model, tok = tiny_causal_lm()
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=2, report_to=[],
                             use_cpu=True, save_strategy='no', logging_steps=1, learning_rate=1e-3)
    tr = Trainer(model=model, args=args, train_dataset=packed_rows.select(range(4)), data_collator=PackedCollator(tok))
    out = tr.train()
    assert torch.isfinite(torch.tensor(out.training_loss))

def test_mask_shapes_and_float_mask():
    m = packed_attention_mask([[2, 2], [3]], 5)
    assert m.shape == (2, 1, 5, 5) and m.dtype == torch.bool
    assert not m[0, 0, 2, :2].any() and m[0, 0, 3, 2] and not m[0, 0, 1, 2]
    assert m[1, 0, 4, 3] and not m[1, 0, 3, :3].any()     # the pad block sees only itself
    c = PackedCollator(0, mask='float', dtype=torch.bfloat16)([{'input_ids': [5, 6, 7], 'labels': [IGNORE, 6, 7], 'seq_lens': [2, 1]}])
    assert c['attention_mask'].dtype == torch.bfloat16 and c['labels'].tolist() == [[IGNORE, 6, IGNORE]]
    assert c['position_ids'].tolist() == [[0, 1, 0]]
    with pytest.raises(TunebookError, match='seq_lens add up'): PackedCollator(0)([{'input_ids': [1, 2], 'labels': [1, 2], 'seq_lens': [3]}])

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-4), (torch.bfloat16, 0.1)])
def test_packed_equals_unpacked_cuda(packed_rows, dtype, tol):
    model, tok = load_base(dtype=dtype, device='cuda')
    feats = [packed_rows[i] for i in range(3)]
    col = PackedCollator(tok)
    def to_cuda(fs): return {k: v.cuda() for k, v in col(fs).items()}
    class C: __call__ = staticmethod(to_cuda)
    diff, packed_loss, unpacked_loss, _ = _isolation(model, feats, C())
    assert diff < tol, diff
    assert abs(packed_loss - unpacked_loss) < (1e-4 if dtype == torch.float32 else 2e-2)

@pytest.mark.parametrize('name', FAMILIES)
def test_training_prefix_equals_inference_prompt(tok, name):
    from tunebook.format import tokenize_prompt
    t = family(tok, name)
    convo = CONVOS[2]
    ex = tokenize_chat(convo, t)
    for i, m in enumerate(convo):
        if m['role'] != 'assistant': continue
        p = tokenize_prompt(convo[:i], t)
        assert ex['input_ids'][:len(p)] == p, (name, i)

@pytest.mark.parametrize('name', FAMILIES)
def test_offsets_split_trains_the_same_text(tok, name):
    t = family(tok, name)
    for convo in CONVOS[1:] if name != 'gemma' else CONVOS[2:]:
        a, b = tokenize_chat(convo, t, split='segments'), tokenize_chat(convo, t, split='offsets')
        assert trained_text(a, t) == trained_text(b, t)

def test_lint_checks_packed_rows_per_example(tok):
    t = family(tok, 'llama3')   # BOS distinct from turn markers: a packed row holds several, one per example
    ds, _ = tokenize_dataset(Dataset.from_list(ROWS[:30]), t, seq_len=70)
    p = pack_examples(ds, 256, verbose=False)
    s = lint_masks(p, t, seq_len=256)
    assert s['examples'] == len(ds) and s['truncated'] == sum(ds['truncated']) > 0
    bad = dict(p[0]); bad['labels'] = list(bad['input_ids'])
    with pytest.raises(TunebookError, match=r'example 0 \(packed example 0 of the row\)'): lint_masks([bad], t)

# ---------------------------------------------------------------- chat-template refusals (issue 12, kind 4)
NO_SYSTEM = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
             "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
ALTERNATE = ("{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
             "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
             "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

def _with_template(template, tmp_path=None):
    import copy
    from tunebook.models import load_tokenizer
    t = copy.deepcopy(load_tokenizer()); t.chat_template = template
    if tmp_path is not None: t.save_pretrained(tmp_path); tiny_causal_lm()[0].config.save_pretrained(tmp_path)  # a model folder (--tokenizer)
    return t

def _chat_rows(path, rows):
    path.write_text(''.join(json.dumps({'messages': r}) + '\n' for r in rows)); return path

SYS = [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi?'}, {'role': 'assistant', 'content': 'Hello.'}]
PLAIN = [{'role': 'user', 'content': 'Why?'}, {'role': 'assistant', 'content': 'Because.'}]
TWO_USERS = [{'role': 'user', 'content': 'One.'}, {'role': 'user', 'content': 'Two.'}, {'role': 'assistant', 'content': 'Three.'}]

def test_template_refusals_become_one_clear_error():
    from tunebook.format import tokenize_chat, check_chat, check_chats, TemplateError, merge_system
    t = _with_template(NO_SYSTEM)
    with pytest.raises(TemplateError) as e: tokenize_chat(SYS, t)
    assert 'System role not supported' in str(e.value) and '--system-merge' in str(e.value)
    assert check_chat(SYS, t).endswith('System role not supported') and check_chat(PLAIN, t) is None
    assert check_chat(merge_system(SYS), t) is None and merge_system(SYS)[0]['content'] == 'Be brief.\n\nHi?'
    a = _with_template(ALTERNATE)
    assert check_chats([PLAIN, TWO_USERS, PLAIN, TWO_USERS], a) == {1: check_chat(TWO_USERS, a), 3: check_chat(TWO_USERS, a)}
    assert 'must alternate' in check_chat(TWO_USERS, a)

def test_tokenize_dataset_names_the_row_of_a_template_refusal():
    from datasets import Dataset
    from tunebook.format import tokenize_dataset, TemplateError
    ds = Dataset.from_list([{'messages': PLAIN, 'source': 'mine.jsonl:1'}, {'messages': SYS, 'source': 'mine.jsonl:2'}])
    with pytest.raises(TemplateError, match=r'^mine\.jsonl:2: .*System role not supported'): tokenize_dataset(ds, _with_template(NO_SYSTEM))

def test_prep_with_the_model_tokenizer_rejects_or_sets_aside_and_system_merge_fixes(tmp_path):
    from tunebook.clean import load_prepared
    tokdir = tmp_path/'tok'; _with_template(NO_SYSTEM, tokdir)
    src = _chat_rows(tmp_path/'mine.jsonl', [PLAIN, SYS, PLAIN[::1] + [{'role': 'user', 'content': 'More?'}, {'role': 'assistant', 'content': 'No.'}]])
    rc, out, err = cli('prep', src, '--out', tmp_path/'a', '--tokenizer', tokdir, '--val', '0', '--test', '0')
    assert rc == 2 and f'{src}:2: chat_template' in err and 'System role not supported' in err and '--system-merge' in err
    rc, out, err = cli('prep', src, '--out', tmp_path/'b', '--tokenizer', tokdir, '--val', '0', '--test', '0', '--skip-invalid')
    assert rc == 0 and '1 refused' in out
    rej = [json.loads(l) for l in open(tmp_path/'b'/'rejected.jsonl')]
    assert [r['source'] for r in rej] == [f'{src}:2'] and rej[0]['reasons'][0]['category'] == 'chat_template'
    rc, out, err = cli('prep', src, '--out', tmp_path/'c', '--tokenizer', tokdir, '--val', '0', '--test', '0', '--system-merge')
    assert rc == 0, err
    dd, rep = load_prepared(tmp_path/'c')
    assert rep['counts']['kept'] == 3 and not any(m['role'] == 'system' for r in dd['train']['messages'] for m in r)
    assert dd['train']['source'][0].startswith(str(src))  # chat rows keep their file:line for later stages

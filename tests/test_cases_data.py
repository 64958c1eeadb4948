"""Real users' data (issue 12 and issue 18 section 4): each situation in tests/fixtures/cases/NN/ (inputs copied from the
project's case collection, with the expected behaviour in its expected.md) run through the real `tunebook prep` command and
the real formatting/training functions. Models: the SmolLM2 tokenizer; a tiny random causal LM for the one training run."""
import io, json, shutil, subprocess, sys
from contextlib import redirect_stdout, redirect_stderr
from pathlib import Path
import pytest
from tunebook.clean import load_prepared
from tunebook.models import load_tokenizer

CASES = Path(__file__).parent/'fixtures'/'cases'
TUNEBOOK = shutil.which('tunebook') or str(Path(sys.executable).parent/'tunebook')  # the installed console script

def cli(*args):
    "Run `tunebook ARGS` in-process: (exit status, stdout, stderr)."
    from tunebook.cli import main
    o, e = io.StringIO(), io.StringIO()
    with redirect_stdout(o), redirect_stderr(e): rc = main([str(a) for a in args])
    return rc, o.getvalue(), e.getvalue()

@pytest.fixture
def case(tmp_path):
    "A writable copy of one case's inputs: case('05') -> folder."
    def get(n):
        d = tmp_path/n
        shutil.copytree(CASES/n, d)
        return d
    return get

@pytest.fixture(scope='module')
def tok(): return load_tokenizer()

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    "A tiny random causal LM that uses SmolLM2's tokenizer, saved as a folder (the cases' TINY_MODEL)."
    from tunebook.models import tiny_causal_lm
    d = tmp_path_factory.mktemp('tiny')
    m, t = tiny_causal_lm(); m.save_pretrained(d); t.save_pretrained(d)
    return d

def rows(data_dir):
    dd, rep = load_prepared(data_dir)
    return [r for s in dd.values() for r in s], rep

def messages_text(rs): return '\n'.join(m['content'] for r in rs for m in r['messages'])

def rejected(data_dir): return [json.loads(l) for l in open(Path(data_dir)/'rejected.jsonl')]

def test_01_consecutive_same_role_every_assistant_turn_trained(case, tok):
    from tunebook.format import tokenize_chat, lint_example, IGNORE
    d = case('01')
    rc, out, err = cli('prep', d/'convs.jsonl', '--out', d/'data', '--val', '0.1', '--test', '0.1')
    assert rc == 0, err
    rs, rep = rows(d/'data')
    assert rep['counts']['read'] == rep['counts']['kept'] + rep['counts']['rejected'] + sum(rep['counts']['dropped'].values())
    doubled = [r for r in rs if any(a['role'] == b['role'] for a, b in zip(r['messages'], r['messages'][1:]))]
    assert doubled, 'the case has rows with two turns of one role in a row'
    for r in doubled:
        ex = tokenize_chat(r['messages'], tok)
        assert lint_example(ex, tok) is None
        trained = tok.decode([t for t in ex['labels'] if t != IGNORE])
        for m in r['messages']:  # every assistant turn trained, no user turn
            assert (m['content'] in trained) == (m['role'] == 'assistant'), (m, trained)

def test_02_pad_equals_eos_answer_end_is_trained(case, tok):
    from tunebook.format import end_of_turn_id, IGNORE
    from tunebook.train import prepare_splits
    d = case('02')
    assert cli('prep', d/'polite.jsonl', '--out', d/'data')[0] == 0
    dd, _ = load_prepared(d/'data')
    eot = end_of_turn_id(tok)
    assert tok.pad_token_id == eot  # the situation of the case
    answers = sum(m['role'] == 'assistant' for r in dd['train']['messages'] for m in r)
    tr, _, coll, _ = prepare_splits(dd, tok, 'chat', seq_len=128, packing=False, verbose=False)
    b = coll([tr[i] for i in range(len(tr))])
    assert int((b['labels'] == eot).sum()) == answers           # every answer's end-of-turn carries a label
    assert int((b['labels'][b['attention_mask'] == 0] != IGNORE).sum()) == 0  # real padding never does

def test_04_csv_blank_cells(case):
    d = case('04')
    rc, out, err = cli('prep', d/'recipes.csv', '--out', d/'data')
    assert rc == 2 and 'recipes.csv:10' in err and 'recipes.csv:11' in err and 'Traceback' not in err
    assert not (d/'data').exists()
    rc, out, err = cli('prep', d/'recipes.csv', '--out', d/'data2', '--skip-invalid')
    assert rc == 0, err
    rs, rep = rows(d/'data2')
    text = messages_text(rs)
    assert 'nan' not in text.split() and '\n\nNone' not in text             # blank input cells are "no input"
    assert any(r['messages'][-1]['content'] == 'None' for r in rs)          # a literal "None" answer is text, kept
    assert {r['source'].rsplit(':', 1)[1] for r in rejected(d/'data2')} == {'10', '11'} and rep['counts']['rejected'] == 2

def test_05_numbers_and_booleans_are_kept_as_text_and_counted(case):
    d = case('05')
    rc, out, err = cli('prep', d/'numbers.jsonl', '--out', d/'data')
    assert rc == 0, err
    rs, rep = rows(d/'data')
    assert rep['counts']['kept'] == 12
    by_q = {r['messages'][0]['content']: r['messages'][1]['content'] for r in rs}
    assert by_q['Double this number.\n\n21'] == '42' and by_q['Add 15 to the number.\n\n100'] == '115'
    assert by_q['Round to one decimal place.\n\n3.14159'] == '3.1'
    assert by_q['How many days are in a leap year?'] == '366' and by_q['What is half of 9?'] == '4.5'
    assert rep['converted_to_text'] == {"'input': number -> text": 3, "'output': number -> text": 2, "'output': boolean -> text": 1}
    assert 'kept as text' in out

def test_06_bom_crlf_json_array_chinese_and_trailing_comma(case):
    d = case('06')
    assert cli('prep', d/'self_intro.json', '--out', d/'data')[0] == 0
    rs, rep = rows(d/'data')
    text = messages_text(rs)
    assert len(rs) == 10 and '你是谁？' in text and '\ufeff' not in text and '\r' not in text
    rc, out, err = cli('prep', d/'trailing_comma.json', '--out', d/'bad')
    lines = (d/'trailing_comma.json').read_text(encoding='utf-8-sig').splitlines()
    comma = max(i for i, l in enumerate(lines, 1) if l.rstrip().endswith(','))
    assert rc == 2 and f'trailing_comma.json:{comma}: invalid_json: trailing comma' in err and 'Traceback' not in err

def test_07_tool_calls_refused_by_name_ordinary_chats_kept(case):
    d = case('07')
    rc, out, err = cli('prep', d/'tool_chats.jsonl', '--out', d/'data')
    assert rc == 2 and 'tool_chats.jsonl:1: tool_calls' in err and 'not supported' in err and 'Traceback' not in err
    assert cli('prep', d/'tool_chats.jsonl', '--out', d/'data2', '--skip-invalid')[0] == 0
    rs, rep = rows(d/'data2')
    rej = rejected(d/'data2')
    assert len(rs) == 10 and rep['counts']['read'] == len(rs) + len(rej) == 12
    assert all({x['category'] for x in r['reasons']} == {'tool_calls'} for r in rej)

def test_08_pii_lookalikes_kept_real_contacts_scrubbed(case):
    d = case('08')
    assert cli('prep', d/'lookalikes.jsonl', '--out', d/'data', '--val', '0', '--test', '0')[0] == 0
    rs, rep = rows(d/'data')
    src = [json.loads(l) for l in open(d/'lookalikes.jsonl')]
    got = {r['messages'][0]['content']: r['messages'][1]['content'] for r in rs}
    for s in src:
        if '@' in s['prompt']: continue
        assert got[s['prompt']] == s['completion'], s  # verbatim: versions, ids, dates, hours, ISBN, coordinates, amounts
    contact = next(r for r in rs if '<EMAIL>' in r['messages'][0]['content'])
    assert '<PHONE>' in contact['messages'][0]['content'] and '<PHONE>' in contact['messages'][1]['content']
    assert rep['pii'] == {'EMAIL': 2, 'PHONE': 2}

def test_09_assistant_first_caught_at_prep_and_train_runs_on_what_prep_kept(case, tiny):
    d = case('09')
    rc, out, err = cli('prep', d/'greeting_first.jsonl', '--out', d/'data', '--val', '0', '--test', '0', '--tokenizer', tiny)
    assert rc == 2 and 'greeting_first.jsonl:1: chat_template' in err and 'starts with an assistant turn' in err and 'Traceback' not in err
    rc, out, err = cli('prep', d/'greeting_first.jsonl', '--out', d/'data', '--val', '0', '--test', '0', '--tokenizer', tiny, '--skip-invalid')
    assert rc == 0 and '1 refused' in out
    r = subprocess.run([TUNEBOOK, 'train', str(d/'data'), '--out', str(d/'run'), '--model', str(tiny), '--max-steps', '2', '--batch-size', '4'],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr[-2000:]

def test_10_one_row_prep_says_val_and_test_are_empty(case):
    d = case('10')
    rc, out, err = cli('prep', d/'one.jsonl', '--out', d/'data')
    assert rc == 0, err
    _, rep = rows(d/'data')
    assert (rep['counts']['train'], rep['counts']['validation'], rep['counts']['test']) == (1, 0, 0)
    assert 'validation and test are empty' in out and 'None' not in out

def test_12_operators_and_signs_are_not_duplicates(case):
    d = case('12')
    assert cli('prep', d/'math.jsonl', '--out', d/'data', '--val', '0', '--test', '0')[0] == 0
    _, rep = rows(d/'data')
    assert rep['counts']['kept'] == 12 and sum(rep['counts']['dropped'].values()) == 0
    assert cli('prep', d/'math.jsonl', '--out', d/'exact', '--val', '0', '--test', '0', '--dedup', 'exact')[0] == 0
    assert rows(d/'exact')[1]['counts']['kept'] == 12

def test_14_zero_width_joiners_survive(case):
    d = case('14')
    assert cli('prep', d/'rtl_emoji.jsonl', '--out', d/'data', '--val', '0', '--test', '0')[0] == 0
    rs, rep = rows(d/'data')
    src, out = (d/'rtl_emoji.jsonl').read_text(encoding='utf-8'), messages_text(rs)
    for ch in ('\u200c', '\u200d'): assert out.count(ch) == src.count(ch) > 0, ch
    assert 'controls' not in (rep['cleaning'] or {})

@pytest.mark.parametrize('name,classes', [('stars.jsonl', ['1', '2', '3', '4', '5']), ('plusminus.jsonl', ['-1', '1']),
                                          ('codes.jsonl', ['100', '200', '300', '400', '500'])])
def test_23_integer_labels_are_class_names(case, name, classes):
    d = case('23')
    rc, out, err = cli('prep', d/name, '--out', d/'data', '--format', 'classification')
    assert rc == 0, err
    dd, rep = load_prepared(d/'data')
    assert dd['train'].features['label'].names == classes == rep['labels'] and 'classes' in out

def test_23_csv_and_jsonl_copies_give_the_same_classes(case):
    d = case('23')
    assert cli('prep', d/'stars.jsonl', '--out', d/'j', '--format', 'classification')[0] == 0
    assert cli('prep', d/'stars.csv', '--out', d/'c', '--format', 'classification', '--columns', 'text=review', 'label=stars')[0] == 0
    (j, rj), (c, rc_) = load_prepared(d/'j'), load_prepared(d/'c')
    assert j['train'].features['label'].names == c['train'].features['label'].names == ['1', '2', '3', '4', '5']
    assert rj['class_balance'] == rc_['class_balance']

def test_26_docs_folder(case):
    d = case('26')
    subprocess.run([sys.executable, str(d/'add_binary.py'), str(d/'docs')], check=True)
    rc, out, err = cli('prep', d/'docs', '--out', d/'data', '--val', '0', '--test', '0')
    assert rc == 2 and 'Traceback' not in err
    for f, why in (('empty.txt', 'empty_file'), ('blank.md', 'empty_file'), ('scan-page-3.txt', 'binary_file'), ('menu-cafe.txt', 'undecodable')):
        assert f"{f}:1: {why}" in err, (f, err)
    assert '--encoding cp1252' in err
    help_out = subprocess.run([TUNEBOOK, 'prep', '--help'], capture_output=True, text=True).stdout
    assert '--encoding' in help_out  # the advice names an option that exists
    rc, out, err = cli('prep', d/'docs', '--out', d/'data', '--val', '0', '--test', '0', '--skip-invalid')
    assert rc == 0, err
    rs, rep = rows(d/'data')
    text = '\n'.join(r['text'] for r in rs)
    assert 'Monday | 09:00 | 18:00' in text and 'Monday09:00' not in text
    assert 'track(' not in text and 'color:' not in text and 'Bud1' not in text
    assert '        except ConnectionError:' in text                    # fenced code keeps its indentation
    assert 'renewed twice' in text                                      # the nested folder is read
    assert rep['counts']['rejected'] == 4
    rc, out, err = cli('prep', d/'docs/menu-cafe.txt', '--out', d/'cp', '--encoding', 'cp1252', '--val', '0', '--test', '0')
    assert rc == 0 and 'café' in rows(d/'cp')[0][0]['text']

def test_every_duplicate_cluster_is_auditable(tmp_path):
    "duplicates.jsonl lists every cluster: the row kept, each twin dropped with its kind and similarity (issue 12, kind 2)."
    ctx = ("The museum opens at nine and closes at five on weekdays. Entry is free for children under twelve. Guided tours leave the "
           "main hall every hour, and the cafe on the second floor serves lunch from noon until three. ")
    rows = [{'prompt': ctx + 'When does the museum open?', 'completion': 'At nine.'},
            {'prompt': ctx + 'When does the museum close?', 'completion': 'At five.'},              # shared context, another question: kept
            {'prompt': ctx + 'When does the museum open?', 'completion': 'At nine. Hope that helps!'},  # a footer: near duplicate
            {'prompt': (ctx + 'When does the museum open?').upper(), 'completion': 'AT NINE.'}]     # case only: exact duplicate
    src = tmp_path/'m.jsonl'; src.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    rc, out, err = cli('prep', src, '--out', tmp_path/'d', '--val', '0', '--test', '0')
    assert rc == 0 and 'duplicates.jsonl' in out, err
    cl = [json.loads(l) for l in open(tmp_path/'d'/'duplicates.jsonl')]
    assert len(cl) == 1 and cl[0]['kept'] == f'{src}:1'
    assert {(d['source'].rsplit(':', 1)[1], d['kind']) for d in cl[0]['duplicates']} == {('3', 'near_duplicate'), ('4', 'exact_duplicate')}
    assert all(0.85 <= d['similarity'] <= 1 for d in cl[0]['duplicates'])
    assert rows_kept(tmp_path/'d') == 2

def rows_kept(d): return load_prepared(d)[1]['counts']['kept']

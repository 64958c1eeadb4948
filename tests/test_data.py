"""The data stage on golden fixtures and generated corpora: every input format, every validation category with its
file:line, the PII golden set, near duplicates, leak-free deterministic splits, chunking, the CLI end to end.
Fixtures: tests/fixtures/data (rebuild with `python tests/fixtures/data/make_fixtures.py`)."""
import io, json, random, itertools
from contextlib import redirect_stdout, redirect_stderr
from pathlib import Path
import numpy as np, pytest
from tunebook.core import TunebookError
from tunebook.data import read_inputs, CATEGORIES, Problem
from tunebook.clean import (prep, load_prepared, scrub_pii, near_duplicates, jaccard, shingles, normal_words, token_lengths,
                            split_indices, leakage, clean_text, chunk_text, PII_PATTERNS, summary)
from tunebook.models import load_tokenizer

FX = Path(__file__).parent/'fixtures'/'data'
SAMPLE = Path(__file__).parent.parent/'tunebook'/'samples'/'sample_chat.jsonl'

@pytest.fixture(scope='module')
def tok(): return load_tokenizer()

def cli(*args):
    "Run `tunebook ARGS` in-process: (exit status, stdout, stderr)."
    from tunebook.cli import main
    o, e = io.StringIO(), io.StringIO()
    with redirect_stdout(o), redirect_stderr(e): rc = main([str(a) for a in args])
    return rc, o.getvalue(), e.getvalue()

def jl(path, rows): Path(path).write_text(''.join(json.dumps(r) + '\n' for r in rows)); return Path(path)
def chat(u, a, **kw): return {'messages': [{'role': 'user', 'content': u}, {'role': 'assistant', 'content': a, **kw}]}

# ---------------------------------------------------------------- formats
FIRST = { # fixture -> (format, task, rows, first normalised row without source)
    'openai.jsonl': ('openai', 'chat', 2, {'messages': [{'role': 'system', 'content': 'Be brief.', 'weight': None},
        {'role': 'user', 'content': 'Capital of France?', 'weight': None}, {'role': 'assistant', 'content': 'Lyon?', 'weight': 0},
        {'role': 'user', 'content': 'Sure?', 'weight': None}, {'role': 'assistant', 'content': 'Paris.', 'weight': 1}]}),
    'sharegpt.json': ('sharegpt', 'chat', 2, {'messages': [{'role': 'system', 'content': 'Be kind.', 'weight': None},
        {'role': 'user', 'content': 'Hi there', 'weight': None}, {'role': 'assistant', 'content': 'Hello! How can I help?', 'weight': None}]}),
    'alpaca.json': ('alpaca', 'chat', 2, {'messages': [{'role': 'user', 'content': 'Translate to French.\n\nGood morning', 'weight': None},
        {'role': 'assistant', 'content': 'Bonjour', 'weight': None}]}),
    'alpaca.jsonl': ('alpaca', 'chat', 1, None),
    'prompt_completion.jsonl': ('prompt-completion', 'chat', 2, {'messages': [{'role': 'user', 'content': 'Q: 3*3?', 'weight': None},
        {'role': 'assistant', 'content': '9', 'weight': None}]}),
    'qa.csv': ('prompt-completion', 'chat', 2, {'messages': [{'role': 'user', 'content': 'Write a haiku\nabout "rain"', 'weight': None},
        {'role': 'assistant', 'content': 'Soft rain on the roof', 'weight': None}]}),
    'qa.tsv': ('alpaca', 'chat', 2, {'messages': [{'role': 'user', 'content': 'Add\n\n2 and 3', 'weight': None}, {'role': 'assistant', 'content': '5', 'weight': None}]}),
    'qa.parquet': ('prompt-completion', 'chat', 2, {'messages': [{'role': 'user', 'content': 'Largest planet?', 'weight': None},
        {'role': 'assistant', 'content': 'Jupiter', 'weight': None}]}),
    'text.jsonl': ('text', 'text', 2, {'text': 'Tunebook prepares data.'}),
    'plain.txt': ('text', 'text', 2, {'text': 'First line of a corpus.'}),
    'classification.jsonl': ('classification', 'classification', 2, {'text': 'Love it', 'label': 1}),
}

@pytest.mark.parametrize('name', sorted(FIRST))
def test_each_format_reads_golden_rows(name):
    fmt, task, n, first = FIRST[name]
    r = read_inputs(FX/'formats'/name)
    assert (r.problems, r.task, len(r.dataset), r.formats[str(FX/'formats'/name)]) == ([], task, n, fmt)
    row = r.dataset[0]
    assert row.pop('source').startswith(f"{FX/'formats'/name}:")
    if first is not None: assert row == first

def test_csv_bom_crlf_quoted_newlines_and_start_lines():
    r = read_inputs(FX/'formats'/'qa.csv')
    assert [s.rsplit(':', 1)[1] for s in r.dataset['source']] == ['2', '4']  # the quoted newline spans lines 2-3

def test_columns_mapping_and_classlabel_names():
    r = read_inputs(FX/'formats'/'reviews.csv', columns='text=review,label=stars')
    assert r.task == 'classification' and r.dataset.features['label'].names == ['1', '3', '5']
    assert r.dataset[0]['text'] == 'Great, would buy again' and r.dataset.features['label'].int2str(r.dataset[0]['label']) == '5'
    bad = read_inputs(FX/'formats'/'reviews.csv', format='classification')
    assert [str(p).split(': ', 1)[1] for p in bad.problems][0].startswith('missing_columns')

def test_docs_folder_and_encoding(tmp_path):
    r = read_inputs(FX/'formats'/'docs')
    assert r.task == 'text' and len(r.dataset) == 3 and set(r.formats.values()) == {'docs'}
    (tmp_path/'latin.txt').write_bytes('caf\u00e9 au lait\n'.encode('cp1252'))
    assert read_inputs(tmp_path/'latin.txt').problems[0].category == 'undecodable'
    assert read_inputs(tmp_path/'latin.txt', encoding='cp1252').dataset[0]['text'] == 'café au lait'

def test_format_override_and_errors(tmp_path):
    with pytest.raises(TunebookError, match='unknown format'): read_inputs(SAMPLE, format='yaml')
    with pytest.raises(TunebookError, match='no such file'): read_inputs(tmp_path/'missing.jsonl')
    with pytest.raises(TunebookError, match='mix tasks'): read_inputs([SAMPLE, FX/'formats'/'text.jsonl'])
    r = read_inputs(FX/'formats'/'plain.txt', format='docs')  # the whole file is one document
    assert len(r.dataset) == 1 and 'Second line' in r.dataset[0]['text']

# ---------------------------------------------------------------- validation
EXPECTED = json.loads((FX/'invalid'/'expected.json').read_text())

@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_each_category_with_file_and_line(name):
    path = FX/'invalid'/name
    r = read_inputs(path)
    assert [f"{p.line}: {p.category}" for p in r.problems] == EXPECTED[name]
    for p in r.problems: assert str(p).startswith(f"{path}:{p.line}: {p.category}: ") and p.detail
    assert r.n_read == len(r.dataset) + len({p.line for p in r.problems})  # every row is valid or rejected

def test_fixtures_cover_every_category():
    assert {e.split(': ')[1] for v in EXPECTED.values() for e in v} == set(CATEGORIES)

def test_strict_prep_reports_every_problem_and_writes_nothing(tmp_path):
    files = sorted(f for f in (FX/'invalid').iterdir() if f.name != 'expected.json')
    with pytest.raises(TunebookError) as e: prep(files, tmp_path/'out')
    msg = str(e.value)
    for name, exp in EXPECTED.items():
        for x in exp: assert f"{FX/'invalid'/name}:{x}" in msg, (name, x)
    assert 'nothing was written' in msg and not (tmp_path/'out').exists()
    assert not [p for p in tmp_path.iterdir()]  # no temporary folder left behind either

@pytest.mark.parametrize('seed', range(3))
def test_every_row_is_kept_or_counted(tmp_path, seed):
    "Property: for a random mix of good, bad, duplicate and empty rows, read = kept + rejected + dropped, and the rejects are the bad lines."
    R = random.Random(seed)
    bads = [[1, 2], {'messages': []}, {'messages': [{'role': 'user', 'content': 'x'}]}, {'messages': [{'role': 'bot', 'content': 'x'}, {'role': 'assistant', 'content': 'y'}]},
            chat('x', 'y', weight=3), {'messages': [{'role': 'user'}, {'role': 'assistant', 'content': 'y'}]}]
    rows = []
    for i in range(R.randint(40, 80)):
        r = R.random()
        if r < 0.15: rows.append(R.choice(bads))
        elif r < 0.25 and rows: rows.append(R.choice(rows))
        elif r < 0.3: rows.append(chat(f'q{i}', ' \u200b '))
        else: rows.append(chat(f"Question {i} about {R.choice(['tea', 'maps', 'rust', 'owls'])} number {R.randint(0, 10**6)}?", f"Answer {i}: {R.random():.6f}."))
    bad_lines = {i+1 for i, r in enumerate(rows) if r in bads}
    src = jl(tmp_path/'mix.jsonl', rows)
    if not bad_lines: return
    with pytest.raises(TunebookError): prep(src, tmp_path/'strict')
    rep = prep(src, tmp_path/'out', skip_invalid=True, max_tokens=None)
    c = rep['counts']
    assert c['read'] == len(rows) == c['kept'] + c['rejected'] + sum(c['dropped'].values())
    assert c['kept'] == c['train'] + c['validation'] + c['test']
    rej = [json.loads(l) for l in open(tmp_path/'out'/'rejected.jsonl')]
    assert {int(r['source'].rsplit(':', 1)[1]) for r in rej} == bad_lines and len(rej) == c['rejected']
    dd, rep2 = load_prepared(tmp_path/'out')
    assert rep2 == rep and sum(len(s) for s in dd.values()) == c['kept']

# ---------------------------------------------------------------- cleaning and PII
GOLD = [json.loads(l) for l in open(FX/'pii_golden.jsonl')]

def test_pii_golden_set_full_recall_no_false_positives():
    want, got = {}, {}
    for g in GOLD:
        text, hits = scrub_pii(g['text'])
        assert dict(hits) == g['expect'], (g['text'], dict(hits), text)
        for t, n in g['expect'].items():
            assert text.count(f'<{t}>') >= n
            want[t] = want.get(t, 0) + n
    assert set(want) == {name for name, _, _ in PII_PATTERNS}  # every type is in the golden set
    assert all(v >= 4 for v in want.values())                   # with several formats each

def test_pii_placeholders_leave_no_trace():
    for g in GOLD:
        if not g['expect']: continue
        text, _ = scrub_pii(g['text'])
        for secret in ('john@example.com', '4111 1111 1111 1111', '7946 0958', 'hf_AbCd', 'AKIAIOSFODNN7EXAMPLE', 'DE89 3704', '192.168.1.20'):
            assert secret not in text

def test_clean_text_steps():
    assert clean_text('<html><body><p>Hi &amp; bye</p><script>evil()</script></body></html>')[0] == 'Hi & bye'
    assert clean_text('e\u0301')[0] == '\u00e9' and clean_text('a\x00b\u200cc')[0] == 'ab\u200cc'  # NUL goes, ZWNJ (Persian, Hindi) stays
    assert clean_text('Use <b>bold</b> here') == ('Use <b>bold</b> here', [])  # talking about markup is not markup
    assert clean_text("I Don't", lower=True, contractions=True)[0] == 'i do not'

# ---------------------------------------------------------------- dedup
def test_near_duplicate_pairs_and_template_siblings():
    base = "Extract the person's name, city, year and job as JSON.\nSentence: Lena became a pilot after arriving in Hanoi in 2013."
    pos = [base.upper(), '  ' + base.replace(' ', '  ') + ' ', 'Please. ' + base, base + ' Thanks!']
    neg = [base.replace('Lena', 'Omar'), base.replace('Hanoi', 'Lima').replace('2013', '1999'), base.replace('pilot', 'nurse')]
    dup = near_duplicates([base] + pos + neg)
    assert sorted(dup) == [1, 2, 3, 4] and set(dup.values()) == {0}

def test_near_duplicates_agree_with_brute_force():
    R = random.Random(0)
    words = [f'w{i}' for i in range(300)]
    texts = []
    for i in range(300):
        if texts and R.random() < 0.3:
            t = R.choice(texts).split(); k = R.randrange(len(t)); t[k] = R.choice(words)  # one word changed
            texts.append(' '.join(t))
        else: texts.append(' '.join(R.choices(words, k=R.randint(30, 60))))
    found = near_duplicates(texts, threshold=0.8)
    S = [shingles(t) for t in texts]
    for j, i in found.items(): assert i < j and jaccard(S[i], S[j]) >= 0.8  # no false positive
    truth = {j for i, j in itertools.combinations(range(len(texts)), 2) if jaccard(S[i], S[j]) >= 0.8}
    assert len(found.keys() & truth) >= 0.97 * len(truth) and len(truth) > 30

def test_sample_data_default_prep_keeps_siblings(tmp_path, tok):
    rep = prep(SAMPLE, tmp_path/'s')
    c = rep['counts']
    assert c['read'] == 400 and sum(c['dropped'].values()) < 20 and c['rejected'] == 0
    assert (c['train'], c['validation'], c['test']) == (c['kept'] - 2*round(0.1*c['kept']), round(0.1*c['kept']), round(0.1*c['kept']))
    assert rep['leakage']['exact'] == rep['leakage']['near'] == 0 and rep['task'] == 'chat'
    assert (tmp_path/'s'/'lengths.png').stat().st_size > 1000
    dd, _ = load_prepared(tmp_path/'s')
    exact = [len(tok.apply_chat_template(r['messages'], tokenize=True, return_dict=True)['input_ids']) for r in dd['test']]
    assert rep['tokens']['test']['max'] == max(exact) and rep['tokens']['test']['tokens'] == sum(exact)

def test_token_lengths_match_chat_template_on_every_chat_fixture(tok):
    for name in ('openai.jsonl', 'sharegpt.json', 'alpaca.json', 'qa.csv'):
        ds = read_inputs(FX/'formats'/name).dataset
        msgs = [[{'role': m['role'], 'content': m['content']} for m in r['messages']] for r in ds]
        assert list(token_lengths(ds, tok)) == [len(tok.apply_chat_template(m, tokenize=True, return_dict=True)['input_ids']) for m in msgs]

# ---------------------------------------------------------------- splits and leakage
def test_splits_deterministic_and_stratified():
    labels = [i % 7 for i in range(700)] + [7]*4
    a, b, c = (split_indices(len(labels), 0.1, 0.1, s, labels) for s in (0, 0, 1))
    assert all(np.array_equal(a[k], b[k]) for k in a) and not np.array_equal(a['test'], c['test'])
    for k in ('validation', 'test'):
        counts = np.bincount([labels[i] for i in a[k]], minlength=8)
        assert set(counts[:7]) <= {9, 10} and counts[7] == 1 and counts.sum() == 70   # every class, in proportion, even the 4-row one
    assert sorted(np.concatenate(list(a.values()))) == list(range(len(labels)))

def test_leakage_found_without_dedup_and_zero_with_it(tmp_path):
    R = random.Random(1)
    topic = lambda: ' '.join(R.choices(['owls', 'rust', 'tea', 'maps', 'rain', 'jazz', 'salt', 'kites'], k=12))
    rows = [chat(f"Tell me fact {i} about {topic()} and why {R.randint(0, 10**9)} matters today", f"Fact {i} is {topic()} {R.random()}.") for i in range(150)]
    rows += [json.loads(json.dumps(r)) for r in rows[:30]]                                                      # exact twins
    rows += [chat(r['messages'][0]['content'], r['messages'][1]['content'] + ' Hope that helps.') for r in rows[30:60]]  # near twins
    src = jl(tmp_path/'d.jsonl', rows)
    none = prep(src, tmp_path/'none', dedup='none')
    assert none['leakage']['exact'] > 0 and none['leakage']['near'] > 0
    near = prep(src, tmp_path/'near')
    assert near['counts']['dropped']['exact_duplicate'] == 30 and near['counts']['dropped']['near_duplicate'] == 30
    assert near['leakage'] == {'exact': 0, 'near': 0, 'examples': []}
    again = prep(src, tmp_path/'again')
    assert again['hashes'] == near['hashes']
    other = prep(src, tmp_path/'other', seed=1)
    assert other['hashes']['test'] != near['hashes']['test']

def test_classification_prep(tmp_path):
    R = random.Random(0)
    rows = [{'review': f"review {i}: {' '.join(R.choices(['good', 'bad', 'fine', 'meh', 'wow'], k=8))} {R.random()}", 'stars': str(R.choice([1, 1, 1, 3, 5]))} for i in range(300)]
    src = tmp_path/'r.csv'
    import csv
    with open(src, 'w', newline='') as f:
        w = csv.DictWriter(f, ['review', 'stars']); w.writeheader(); w.writerows(rows)
    rep = prep(src, tmp_path/'out', columns='text=review,label=stars')
    dd, _ = load_prepared(tmp_path/'out')
    assert rep['task'] == 'classification' and rep['labels'] == ['1', '3', '5']
    assert dd['train'].features['label'].names == ['1', '3', '5'] and set(dd['test'].column_names) == {'text', 'label'}
    share = lambda s: np.bincount(dd[s]['label'], minlength=3) / len(dd[s])
    assert np.abs(share('train') - share('test')).max() < 0.05
    bal = rep['class_balance']                                  # class balance per split, by label name, in the report
    assert set(bal) == {'train', 'validation', 'test'} and all(sum(bal[k].values()) == len(dd[k]) for k in bal)
    assert bal['train'] == {n: int(c) for n, c in zip(dd['train'].features['label'].names, np.bincount(dd['train']['label'], minlength=3)) if c}
    assert 'classes (train): 1 ' in summary(rep)

def test_docs_are_cleaned_and_chunked(tmp_path, tok):
    d = tmp_path/'docs'; d.mkdir()
    (d/'a.html').write_text('<html><head><style>x{}</style><script>track()</script></head><body>' +
                            ''.join(f'<p>Paragraph {i}. ' + ' '.join(f'Sentence {i}.{j} is about item {i*10+j}.' for j in range(8)) + '</p>' for i in range(30)) + '</body></html>')
    (d/'b.md').write_text('# Short\n\nA short note.\n')
    rep = prep(d, tmp_path/'out', chunk_tokens=128, chunk_overlap=16, val=0.2, test=0.2)
    dd, _ = load_prepared(tmp_path/'out')
    texts = [t for s in dd.values() for t in s['text']]
    assert rep['task'] == 'text' and rep['counts']['added_by_chunking'] > 5 and rep['cleaning']['html'] == 1
    assert not any('track()' in t or '<p>' in t for t in texts)
    assert max(len(tok(t)['input_ids']) for t in texts) <= 128 + 4
    assert rep['counts']['read'] + rep['counts']['added_by_chunking'] == rep['counts']['kept'] + sum(rep['counts']['dropped'].values())

# ---------------------------------------------------------------- CLI
def test_cli_end_to_end(tmp_path):
    rc, out, err = cli('prep', SAMPLE, '--out', tmp_path/'o', '--val', 0.2, '--test', 0.1, '--seed', 3, '--dedup', 'exact', '--no-pii')
    assert rc == 0, err
    assert 'train 280, validation 80, test 40' in out and len(out.splitlines()) < 25
    rep = json.loads((tmp_path/'o'/'report.json').read_text())
    assert rep['settings']['pii'] is False and rep['settings']['dedup'] == 'exact' and rep['settings']['seed'] == 3
    rc, out, err = cli('prep', SAMPLE, '--out', tmp_path/'o')
    assert rc == 2 and 'not empty' in err and '--overwrite' in err
    rc, out, err = cli('prep', SAMPLE, '--out', tmp_path/'o', '--overwrite', '--seed', 4)
    assert rc == 0 and json.loads((tmp_path/'o'/'report.json').read_text())['settings']['seed'] == 4

def test_cli_invalid_input_exits_2_with_file_line(tmp_path):
    bad = FX/'invalid'/'ragged_row.csv'
    rc, out, err = cli('prep', bad, '--out', tmp_path/'o')
    assert rc == 2 and f'{bad}:5: ragged_row' in err and not (tmp_path/'o').exists()
    rc, out, err = cli('prep', bad, '--out', tmp_path/'o', '--skip-invalid')
    assert rc == 0 and 'rejected 1' in out and (tmp_path/'o'/'rejected.jsonl').exists()
    rc, out, err = cli('prep', SAMPLE, '--out', tmp_path/'p', '--format', 'yaml')
    assert rc == 2 and '--format' in err

def test_cli_columns(tmp_path):
    rc, out, err = cli('prep', FX/'formats'/'reviews.csv', '--columns', 'text=review', 'label=stars', '--out', tmp_path/'o', '--val', 0, '--test', 0)
    assert rc == 0, err
    assert load_prepared(tmp_path/'o')[1]['labels'] == ['1', '3', '5']
    rc, out, err = cli('prep', FX/'formats'/'reviews.csv', '--columns', 'text=review,label=stars', '--out', tmp_path/'p', '--val', 0, '--test', 0)
    assert rc == 0, err
    rc, out, err = cli('prep', FX/'formats'/'reviews.csv', '--columns', 'review', '--out', tmp_path/'q')
    assert rc == 2 and 'FIELD=COLUMN' in err

def test_load_prepared_refuses_other_folders(tmp_path):
    with pytest.raises(TunebookError, match='not a prepared data folder'): load_prepared(tmp_path)

def test_token_sample_estimates_but_never_misses_a_long_row(tmp_path):
    R = random.Random(2)
    rows = [chat(f"Question {i}: {' '.join(R.choices(['alpha', 'beta', 'gamma', 'delta'], k=10))} {R.random()}?", f"Answer {i}.") for i in range(300)]
    rows[123] = chat('Long one: ' + ' '.join(f'word{k}' for k in range(400)), 'ok')   # far above max_tokens=200
    src = jl(tmp_path/'t.jsonl', rows)
    full = prep(src, tmp_path/'full', max_tokens=200)
    samp = prep(src, tmp_path/'samp', max_tokens=200, token_sample=100)
    assert full['counts'] == samp['counts'] and samp['counts']['dropped']['too_long'] == 1
    assert f"{src}:124" in samp['dropped_examples']['too_long']
    assert samp['tokens']['sampled'] == 100 and 'counted' in samp['tokens']['train'] and 'counted' not in full['tokens']['train']
    assert abs(samp['tokens']['train']['mean'] - full['tokens']['train']['mean']) < 0.1 * full['tokens']['train']['mean']
    assert samp['hashes'] == full['hashes']

def test_labels_normalised_like_text_and_case_variants_reported(tmp_path):
    "Labels differing by Unicode form or spaces are one class; labels differing by case stay apart but are reported (issue 18 §4)."
    rows = [{'text': f'review {i}', 'label': lab} for i, lab in enumerate(['Caf\u00e9', 'Cafe\u0301', ' Café ', 'Positive', 'positive', 'neg', 'neg'])]
    src = jl(tmp_path/'labels.jsonl', rows)
    r = read_inputs(src)
    assert r.dataset.features['label'].names == ['Café', 'Positive', 'neg', 'positive'] and r.label_notes == [['Positive', 'positive']]
    rep = prep(src, tmp_path/'out', val=0, test=0, dedup='none')
    assert rep['label_case_variants'] == [['Positive', 'positive']] and 'differing only by case' in summary(rep)

def test_non_text_values_are_kept_or_refused_in_every_normaliser():
    "Numbers and booleans become text (counted), text parts are joined, objects are refused: Alpaca, ShareGPT, OpenAI, prompt/completion, text."
    from collections import Counter
    from tunebook.data import normalise_row, BadRow
    n = Counter()
    assert normalise_row({'prompt': 7, 'completion': False}, 'prompt-completion', n)['messages'][1]['content'] == 'false'
    assert normalise_row({'conversations': [{'from': 'human', 'value': 2.5}, {'from': 'gpt', 'value': 5}]}, 'sharegpt', n)['messages'][0]['content'] == '2.5'
    assert normalise_row({'messages': [{'role': 'user', 'content': [{'type': 'text', 'text': 'a'}, 'b']}, {'role': 'assistant', 'content': 1}]}, 'openai', n)['messages'][0]['content'] == 'ab'
    assert normalise_row({'text': 12345}, 'text', n) == {'text': '12345'}
    assert normalise_row({'prompt': [{'role': 'user', 'content': 'Hi'}], 'completion': [{'role': 'assistant', 'content': 'Yo'}]}, 'prompt-completion')['messages'][1]['content'] == 'Yo'
    assert sum(n.values()) >= 6 and all('-> text' in k or 'joined' in k for k in n)
    for bad, fmt in (({'instruction': 'x', 'output': {'a': 1}}, 'alpaca'), ({'prompt': 'x', 'completion': float('nan')}, 'prompt-completion'),
                     ({'text': ['a', {'b': 1}]}, 'text'), ({'text': 'x', 'label': {'a': 1}}, 'classification')):
        with pytest.raises(BadRow) as e: normalise_row(bad, fmt)
        assert e.value.problems[0][0] == 'not_text', bad

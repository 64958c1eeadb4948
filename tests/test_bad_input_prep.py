"""A bad-input corpus for `tunebook prep`: wrong arguments, wrong files, wrong contents. Each must end with one message
naming what is wrong (and where), exit status 2, nothing written, and never a traceback."""
import io, json, os
from contextlib import redirect_stdout, redirect_stderr
from pathlib import Path
import pytest

def cli(*args):
    "Run `tunebook ARGS` in-process: (exit status, stdout, stderr); an exception escaping `main` is a traceback the user would see."
    from tunebook.cli import main
    o, e = io.StringIO(), io.StringIO()
    with redirect_stdout(o), redirect_stderr(e): rc = main([str(a) for a in args])
    return rc, o.getvalue(), e.getvalue()

GOOD = ''.join(json.dumps({'messages': [{'role': 'user', 'content': f'Question {i}?'}, {'role': 'assistant', 'content': f'Answer {i}.'}]}) + '\n' for i in range(6))

def files(d:Path):
    "The corpus's input files, written into `d`."
    (d/'good.jsonl').write_text(GOOD)
    (d/'empty.jsonl').write_text('')
    (d/'blank.jsonl').write_text('\n  \n')
    (d/'garbage.jsonl').write_text('this is not json\n')
    (d/'array_unclosed.json').write_text('[{"instruction": "a", "output": "b"},\n')
    (d/'scalar.json').write_text('42\n')
    (d/'png.jsonl').write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(100))
    (d/'latin1.jsonl').write_bytes('{"prompt": "caf\u00e9", "completion": "ok"}\n'.encode('latin-1'))
    (d/'utf16.jsonl').write_text('{"prompt": "hi", "completion": "ok"}\n', encoding='utf-16')
    (d/'bad.parquet').write_bytes(b'PAR1 this is not parquet')
    (d/'header_only.csv').write_text('prompt,completion\n')
    (d/'unknown.csv').write_text('foo,bar\n1,2\n')
    (d/'ragged.csv').write_text('prompt,completion\na,b,c\n')
    (d/'nested.jsonl').write_text(json.dumps({'instruction': {'en': 'Hi'}, 'output': ['a', {'b': 1}]}) + '\n')
    (d/'null_messages.jsonl').write_text(json.dumps({'messages': None}) + '\n')
    (d/'labels.jsonl').write_text(''.join(json.dumps({'text': f't{i}', 'label': [1]}) + '\n' for i in range(3)))
    (d/'nodocs').mkdir(); (d/'nodocs'/'a.bin').write_bytes(b'\x00')
    (d/'afile').write_text('x')
    (d/'out_exists').mkdir(); (d/'out_exists'/'keep.txt').write_text('user data')
    return d

CORPUS = [ # (arguments, text the message must contain); {d} is the corpus folder
    (['{d}/good.jsonl'], '--out DIR is required'),
    (['{d}/missing.jsonl', '--out', '{d}/o'], 'no such file'),
    (['{d}/good.jsonl', '--out', '{d}/out_exists'], 'already exists'),
    (['{d}/good.jsonl', '--out', '{d}/afile'], 'already exists'),
    (['{d}/good.jsonl', '--out', '{d}/o', '--format', 'yaml'], '--format yaml'),
    (['{d}/good.jsonl', '--out', '{d}/o', '--val', '1.5'], '--val 1.5'),
    (['{d}/good.jsonl', '--out', '{d}/o', '--test', '-0.1'], '--test -0.1'),
    (['{d}/good.jsonl', '--out', '{d}/o', '--val', '0.6', '--test', '0.5'], 'leave nothing to train on'),
    (['{d}/good.jsonl', '--out', '{d}/o', '--dedup', 'fuzzy'], '--dedup fuzzy'),
    (['{d}/good.jsonl', '--out', '{d}/o', '--near-threshold', '0'], '--near-threshold 0'),
    (['{d}/good.jsonl', '--out', '{d}/o', '--near-threshold', '1.5'], '--near-threshold 1.5'),
    (['{d}/good.jsonl', '--out', '{d}/o', '--max-tokens', '-5'], '--max-tokens -5'),
    (['{d}/good.jsonl', '--out', '{d}/o', '--encoding', 'klingon'], "unknown encoding 'klingon'"),
    (['{d}/good.jsonl', '--out', '{d}/o', '--columns', 'prompt'], "'prompt' is not FIELD=COLUMN"),
    (['{d}/good.jsonl', '--out', '{d}/o', '--tokenizer', '{d}/no-such-model'], 'no-such-model'),
    (['{d}/good.jsonl', '--out', '{d}/o', '--val', 'abc'], "invalid float value: 'abc'"),
    (['{d}/good.jsonl', '--out', '{d}/o', '--no-such-option'], 'unrecognized arguments'),
    (['{d}/empty.jsonl', '--out', '{d}/o'], 'empty.jsonl:1: empty_file'),
    (['{d}/blank.jsonl', '--out', '{d}/o'], 'blank.jsonl:1: empty_file'),
    (['{d}/garbage.jsonl', '--out', '{d}/o'], 'garbage.jsonl:1: invalid_json'),
    (['{d}/array_unclosed.json', '--out', '{d}/o'], 'array_unclosed.json:'),
    (['{d}/scalar.json', '--out', '{d}/o'], 'scalar.json:1'),
    (['{d}/png.jsonl', '--out', '{d}/o'], 'png.jsonl:1: binary_file'),
    (['{d}/latin1.jsonl', '--out', '{d}/o'], 'latin1.jsonl:1: undecodable'),
    (['{d}/utf16.jsonl', '--out', '{d}/o'], 'utf16.jsonl:1'),
    (['{d}/bad.parquet', '--out', '{d}/o'], 'bad.parquet'),
    (['{d}/header_only.csv', '--out', '{d}/o'], 'header_only.csv:1: empty_file'),
    (['{d}/unknown.csv', '--out', '{d}/o'], 'unknown.csv:1: missing_columns'),
    (['{d}/ragged.csv', '--out', '{d}/o'], 'ragged.csv:2: ragged_row'),
    (['{d}/nested.jsonl', '--out', '{d}/o'], 'nested.jsonl:1: not_text'),
    (['{d}/null_messages.jsonl', '--out', '{d}/o'], 'null_messages.jsonl:1: missing_messages'),
    (['{d}/labels.jsonl', '--out', '{d}/o'], 'labels.jsonl:1: not_text'),
    (['{d}/nodocs', '--out', '{d}/o'], 'holds no'),
    (['{d}/good.jsonl', '{d}/labels.jsonl', '--out', '{d}/o', '--skip-invalid'], 'mix tasks'),
    (['{d}/good.jsonl', '--out', '{d}/o', '--min-tokens', '5000'], None),  # not a CLI option: refused by argparse
]

@pytest.mark.parametrize('args,want', CORPUS, ids=[' '.join(a[1:]) or a[0] for a, _ in CORPUS])
def test_prep_bad_input_gives_a_message_and_exit_2(tmp_path, args, want):
    d = files(tmp_path)
    args = [a.format(d=d) for a in args]
    before = sorted(p.name for p in d.iterdir())
    rc, out, err = cli('prep', *args)
    assert rc == 2, (rc, out, err)
    assert 'Traceback' not in err + out
    if want: assert want in err, err
    assert sorted(p.name for p in d.iterdir()) == before          # nothing written next to the inputs
    assert (d/'out_exists'/'keep.txt').read_text() == 'user data'  # user data untouched

def test_advice_names_only_options_that_exist(tmp_path):
    "Every `--option` a prep message suggests is an option of `tunebook prep` (or of the command it names)."
    import re, subprocess, shutil, sys
    exe = shutil.which('tunebook') or str(Path(sys.executable).parent/'tunebook')
    helps = {c: subprocess.run([exe, c, '--help'], capture_output=True, text=True).stdout.replace('_', '-') for c in ('prep', 'eval')}
    d = files(tmp_path)
    said = ''
    for args, _ in CORPUS: said += cli('prep', *[a.format(d=d) for a in args])[2]
    said = '\n'.join(l for l in said.splitlines() if 'unrecognized arguments' not in l)  # argparse echoing the user's own typo
    said = re.sub(r'pip install[^\n;]*', '', said)  # options of other programs (pip) are not ours to check
    said += cli('prep', d/'good.jsonl', '--out', d/'ok', '--val', '0', '--test', '0')[1]  # the summary's advice too
    for opt in sorted(set(re.findall(r'(?<![\w-])--[a-z][a-z-]+', said))):
        cmd = 'eval' if f'tunebook eval RUN {opt}' in said else 'prep'
        assert opt in helps[cmd] or opt == '--help', (opt, cmd)

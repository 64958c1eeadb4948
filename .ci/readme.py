"""Generate README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which these machines cannot install).
Markdown cells are copied; code cells are skipped (index has only a hidden import cell).
Usage: python .ci/readme.py [--check]   (--check exits 1 when README.md is out of date)"""
import json, sys
from pathlib import Path
root = Path(__file__).resolve().parent.parent
nb = json.loads((root/'nbs'/'index.ipynb').read_text(encoding='utf-8'))
md = "\n\n".join(''.join(c['source']).strip() for c in nb['cells'] if c['cell_type'] == 'markdown') + "\n"
head = "<!-- generated from nbs/index.ipynb by `python .ci/readme.py`: edit the notebook, not this file -->\n\n"
text = head + md
readme = root/'README.md'
if '--check' in sys.argv:
    if readme.read_text(encoding='utf-8') != text: sys.exit("README.md is out of date: run `python .ci/readme.py`")
else: readme.write_text(text, encoding='utf-8'); print(f"wrote {readme}")

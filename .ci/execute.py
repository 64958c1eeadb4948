"""Execute notebooks top to bottom with a real Jupyter kernel, exactly as "Run all" does, and keep their outputs.

Each notebook runs in its own process, with the notebook's folder as the kernel's working directory (as Jupyter and
Colab do), stops at the first cell that raises (as Run all does), and is killed when it runs past `--timeout` seconds.
Every notebook is tried; a summary lists each one's time and the error of each that failed.
Outputs are written back in place (use `--no-write` to only check); carriage-return progress output is reduced to
what a terminal would finally show, and widget views (which need a live kernel) are dropped.

Usage: python .ci/execute.py [--timeout 600] [--no-write] NB.ipynb [NB.ipynb ...]
Exit status: 0 when every notebook ran, 1 otherwise. Run `nbdev_clean` afterwards in the repository."""
import argparse, json, os, re, subprocess, sys, time
from pathlib import Path

def _terminal_text(s:str)->str:
    "What a terminal shows for `s`: each line keeps only the text after its last carriage return."
    return '\n'.join(l.rsplit('\r', 1)[-1] for l in s.replace('\r\n', '\n').split('\n'))

def _tidy(nb):
    "Drop widget views and collapse carriage-return progress output, so committed outputs stay small."
    for c in nb.cells:
        if c.cell_type != 'code': continue
        merged = []  # consecutive writes to one stream form one output, as Jupyter shows them
        for o in c.get('outputs', []):
            if merged and o.get('output_type') == 'stream' and merged[-1].get('output_type') == 'stream' and merged[-1]['name'] == o['name']:
                merged[-1]['text'] += o['text']
            else: merged.append(o)
        outs = []
        for o in merged:
            if o.get('output_type') == 'stream':
                o['text'] = _terminal_text(o['text'])
                if not o['text'].strip(): continue
            elif 'data' in o:
                o['data'].pop('application/vnd.jupyter.widget-view+json', None)
                if not o['data']: continue
            outs.append(o)
        c['outputs'] = outs

def run_one(path:Path, timeout:int, write:bool)->int:
    "Execute one notebook in this process (the child side of `main`)."
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name='python3', allow_errors=False,
                            resources={'metadata': {'path': str(path.parent)}})
    err = None
    try: client.execute()
    except CellExecutionError as e: err = e
    _tidy(nb)
    if write: nbformat.write(nb, path)
    if err is not None:
        # the failing cell's source and the error's last lines are enough to find it
        msg = str(err).strip().splitlines()
        print('\n'.join(msg[-25:]), file=sys.stderr)
        return 1
    return 0

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('notebooks', nargs='+', type=Path)
    ap.add_argument('--timeout', type=int, default=600, help='seconds per notebook (the whole notebook, not a cell)')
    ap.add_argument('--no-write', action='store_true', help='do not write outputs back')
    ap.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child: sys.exit(run_one(a.notebooks[0].resolve(), a.timeout, not a.no_write))
    results, t00 = [], time.time()
    for nb in a.notebooks:
        nb = nb.resolve()
        cmd = [sys.executable, __file__, '--child', '--timeout', str(a.timeout), str(nb)] + (['--no-write'] if a.no_write else [])
        t0 = time.time(); print(f"--> {nb.name}", flush=True)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try: out, _ = p.communicate(timeout=a.timeout + 60); rc = p.returncode
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9); out, _ = p.communicate(); rc = 'timeout'
        dt = time.time() - t0
        ok = rc == 0
        if not ok: print(re.sub(r'\x1b\[[0-9;]*m', '', out or '').rstrip() + (f"\nran past {a.timeout + 60}s" if rc == 'timeout' else ''), flush=True)
        print(f"    {'ok  ' if ok else 'FAIL'} {dt:6.1f}s  {nb.name}", flush=True)
        results.append((nb.name, ok, dt))
    print(f"\n{'lesson':<28} {'time':>8}  result")
    for name, ok, dt in results: print(f"{name:<28} {dt:7.1f}s  {'ok' if ok else 'FAILED'}")
    failed = [n for n, ok, _ in results if not ok]
    print(f"{len(results) - len(failed)}/{len(results)} notebooks ran top to bottom in {time.time() - t00:.0f}s"
          + (f"; failed: {', '.join(failed)}" if failed else ''))
    sys.exit(1 if failed else 0)

if __name__ == '__main__': main()

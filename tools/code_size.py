"""How long tunebook's functions are: median and longest per module and overall, and every function over the limit.

Usage: `python tools/code_size.py [--limit 40] [MODULE ...]` (modules by name, e.g. `train classify`; default: all).
A function's length is its body in lines: from the first statement after the docstring to its last line, so the
signature (one docment line per parameter) and the one-line docstring do not count. Methods count as functions;
functions nested inside another function count as part of it. Prints figures; never fails.
"""
import ast, sys, statistics, argparse
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent/'tunebook'

def body_lines(fn:ast.AST)->int:
    "Lines of `fn`'s body, docstring excluded."
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], 'value', None), ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:] or body
    return fn.end_lineno - body[0].lineno + 1

def functions(path:Path)->list:
    "(qualified name, body lines) of every top-level function and method in a module."
    out = []
    for node in ast.parse(path.read_text(encoding='utf-8')).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)): out.append((node.name, body_lines(node)))
        elif isinstance(node, ast.ClassDef):
            out += [(f"{node.name}.{f.name}", body_lines(f)) for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return out

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('modules', nargs='*', help='module names (default: every module of the package)')
    ap.add_argument('--limit', type=int, default=40, help='list the functions longer than this')
    a = ap.parse_args(argv)
    mods = a.modules or sorted(p.stem for p in PKG.glob('*.py') if not p.stem.startswith('_'))
    allf, over = [], []
    print(f"{'module':<14} {'functions':>9} {'median':>6} {'max':>4}  longest")
    for m in mods:
        fs = functions(PKG/f'{m}.py')
        if not fs: continue
        allf += [n for _, n in fs]
        name, n = max(fs, key=lambda x: x[1])
        print(f"{m:<14} {len(fs):>9} {statistics.median(n for _, n in fs):>6g} {n:>4}  {name}")
        over += [(m, f, k) for f, k in fs if k > a.limit]
    print(f"{'all':<14} {len(allf):>9} {statistics.median(allf):>6g} {max(allf):>4}")
    print(f"\n{len(over)} function(s) over {a.limit} lines" + (':' if over else ''))
    for m, f, k in sorted(over, key=lambda x: -x[2]): print(f"  {k:>4}  {m}.{f}")

if __name__ == '__main__': main()

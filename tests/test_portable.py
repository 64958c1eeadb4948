"""Portability: tunebook's modules import on an OS without the POSIX-only `fcntl` and `resource` modules (Windows).
A fresh interpreter makes both unimportable *for tunebook's own code*: `import fcntl` / `import resource` from a
`tunebook` module raises ImportError, as it would on Windows. (Third-party libraries keep them: on Linux psutil and
transformers import `resource` legitimately, and on Windows they take other code paths.) Then it imports the modules
that train and measure; the portable helpers in `tunebook.core` must still work."""
import subprocess, sys, textwrap

def _run(code:str)->subprocess.CompletedProcess:
    pre = textwrap.dedent("""\
        import builtins, sys
        _real = builtins.__import__
        def _no_posix(name, globals=None, locals=None, fromlist=(), level=0):
            if name in ('fcntl', 'resource') and (globals or {}).get('__name__', '').startswith('tunebook'):
                raise ModuleNotFoundError(f"import of {name} halted: POSIX-only (as on Windows)")
            return _real(name, globals, locals, fromlist, level)
        builtins.__import__ = _no_posix
        sys.modules.pop('fcntl', None); sys.modules.pop('resource', None)
        """)
    return subprocess.run([sys.executable, '-c', pre + textwrap.dedent(code)], capture_output=True, text=True, timeout=300)

def test_blocked_modules_really_fail_to_import_from_tunebook_code():
    r = _run("""
        g = {'__name__': 'tunebook.x'}
        exec('import fcntl', g)""")
    assert r.returncode != 0 and 'import of fcntl halted' in r.stderr

def test_training_modules_import_without_fcntl_and_resource():
    r = _run("""
        import tunebook.core, tunebook.models, tunebook.train, tunebook.classify
        print('imported')""")
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'imported' in r.stdout

def test_core_helpers_work_without_fcntl_and_resource(tmp_path):
    r = _run(f"""
        from tunebook.core import file_lock, peak_memory_mb
        with file_lock({str(tmp_path/'x.lock')!r}): pass
        mb = peak_memory_mb('cpu')
        print('peak', mb)
        assert mb is None or mb > 0""")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith('peak ')

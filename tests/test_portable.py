"""Portability: tunebook's modules import on an OS without the POSIX-only `fcntl` and `resource` modules (Windows).
A fresh interpreter has both made unimportable (`sys.modules[name] = None` makes `import name` raise ImportError),
then imports the modules that train and measure; the portable helpers in `tunebook.core` must still work."""
import subprocess, sys, textwrap

def _run(code:str)->subprocess.CompletedProcess:
    pre = "import sys\nfor m in ('fcntl', 'resource'): sys.modules[m] = None\n"
    return subprocess.run([sys.executable, '-c', pre + textwrap.dedent(code)], capture_output=True, text=True, timeout=300)

def test_blocked_modules_really_fail_to_import():
    r = _run("import fcntl")
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

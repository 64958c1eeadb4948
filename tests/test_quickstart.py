"""End to end: `tunebook quickstart` as a user runs it, offline, on the bundled model and the sample data."""
import json, os, subprocess, sys
from pathlib import Path

def test_quickstart_cli_end_to_end(tmp_path):
    out = tmp_path/'qs'
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    r = subprocess.run([sys.executable, '-m', 'tunebook.cli', 'quickstart', '--out', str(out), '--max_steps', '4', '--limit', '8'],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'held-out perplexity went down' in r.stdout, r.stdout[-2000:]
    run = out/'run'
    for p in ('adapter/adapter_model.safetensors', 'adapter/adapter_config.json', 'summary.json', 'metrics.jsonl',
              'loss.png', 'eval.json', 'eval.md'):
        assert (run/p).exists(), p
    ev = json.loads((run/'eval.json').read_text())
    assert ev['metrics']['perplexity']['tuned'] < ev['metrics']['perplexity']['base']
    assert (out/'hub'/'README.md').exists()
    # a second run into the same folder is refused, and the first run is untouched
    before = (run/'adapter'/'adapter_model.safetensors').read_bytes()
    r2 = subprocess.run([sys.executable, '-m', 'tunebook.cli', 'quickstart', '--out', str(out)], capture_output=True, text=True, env=env)
    assert r2.returncode == 2 and 'not empty' in r2.stderr
    assert (run/'adapter'/'adapter_model.safetensors').read_bytes() == before

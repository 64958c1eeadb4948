import subprocess, sys

def run(*args):
    return subprocess.run([sys.executable, '-m', 'tunebook.cli', *args], capture_output=True, text=True)

def test_help_lists_every_stage():
    from tunebook.cli import COMMANDS, main
    assert main(['--help']) == 0
    for cmd in ('quickstart', 'prep', 'train', 'eval', 'export', 'push', 'chat'): assert cmd in COMMANDS

def test_unknown_command_exits_2(capsys):
    from tunebook.cli import main
    assert main(['frobnicate']) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err

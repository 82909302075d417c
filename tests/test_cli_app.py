"""The `w2v2` entry point: command discovery, error formatting, exit codes, --debug, --version."""

import subprocess
import sys

import w2v2cli
from w2v2cli.cli.app import app


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "w2v2cli", *args], capture_output=True, text=True)


def test_every_pipeline_command_is_registered():
    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    for expected in ("manifest", "synth", "pretrain", "finetune", "decode", "align", "score", "lm", "import",
                     "export", "info", "config", "plot"):
        assert expected in names, f"w2v2 {expected} is not registered (have {sorted(names)})"


def test_version():
    res = _run("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"w2v2 {w2v2cli.__version__}"


def test_unknown_command_is_a_usage_error_without_traceback():
    res = _run("nosuchcmd")
    assert res.returncode == 2
    assert "No such command" in res.stderr and "Traceback" not in res.stderr


def test_user_error_prints_message_and_hint_once_and_exits_nonzero():
    res = _run("config", "show", "tinny")
    assert res.returncode == 2  # ConfigError
    assert res.stderr.count("unknown training config 'tinny'") == 1
    assert "did you mean 'tiny'" in res.stderr and "Traceback" not in res.stderr


def test_debug_shows_the_traceback():
    res = _run("--debug", "config", "show", "tinny")
    assert res.returncode == 2 and "Traceback" in res.stderr and "ConfigError" in res.stderr

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


WORKER = """
import atexit, sys
atexit.register(lambda: open(sys.argv[1], "w").write("atexit ran"))
sys.stdout.write("unflushed output")  # no newline: still in the buffer when the process ends
class Finalized:
    def __del__(self):
        sys.__stderr__.write("finalized")
keep = Finalized()  # a module global: collected during interpreter finalization, which the worker skips
from w2v2cli.cli.app import main
main(sys.argv[2:])
"""


def test_a_torchrun_worker_ends_with_the_right_code_its_output_flushed_and_atexit_run(tmp_path):
    """Under torchrun (WORLD_SIZE > 1) `main` ends the process with os._exit after flushing and running the atexit
    handlers (interpreter finalization can abort a gloo rank that finished cleanly): nothing the user would see or
    a library would clean up is lost, and the exit code is the command's."""
    env = {**__import__("os").environ, "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}
    for args, code, text in ((["--version"], 0, f"w2v2 {w2v2cli.__version__}"),
                             (["config", "show", "tinny"], 2, "unknown training config 'tinny'"),
                             (["nosuchcmd"], 2, "No such command")):
        marker = tmp_path / f"atexit-{code}-{len(args)}"
        res = subprocess.run([sys.executable, "-c", WORKER, str(marker), *args], capture_output=True, text=True,
                             env=env)
        assert res.returncode == code, (args, res.stderr)
        assert res.stdout.startswith("unflushed output")
        assert text in res.stdout + res.stderr and "Traceback" not in res.stderr
        assert marker.read_text() == "atexit ran"
        assert "finalized" not in res.stderr
    res = subprocess.run([sys.executable, "-c", WORKER, str(tmp_path / "single"), "--version"], capture_output=True,
                         text=True)  # one process: the normal exit, finalization included
    assert res.returncode == 0 and "finalized" in res.stderr
    env["WORLD_SIZE"] = "two"  # malformed: a plain process here (training names the bad variable), no traceback
    res = subprocess.run([sys.executable, "-c", WORKER, str(tmp_path / "bad"), "--version"], capture_output=True,
                         text=True, env=env)
    assert res.returncode == 0 and "Traceback" not in res.stderr and "finalized" in res.stderr

"""`w2v2 synth` command: CliRunner and real subprocess exit codes."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from w2v2cli.cli.app import app
from w2v2cli.data.manifest import read_labels

runner = CliRunner()


def _w2v2(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "w2v2cli", *args], capture_output=True, text=True, cwd=cwd)
    proc.stderr = " ".join(proc.stderr.split())  # rich wraps long lines at 80 columns
    return proc


def test_synth_command(tmp_path):
    res = runner.invoke(app, ["synth", "librispeech", str(tmp_path / "ls"), "--speakers", "1", "--utts", "2",
                              "--seed", "3", "--engines", "flite"])
    assert res.exit_code == 0, res.output
    flacs = sorted((tmp_path / "ls").glob("*/*/*/*.flac"))
    assert len(flacs) == 2 + 2 * 2 + 2 * 2  # train 1 x 2; dev and test at least 2 speakers x 2
    res = runner.invoke(app, ["manifest", str(tmp_path / "ls"), "--dest", str(tmp_path / "m"),
                              "--corpus", "librispeech", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert len(read_labels(tmp_path / "m" / "train-clean-100.tsv", "wrd")) == 2
    proc = _w2v2("synth", "timit", str(tmp_path / "x"))
    assert proc.returncode == 2 and "unknown corpus layout" in proc.stderr
    proc = _w2v2("synth", "commonvoice", str(tmp_path / "x"), "--langs", "xx")
    assert proc.returncode != 0 and "xx" in proc.stderr and "Traceback" not in proc.stderr

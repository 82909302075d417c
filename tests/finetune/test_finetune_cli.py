"""`w2v2 finetune` through Typer's CliRunner, and one real subprocess for the exit code of a bad label."""

from __future__ import annotations

import os
import subprocess
import sys

from ft_helpers import FAST, copy_subset
from typer.testing import CliRunner

from w2v2cli.cli.app import app
from w2v2cli.errors import ConfigError, DataError, ManifestError


def _sets() -> list[str]:
    out = []
    for s in FAST + ["checkpoint.validate_interval_updates=2"]:
        out += ["--set", s]
    return out


def test_cli_trains_and_resumes(four, tmp_path):
    out = tmp_path / "ft"
    args = ["finetune", str(four), "--valid", str(four), "--init", "none", "--config", "tiny", "--out", str(out),
            "--seed", "3", *_sets()]
    wide = {"COLUMNS": "300"}  # paths unbroken in the summary table
    first = CliRunner().invoke(app, args + ["--max-updates", "2"], env=wide)
    assert first.exit_code == 0, first.output
    assert "tiny_ctc" in first.output and "valid WER" in first.output and "at update 2" in first.output
    assert (out / "checkpoint_best" / "config.yaml").is_file() and (out / "checkpoints" / "update_00000002").is_dir()
    second = CliRunner().invoke(app, args + ["--max-updates", "4", "--resume", "auto"], env=wide)
    assert second.exit_code == 0, second.output
    assert "resumed from" in second.output and "update_00000002" in second.output
    assert "at update 4" in second.output
    assert (out / "config.yaml").read_text().count("seed: 3") == 1


def test_cli_rejects_a_pretraining_preset_and_a_label_count_mismatch(four, tmp_path):
    result = CliRunner().invoke(app, ["finetune", str(four), "--init", "none", "--config", "base",
                                      "--out", str(tmp_path / "a")])
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)
    assert "base_10m" in result.exception.hint

    short = copy_subset(four, tmp_path / "short.tsv", [0, 1, 2, 3])
    ltr = short.with_suffix(".ltr")
    ltr.write_text("\n".join(ltr.read_text().splitlines()[:3]) + "\n")
    result = CliRunner().invoke(app, ["finetune", str(short), "--init", "none", "--config", "tiny",
                                      "--out", str(tmp_path / "b"), *_sets()])
    assert result.exit_code != 0 and isinstance(result.exception, ManifestError)
    assert "manifest entry 4" in result.exception.message and "short.ltr" in result.exception.message
    assert not (tmp_path / "b" / "checkpoints").exists()  # nothing trained, nothing written

    result = CliRunner().invoke(app, ["finetune", str(four), "--init", "none", "--config", "tiny", "--vocab", "spm",
                                      "--out", str(tmp_path / "c")])
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)


def test_subprocess_unknown_character_exits_nonzero_naming_the_line(four, tmp_path):
    bad = copy_subset(four, tmp_path / "bad.tsv", [0, 1, 2, 3])
    ltr = bad.with_suffix(".ltr")
    lines = ltr.read_text().splitlines()
    lines[2] = lines[2] + " É |"
    ltr.write_text("\n".join(lines) + "\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "w2v2cli", "finetune", str(bad), "--valid", str(four), "--init",
                           "none", "--config", "tiny", "--out", str(tmp_path / "ft"), *_sets()],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == DataError("x").exit_code != 0
    assert f"{ltr}:3:" in proc.stderr and "'É'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "ft" / "checkpoints").exists()

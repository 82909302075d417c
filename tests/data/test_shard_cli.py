"""`w2v2 shard`: CliRunner for the output, the console entry point for errors (one line, a hint, the exit code)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from w2v2cli.cli.app import app
from w2v2cli.cli.shard import parse_size
from w2v2cli.data.shards import read_index
from w2v2cli.errors import ConfigError

runner = CliRunner()


def test_shard_command_writes_reports_and_reuses(signal_manifest, tmp_path):
    out = tmp_path / "s"
    res = runner.invoke(app, ["shard", str(signal_manifest), "--out", str(out), "--shard-minutes", "0.2",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    index = read_index(out)
    text = " ".join(res.output.split())
    assert f"│ {len(index.shards)} │ 24 │" in text and "ltr, wrd" in text and "re-encoded 4 non-FLAC files" in text
    again = runner.invoke(app, ["shard", str(signal_manifest), "--out", str(out), "--shard-minutes", "0.2",
                                "--no-progress"])
    assert again.exit_code == 0 and "already complete" in " ".join(again.output.split())


def test_shard_command_errors_are_one_line_with_a_hint(signal_manifest, tmp_path, run_main):
    code, err = run_main("shard", str(signal_manifest), "--out", str(tmp_path / "a"), "--shard-minutes", "5",
                     "--shard-size", "1G")
    assert code == 2 and "give --shard-minutes or --shard-size, not both" in err
    code, err = run_main("shard", str(signal_manifest), "--out", str(tmp_path / "a"), "--shard-size", "lots")
    assert code == 2 and "--shard-size must be a size such as 512M" in err
    bad = tmp_path / "bad.tsv"
    lines = signal_manifest.read_text().splitlines()
    bad.write_text("\n".join(lines[:2] + ["spk9/gone.flac\t1000"]) + "\n")
    code, err = run_main("shard", str(bad), "--out", str(tmp_path / "b"), "--no-progress")
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"error: {Path(lines[0]) / 'spk9/gone.flac'} ({bad}:3): no such file")
    assert "hint: fix or drop the file" in err and not (tmp_path / "b" / "shards.json").exists()


def test_parse_size():
    assert parse_size("512M") == 512 << 20 and parse_size("1.5G") == int(1.5 * (1 << 30))
    assert parse_size("100kB") == 100 << 10 and parse_size("4096") == 4096 and parse_size("2GiB") == 2 << 30
    for bad in ("0", "-1M", "12 parsecs", ""):
        with pytest.raises(ConfigError):
            parse_size(bad)

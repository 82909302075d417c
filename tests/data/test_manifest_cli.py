"""`w2v2 manifest` command: CliRunner and real subprocess exit codes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from w2v2cli.cli.app import app
from w2v2cli.data.manifest import read_manifest

runner = CliRunner()


def test_manifest_command_librispeech(libri_corpus, libri_manifests, tmp_path):
    res = runner.invoke(app, ["manifest", str(libri_corpus.root), "--dest", str(tmp_path / "m"),
                              "--corpus", "librispeech", "--jobs", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "train-clean-100.tsv" in res.output and "24" in res.output
    for name, tsv in libri_manifests.items():
        for ext in ("tsv", "wrd", "ltr"):
            assert (tmp_path / "m" / f"{name}.{ext}").read_text() == tsv.with_suffix(f".{ext}").read_text()
    assert (tmp_path / "m" / "dict.ltr.txt").read_text() == (tsv.parent / "dict.ltr.txt").read_text()
    again = runner.invoke(app, ["manifest", str(libri_corpus.root), "--dest", str(tmp_path / "m"),
                                "--corpus", "librispeech", "--no-progress"])
    assert again.exit_code == 0 and "already complete" in " ".join(again.output.split())


def test_manifest_command_folder_skip_bad(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(5):
        sf.write(audio / f"u{i}.wav", np.zeros(1600 + i, np.float32), 16000, subtype="PCM_16")
    (audio / "broken.wav").write_text("nope")
    res = runner.invoke(app, ["manifest", str(audio), "--dest", str(tmp_path / "m"), "--ext", "wav",
                              "--valid-percent", "0", "--skip-bad", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "rejected 1 bad inputs" in " ".join(res.output.split())
    m = read_manifest(tmp_path / "m" / "train.tsv")
    assert [(e.path, e.num_samples) for e in m.entries] == [(f"u{i}.wav", 1600 + i) for i in range(5)]


def _w2v2(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "w2v2cli", *args], capture_output=True, text=True, cwd=cwd)
    proc.stderr = " ".join(proc.stderr.split())  # rich wraps long lines at 80 columns
    return proc


def test_manifest_exit_codes(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    (audio / "bad.flac").write_bytes(b"")
    proc = _w2v2("manifest", str(audio), "--dest", str(tmp_path / "m"), "--no-progress")
    assert proc.returncode == 1
    assert f"{audio / 'bad.flac'}: empty file" in proc.stderr and "--skip-bad" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m" / "train.tsv").exists()
    proc = _w2v2("manifest", str(tmp_path / "nope"), "--dest", str(tmp_path / "m"))
    assert proc.returncode == 1 and "no such directory" in proc.stderr
    proc = _w2v2("manifest", str(audio), "--dest", str(tmp_path / "m"), "--valid-percent", "5")
    assert proc.returncode == 1 and "between 0 and 1" in proc.stderr
    proc = _w2v2("manifest", str(audio), "--dest", str(tmp_path / "m"), "--corpus", "timit")
    assert proc.returncode == 1 and "unknown corpus 'timit'" in proc.stderr

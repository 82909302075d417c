"""One bad file never kills a run: a truncated FLAC (header intact), a WAV with NaN samples and a missing file among
good utterances, through every step that reads audio, with real files and the real tiny model.

- `w2v2 manifest`: the default check (header + the last frames) rejects the truncated FLAC; `--verify` (full decode)
  also rejects the NaN WAV, which a header read cannot see;
- pretraining and fine-tuning skip the three files with a warning, count them (result, metrics.jsonl) and list
  them in DIR/bad_audio.tsv; more than `data.max_bad_files` stops with an error naming them;
- decoding gives them empty hypotheses (scored as errors), marks them in hyp.jsonl and lists them in
  OUT/bad_audio.tsv; more than `--max-bad-files` stops.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from w2v2cli.cli.app import app
from w2v2cli.errors import DataError, ManifestError

FAST = ["data.max_sample_size=32000", "data.max_tokens=64000", "data.num_workers=0", "logging.progress=none",
        "logging.tensorboard=false", "logging.log_interval=1", "checkpoint.save_interval_updates=1000",
        "lr.warmup_updates=2"]
BAD = {"trunc.flac": "truncated", "nan.wav": "NaN", "gone.flac": "no such file"}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _truncate(src: Path, dst: Path) -> None:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])  # the header (and its frame count) stays intact


@pytest.fixture(scope="module")
def corpus(libri_manifests, tmp_path_factory) -> dict:
    """`good/` 6 short training FLACs; `bad.tsv` (+ .ltr/.wrd/dict.ltr.txt): those 6 and the three bad files."""
    src = libri_manifests["train-clean-100"]
    root, *rows = src.read_text().splitlines()
    ltr = src.with_suffix(".ltr").read_text().splitlines()
    wrd = src.with_suffix(".wrd").read_text().splitlines()
    order = sorted(range(len(rows)), key=lambda i: int(rows[i].split("\t")[1]))[:6]
    base = tmp_path_factory.mktemp("bad-audio")
    good = base / "good"
    good.mkdir()
    entries, ltr_out, wrd_out = [], [], []
    for k, i in enumerate(sorted(order)):
        rel, n = rows[i].split("\t")
        shutil.copy(Path(root) / rel, good / f"u{k}.flac")
        entries.append(f"good/u{k}.flac\t{n}")
        ltr_out.append(ltr[i])
        wrd_out.append(wrd[i])
    _truncate(good / "u0.flac", base / "trunc.flac")
    wav, sr = sf.read(good / "u1.flac", dtype="float32")
    wav[1000:1100] = np.nan
    sf.write(base / "nan.wav", wav, sr, subtype="FLOAT")
    for name, frames in (("trunc.flac", sf.info(base / "trunc.flac").frames), ("nan.wav", len(wav)),
                         ("gone.flac", 30000)):
        entries.append(f"{name}\t{frames}")
        ltr_out.append(ltr_out[0])
        wrd_out.append(wrd_out[0])
    tsv = base / "bad.tsv"
    tsv.write_text(f"{base}\n" + "".join(e + "\n" for e in entries))
    tsv.with_suffix(".ltr").write_text("".join(x + "\n" for x in ltr_out))
    tsv.with_suffix(".wrd").write_text("".join(x + "\n" for x in wrd_out))
    shutil.copy(src.parent / "dict.ltr.txt", base / "dict.ltr.txt")
    return {"base": base, "good": good, "tsv": tsv, "good_rows": 6}


def _bad_rows(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    assert lines[0].split("\t")[1:] == ["path", "reason"]
    return {Path(line.split("\t")[1]).name: line.split("\t")[2] for line in lines[1:]}


def _check_listed(rows: dict[str, str]) -> None:
    assert sorted(rows) == sorted(BAD)
    for name, word in BAD.items():
        assert word in rows[name], (name, rows[name])


# ------------------------------------------------------------------------------------------------ manifest
def test_manifest_default_catches_truncation_and_verify_catches_nan(corpus, tmp_path):
    runner = CliRunner()
    flac = tmp_path / "flac"
    shutil.copytree(corpus["good"], flac)
    shutil.copy(corpus["base"] / "trunc.flac", flac / "trunc.flac")
    # without --skip-bad the truncated file is an error naming it (the header alone looked fine)
    res = runner.invoke(app, ["manifest", str(flac), "--dest", str(tmp_path / "m0"), "--valid-percent", "0",
                              "--no-progress"])
    assert isinstance(res.exception, ManifestError) and "trunc.flac" in res.exception.message
    assert "truncated" in res.exception.message
    for extra in ([], ["--verify"]):
        dest = tmp_path / f"flac{len(extra)}"
        res = runner.invoke(app, ["manifest", str(flac), "--dest", str(dest), "--valid-percent", "0", "--skip-bad",
                                  "--no-progress", *extra])
        assert res.exit_code == 0, res.output
        assert len((dest / "train.tsv").read_text().splitlines()) == 1 + corpus["good_rows"]
        rejected = (dest / "rejected.tsv").read_text().splitlines()[1:]
        assert len(rejected) == 1 and "trunc.flac" in rejected[0] and "truncated" in rejected[0]
    # NaN samples: invisible to the header and tail check, caught by --verify (full decode, 2 processes)
    wav = tmp_path / "wav"
    wav.mkdir()
    for k in range(3):
        data, sr = sf.read(corpus["good"] / f"u{k}.flac", dtype="float32")
        sf.write(wav / f"u{k}.wav", data, sr)
    shutil.copy(corpus["base"] / "nan.wav", wav / "nan.wav")
    counts = {}
    for extra in ([], ["--verify", "--jobs", "2"]):
        dest = tmp_path / f"wav{len(extra)}"
        res = runner.invoke(app, ["manifest", str(wav), "--dest", str(dest), "--ext", "wav", "--valid-percent", "0",
                                  "--skip-bad", "--no-progress", *extra])
        assert res.exit_code == 0, res.output
        rejected = (dest / "rejected.tsv").read_text().splitlines()[1:] if (dest / "rejected.tsv").exists() else []
        counts[bool(extra)] = (len((dest / "train.tsv").read_text().splitlines()) - 1, len(rejected))
        if extra:
            assert "nan.wav" in rejected[0] and "NaN" in rejected[0]
    assert counts == {False: (4, 0), True: (3, 1)}
    # a DEST made without --verify is rebuilt (not reused) when --verify is asked for
    res = runner.invoke(app, ["manifest", str(wav), "--dest", str(tmp_path / "wav0"), "--ext", "wav",
                              "--valid-percent", "0", "--skip-bad", "--no-progress", "--verify"])
    assert res.exit_code == 0 and "already complete" not in res.output
    assert "nan.wav" in (tmp_path / "wav0" / "rejected.tsv").read_text()


# ------------------------------------------------------------------------------------------------ training
def _metric_sum(run: Path, key: str) -> float:
    return sum(json.loads(line).get(key, 0) for line in (run / "metrics.jsonl").read_text().splitlines())


def test_pretraining_skips_counts_and_lists_bad_files(corpus, tmp_path):
    from w2v2cli.train.pretrain import pretrain

    # 9 utterances in batches of about 2: 8 updates go through the epoch and into the next one
    run = tmp_path / "pt"
    result = pretrain([corpus["tsv"]], run, config="tiny", overrides=FAST, max_updates=8)
    assert result.update == 8 and result.bad_files == 3
    _check_listed(_bad_rows(run / "bad_audio.tsv"))  # each file once, though seen in two epochs
    assert _metric_sum(run, "bad_audio") == 3
    warnings = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                if '"warning"' in line]
    assert sum("skipped" in w["message"] for w in warnings) == 3
    # stopped after 3 updates and resumed: the same losses bit for bit, each file listed and counted once
    split = tmp_path / "split"
    pretrain([corpus["tsv"]], split, config="tiny", overrides=FAST, max_updates=3, resume="auto")
    again = pretrain([corpus["tsv"]], split, config="tiny", overrides=FAST, max_updates=8, resume="auto")
    assert again.resumed_from.name == "update_00000003" and again.bad_files == 3

    def losses(r):
        return {x["update"]: x["loss"] for x in map(json.loads, (r / "metrics.jsonl").read_text().splitlines())
                if x.get("split") == "train"}

    assert losses(split) == losses(run)
    assert _bad_rows(split / "bad_audio.tsv") == _bad_rows(run / "bad_audio.tsv")
    assert _metric_sum(split, "bad_audio") == 3
    # past the threshold: an error naming the files, pointing at the list
    with pytest.raises(DataError) as err:
        pretrain([corpus["tsv"]], tmp_path / "strict", config="tiny", max_updates=8,
                 overrides=FAST + ["data.max_bad_files=2"])
    assert "more than data.max_bad_files = 2" in err.value.message and "bad_audio.tsv" in err.value.message
    assert sum(name in err.value.message for name in BAD) == 3


def test_finetuning_and_decoding_skip_bad_files(corpus, libri_manifests, tmp_path):
    from w2v2cli.decode.run import DecodeConfig, decode_manifest, summary_rows
    from w2v2cli.train.finetune import finetune

    run = tmp_path / "ft"
    # labelled utterances are never cropped: room for the longest (none is dropped as too long)
    result = finetune([corpus["tsv"]], run, init="none", config="tiny", max_updates=8,
                      overrides=FAST + ["task.freeze_finetune_updates=0", "data.max_sample_size=80000",
                                        "data.max_tokens=160000"])
    assert result.update == 8 and result.bad_files == 3 and result.skipped_utterances == 0
    _check_listed(_bad_rows(run / "bad_audio.tsv"))
    assert _metric_sum(run, "bad_audio") == 3

    out = tmp_path / "dec"
    res = decode_manifest(run / "checkpoint_last", corpus["tsv"], out, DecodeConfig(progress=False))
    assert res.utterances == 9 and len(res.skipped) == 3
    _check_listed({Path(p).name: r for p, r in (line.split("\t")[1:] for line in
                                                (out / "bad_audio.tsv").read_text().splitlines()[1:])})
    records = [json.loads(line) for line in (out / "hyp.jsonl").read_text().splitlines()]
    assert [r["text"] for r in records if "skipped" in (r.get("extra") or r)] == ["", "", ""]
    assert sum(1 for r in records if "skipped" in json.dumps(r)) == 3
    assert len((out / "hyp.trn").read_text().splitlines()) == 9  # every utterance is scored, skipped ones as errors
    assert res.wer is not None and res.wer > 0
    assert any(name == "skipped (bad audio)" and value.startswith("3") for name, value in summary_rows(res))
    with pytest.raises(DataError, match="more than --max-bad-files 2"):
        decode_manifest(run / "checkpoint_last", corpus["tsv"], tmp_path / "dec2",
                        DecodeConfig(progress=False, max_bad_files=2))


def test_two_ranks_skip_bad_files_without_hanging(corpus, tmp_path):
    """torchrun, 2 processes, one utterance per batch: a rank whose batch is a bad file still joins the gradient
    all-reduce (it runs its last usable batch with weight 0); the count is summed over ranks; one summary."""
    import os
    import subprocess
    import sys

    run = tmp_path / "ddp"
    sets = [a for s in FAST + ["data.max_batch_size=1", "logging.progress=plain"] for a in ("--set", s)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "w2v2cli",
           "pretrain", str(corpus["tsv"]), "--config", "tiny", "--out", str(run), "--max-updates", "6", *sets]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_listed(_bad_rows(run / "bad_audio.tsv"))
    assert _metric_sum(run, "bad_audio") == 3
    assert proc.stdout.count("bad audio files skipped") == 1 and "3 (listed in" in proc.stdout

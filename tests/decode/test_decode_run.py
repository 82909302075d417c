"""`w2v2 decode` / `w2v2 align` end to end: a tiny CTC model (random weights) on synthetic speech."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from w2v2cli.cli.app import app
from w2v2cli.decode.run import DecodeConfig, _windows, align_manifest, compute_emissions, decode_manifest, summary_rows
from w2v2cli.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_ctc(tmp_path_factory, libri_manifests):
    from w2v2cli.checkpoint.io import save_checkpoint
    from w2v2cli.model import build_model, model_preset
    from w2v2cli.vocab import Vocabulary

    vocab = Vocabulary.from_fairseq_dict(libri_manifests["test-clean"].parent / "dict.ltr.txt")
    cfg = model_preset("tiny", vocab_size=len(vocab))
    torch.manual_seed(0)
    model = build_model(cfg, "ctc").eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny-ctc"
    save_checkpoint(path, model, cfg, "ctc", vocab=vocab)
    return path


def _durations(tsv):
    lines = tsv.read_text().splitlines()
    root = lines[0]
    return [sf.info(f"{root}/{line.split(chr(9))[0]}").frames / 16000 for line in lines[1:]]


def test_windows_cover_every_frame_once():
    hop, rf = 320, 400
    for samples in (400, 16000, 16000 * 7 + 123, 16000 * 31):
        total = (samples - rf) // hop + 1
        wins = _windows(samples, hop, 16000 * 2, 640)
        kept = []
        for w0, w1, k0, k1 in wins:
            assert w0 % hop == 0 and 0 <= w0 < w1 <= samples
            kept.extend(range(k0, total if k1 < 0 else k1))
        assert kept == list(range(total))


class LocalFrames:
    """A stand-in for the network with exactly local frames (mean of each receptive field), so chunked
    and whole-file emissions must agree exactly if the stitching is right."""

    hop, receptive_field = 320, 400

    def frames(self, n):
        return 0 if n < 400 else (n - 400) // 320 + 1

    def forward(self, waves):
        out = []
        for w in waves:
            t = torch.from_numpy(w)
            f = self.frames(len(w))
            out.append(torch.stack([t[k * 320: k * 320 + 400].mean() for k in range(f)]).unsqueeze(1))
        return out


def test_chunked_emissions_equal_whole_file():
    rng = np.random.default_rng(0)
    waves = {0: rng.standard_normal(16000 * 9 + 77).astype(np.float32),
             1: rng.standard_normal(16000 * 1).astype(np.float32)}
    items = [(i, i, len(w)) for i, w in waves.items()]
    whole, chunked = {}, {}
    em = LocalFrames()
    compute_emissions(em, items, waves.__getitem__, DecodeConfig(chunk_seconds=100), whole.__setitem__, lambda n: None)
    compute_emissions(em, items, waves.__getitem__, DecodeConfig(chunk_seconds=2, chunk_overlap_seconds=0.1,
                                                                 batch_seconds=5), chunked.__setitem__, lambda n: None)
    for i in waves:
        assert whole[i].shape[0] == em.frames(len(waves[i]))
        assert torch.equal(whole[i], chunked[i])


def test_decode_greedy_writes_outputs_in_manifest_order(tmp_path, tiny_ctc, libri_manifests):
    tsv = libri_manifests["test-clean"]
    res = decode_manifest(tiny_ctc, tsv, tmp_path / "dec", DecodeConfig(progress=False, batch_seconds=8))
    names = [line.split("\t")[0] for line in tsv.read_text().splitlines()[1:]]
    ids = [n.rsplit("/", 1)[-1].rsplit(".", 1)[0] for n in names]
    assert res.ids == ids and res.utterances == len(ids) == 8
    durations = _durations(tsv)
    assert res.audio_seconds == pytest.approx(sum(durations), rel=1e-6)
    assert res.rtf > 0 and res.wer is not None and res.wer > 0  # random weights: wrong, but scored
    assert res.wer == res.words.errors / res.words.ref_tokens  # a fraction; the summary prints percent
    assert ("WER %", f"{100 * res.words.errors / res.words.ref_tokens:.2f}") in summary_rows(res)
    records = [json.loads(x) for x in (tmp_path / "dec" / "hyp.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ids
    for rec, dur in zip(records, durations):
        prev = 0.0
        for w in rec["words"]:
            assert prev <= w["start"] < w["end"] <= dur + 1e-6 and 0 < w["confidence"] <= 1
            prev = w["end"]
    refs = (tsv.with_suffix(".wrd")).read_text().splitlines()
    assert (tmp_path / "dec" / "ref.trn").read_text().splitlines()[0] == f"{refs[0]} ({ids[0]})"
    # Chunked decoding of the same files gives transcripts with the same frame grid (times stay inside).
    res2 = decode_manifest(tiny_ctc, tsv, tmp_path / "dec2", DecodeConfig(progress=False, chunk_seconds=1.0,
                                                                          chunk_overlap_seconds=0.5))
    for h, dur in zip(res2.hypotheses, durations):
        assert all(0 <= s < e <= dur + 1e-6 for s, e in h.word_times)


def test_align_recovers_reference_words(tmp_path, tiny_ctc, libri_manifests):
    tsv = libri_manifests["test-clean"]
    res = align_manifest(tiny_ctc, tsv, tmp_path / "al", DecodeConfig(progress=False))
    refs = tsv.with_suffix(".wrd").read_text().splitlines()
    assert [h.text for h in res.hypotheses] == refs
    durations = _durations(tsv)
    for h, dur in zip(res.hypotheses, durations):
        assert len(h.word_times) == len(h.words)
        assert all(0 <= s < e <= dur + 1e-6 for s, e in h.word_times)
        assert all(a[1] <= b[0] for a, b in zip(h.word_times, h.word_times[1:]))
    ctm = (tmp_path / "al" / "align.ctm").read_text().splitlines()
    assert len(ctm) == sum(len(r.split()) for r in refs)


def test_cli_decode_beam_and_align(tmp_path, tiny_ctc, libri_manifests):
    from w2v2cli.lm import find_kenlm_tool

    find_kenlm_tool("lmplz")  # built by tools/install_kenlm.sh (tests/test_lm.py builds it when missing)
    tsv = libri_manifests["test-clean"]
    train_text = libri_manifests["train-clean-100"].with_suffix(".wrd")
    runner = CliRunner()
    r = runner.invoke(app, ["lm", "build", str(train_text), "--order", "3", "--out", str(tmp_path / "lm"),
                            "--vocab", str(tsv.parent / "dict.ltr.txt"), "--memory", "64M"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["decode", str(tiny_ctc), str(tsv), "--out", str(tmp_path / "dec"), "--decoder", "beam",
                            "--lexicon", str(tmp_path / "lm" / "lexicon.txt"), "--lm", str(tmp_path / "lm" / "lm.bin"),
                            "--beam", "20", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "real-time factor" in r.output and "WER %" in r.output
    lexicon_words = {line.split("\t")[0] for line in (tmp_path / "lm" / "lexicon.txt").read_text().splitlines()}
    hyp_words = (tmp_path / "dec" / "hyp.wrd").read_text().split()
    assert set(hyp_words) <= lexicon_words
    # a token beam as wide as the vocabulary is the full search (tests/decode/test_decode_beam.py: narrower ones)
    n_tokens = len((tsv.parent / "dict.ltr.txt").read_text().splitlines()) + 4
    r = runner.invoke(app, ["decode", str(tiny_ctc), str(tsv), "--out", str(tmp_path / "dec_tok"), "--decoder", "beam",
                            "--lexicon", str(tmp_path / "lm" / "lexicon.txt"), "--lm", str(tmp_path / "lm" / "lm.bin"),
                            "--beam", "20", "--beam-tokens", str(n_tokens), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "dec_tok" / "hyp.wrd").read_text() == (tmp_path / "dec" / "hyp.wrd").read_text()
    r = runner.invoke(app, ["score", str(tmp_path / "dec" / "ref.trn"), str(tmp_path / "dec" / "hyp.trn")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["align", str(tiny_ctc), str(tsv), "--out", str(tmp_path / "al"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "al" / "align.jsonl").exists()


def test_cli_decode_errors_exit_nonzero(tmp_path, tiny_ctc, libri_manifests):
    tsv = libri_manifests["test-clean"]
    base = [sys.executable, "-m", "w2v2cli", "decode", str(tiny_ctc), str(tsv), "--out", str(tmp_path / "d"),
            "--no-progress"]
    proc = subprocess.run(base + ["--decoder", "beam", "--lm", "x.bin"], capture_output=True, text=True)
    assert proc.returncode != 0 and "--lm needs --lexicon" in proc.stderr
    runner = CliRunner()
    r = runner.invoke(app, base[3:] + ["--decoder", "fancy"])
    assert r.exit_code != 0 and "viterbi" in str(r.exception)
    r = runner.invoke(app, base[3:5] + [str(tmp_path / "none.tsv")] + base[6:])
    assert r.exit_code != 0 and "none.tsv" in str(r.exception)
    assert not (tmp_path / "d" / "hyp.wrd").exists()
    with pytest.raises(ConfigError, match="bf16"):
        decode_manifest(tiny_ctc, tsv, tmp_path / "d", DecodeConfig(dtype="fp16"))
    with pytest.raises(ConfigError, match="--beam-tokens must be >= 1"):
        decode_manifest(tiny_ctc, tsv, tmp_path / "d", DecodeConfig(decoder="beam", beam_size_token=0))


def test_bf16_decoding_casts_the_weights_once_and_stays_close_to_fp32(tmp_path, tiny_ctc, libri_manifests):
    """`--dtype bf16`: weights cast to bf16 once (not per call, unlike autocast), log-probabilities within 0.15 of
    fp32's (mean difference below 0.02; measured 0.072 and ~0.01) on this random model; `--dtype auto` names its
    choice in the summary."""
    from w2v2cli.checkpoint.io import load_checkpoint
    from w2v2cli.decode.run import EmissionModel
    from w2v2cli.runtime import resolve_dtype

    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (24000, 16000)]
    ref = EmissionModel(load_checkpoint(tiny_ctc), dtype="fp32").forward(waves)
    em = EmissionModel(load_checkpoint(tiny_ctc), dtype="bf16")
    assert {p.dtype for p in em.model.parameters()} == {torch.bfloat16}
    storage = [p.data_ptr() for p in em.model.parameters()]
    got = em.forward(waves)
    em.forward(waves)
    assert [p.data_ptr() for p in em.model.parameters()] == storage  # nothing re-cast by the calls
    for a, b in zip(ref, got):
        assert a.shape == b.shape and b.dtype == torch.float32
        diff = (a - b).abs()
        assert float(diff.max()) < 0.15 and float(diff.mean()) < 0.02, (float(diff.max()), float(diff.mean()))
    res = decode_manifest(tiny_ctc, libri_manifests["test-clean"], tmp_path / "auto",
                          DecodeConfig(progress=False, dtype="auto"))
    dtype, why = resolve_dtype("auto", "cpu", training=False)
    assert res.precision == f"{dtype} ({why})" and ("precision", res.precision) in summary_rows(res)

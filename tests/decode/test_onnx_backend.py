"""`--backend onnxruntime`: `w2v2 decode`, `transcribe` and `align` on an exported `.onnx` file give what they give
on the checkpoint (real espeak-ng speech, a tiny random CTC model): the backend only replaces the logits."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from w2v2cli.cli.app import app
from w2v2cli.decode.run import DecodeConfig, align_manifest, decode_manifest
from w2v2cli.decode.transcribe import TranscribeConfig, transcribe_files
from w2v2cli.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def models(tmp_path_factory, libri_manifests):
    """(checkpoint, its fp32 ONNX export): a tiny random CTC model with the corpus' letters, its head nudged so
    that blanks and word breaks win some frames (transcripts of several short words, not one long one)."""
    from w2v2cli.checkpoint.io import save_checkpoint
    from w2v2cli.model import build_model, model_preset
    from w2v2cli.vocab import Vocabulary

    vocab = Vocabulary.from_fairseq_dict(libri_manifests["test-clean"].parent / "dict.ltr.txt")
    cfg = model_preset("tiny", vocab_size=len(vocab), encoder_layers=2)
    torch.manual_seed(0)
    model = build_model(cfg, "ctc").eval()
    with torch.no_grad():
        model.lm_head.bias[vocab.blank] += 0.3
        model.lm_head.bias[vocab.index["|"]] += 0.2
    root = tmp_path_factory.mktemp("onnx-decode")
    ckpt = save_checkpoint(root / "ckpt", model, cfg, "ctc", vocab=vocab)
    result = CliRunner().invoke(app, ["export", "onnx", str(ckpt), str(root / "model.onnx")])
    assert result.exit_code == 0, result.output
    return ckpt, root / "model.onnx"


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_decode_and_align_same_as_torch(models, libri_manifests, tmp_path):
    ckpt, onnx_path = models
    tsv = libri_manifests["test-clean"]
    cfg = DecodeConfig(progress=False, batch_seconds=8)
    ref = decode_manifest(ckpt, tsv, tmp_path / "torch", cfg)
    got = decode_manifest(onnx_path, tsv, tmp_path / "onnx", cfg)  # --backend auto: by the suffix
    assert got.precision == "fp32 (onnxruntime, model.onnx as exported)" and ref.precision == "fp32 (as asked)"
    assert [h.text for h in got.hypotheses] == [h.text for h in ref.hypotheses]
    assert sum(len(h.words) for h in ref.hypotheses) >= 16  # several words per utterance: a real comparison
    for a, b in zip(ref.hypotheses, got.hypotheses):
        assert a.word_times == b.word_times  # the same frames
        assert a.word_conf == pytest.approx(b.word_conf, abs=1e-4)
    assert got.wer == ref.wer
    assert (tmp_path / "onnx" / "hyp.wrd").read_text() == (tmp_path / "torch" / "hyp.wrd").read_text()
    # long files in windows: the stitching runs on onnxruntime's emissions too
    windowed = decode_manifest(onnx_path, tsv, tmp_path / "win", DecodeConfig(progress=False, chunk_seconds=1.0,
                                                                             chunk_overlap_seconds=0.5))
    assert len(windowed.hypotheses) == 8
    aligned = align_manifest(onnx_path, tsv, tmp_path / "al", DecodeConfig(progress=False))
    ref_aligned = align_manifest(ckpt, tsv, tmp_path / "al_torch", DecodeConfig(progress=False))
    assert [h.word_times for h in aligned.hypotheses] == [h.word_times for h in ref_aligned.hypotheses]


def test_cli_decode_beam_with_lm_same_as_torch(models, libri_manifests, tmp_path):
    from w2v2cli.lm import find_kenlm_tool

    find_kenlm_tool("lmplz")  # built by tools/install_kenlm.sh (tests/test_lm.py builds it when missing)
    ckpt, onnx_path = models
    tsv = libri_manifests["test-clean"]
    lm = tmp_path / "lm"
    r = _invoke("lm", "build", libri_manifests["train-clean-100"].with_suffix(".wrd"), "--order", "3", "--out", lm,
                "--vocab", tsv.parent / "dict.ltr.txt", "--memory", "64M")
    assert r.exit_code == 0, r.output
    beam = ["--decoder", "beam", "--lexicon", lm / "lexicon.txt", "--lm", lm / "lm.bin", "--beam", "20",
            "--no-progress"]
    r = _invoke("decode", ckpt, tsv, "--out", tmp_path / "torch", *beam)
    assert r.exit_code == 0, r.output
    r = _invoke("decode", onnx_path, tsv, "--out", tmp_path / "onnx", "--backend", "onnxruntime", *beam)
    assert r.exit_code == 0, r.output
    assert "onnxruntime" in r.output and "WER %" in r.output
    hyps = (tmp_path / "onnx" / "hyp.wrd").read_text()
    assert hyps == (tmp_path / "torch" / "hyp.wrd").read_text() and len(hyps.split()) >= 8
    records = [json.loads(line) for line in (tmp_path / "onnx" / "hyp.jsonl").read_text().splitlines()]
    ref_records = [json.loads(line) for line in (tmp_path / "torch" / "hyp.jsonl").read_text().splitlines()]
    assert [[(w["start"], w["end"]) for w in r["words"]] for r in records] == \
        [[(w["start"], w["end"]) for w in r["words"]] for r in ref_records]


def test_cli_transcribe_same_as_torch(models, libri_manifests, tmp_path):
    ckpt, onnx_path = models
    root, *rows = libri_manifests["test-clean"].read_text().splitlines()
    files = [f"{root}/{row.split(chr(9))[0]}" for row in rows]
    r_torch = _invoke("transcribe", ckpt, *files, "--format", "jsonl", "--out", tmp_path / "torch.jsonl",
                      "--no-progress")
    r_onnx = _invoke("transcribe", onnx_path, *files, "--format", "jsonl", "--out", tmp_path / "onnx.jsonl",
                     "--backend", "onnxruntime", "--no-progress", "--threads", "1")
    assert r_torch.exit_code == 0 and r_onnx.exit_code == 0, (r_torch.output, r_onnx.output)
    ref = [json.loads(line) for line in (tmp_path / "torch.jsonl").read_text().splitlines()]
    got = [json.loads(line) for line in (tmp_path / "onnx.jsonl").read_text().splitlines()]
    assert len(got) == len(ref) >= 8
    for a, b in zip(ref, got):
        assert (a["path"], a["text"], a["duration"]) == (b["path"], b["text"], b["duration"])
        assert [(w["word"], w["start"], w["end"]) for w in a["words"]] == \
            [(w["word"], w["start"], w["end"]) for w in b["words"]]


def test_backend_and_model_must_fit(models, libri_manifests, tmp_path):
    ckpt, onnx_path = models
    tsv = libri_manifests["test-clean"]
    with pytest.raises(ConfigError, match="--backend onnxruntime runs an exported .onnx file") as err:
        decode_manifest(ckpt, tsv, tmp_path / "a", DecodeConfig(progress=False, backend="onnxruntime"))
    assert err.value.hint == f"export it first: w2v2 export onnx {ckpt} OUT.onnx"
    with pytest.raises(ConfigError, match="--backend torch runs a checkpoint"):
        transcribe_files(onnx_path, [str(tsv)], TranscribeConfig(progress=False, backend="torch"))
    dict_ltr = tsv.parent / "dict.ltr.txt"  # a fairseq dictionary is for .pt files, never silently ignored
    with pytest.raises(ConfigError, match=r"--dict .*dict.ltr.txt: .*model.onnx is an exported ONNX file"):
        transcribe_files(onnx_path, [str(tsv)], TranscribeConfig(progress=False), dict_path=dict_ltr)
    with pytest.raises(ConfigError, match="--dtype bf16 casts a PyTorch model"):
        decode_manifest(onnx_path, tsv, tmp_path / "b", DecodeConfig(progress=False, dtype="bf16"))
    with pytest.raises(ConfigError, match="--backend must be one of auto, torch, onnxruntime"):
        DecodeConfig(backend="tensorrt").check()
    r = _invoke("decode", ckpt, tsv, "--out", tmp_path / "c", "--backend", "onnxruntime")
    assert isinstance(r.exception, ConfigError)

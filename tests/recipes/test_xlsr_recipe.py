"""recipes/xlsr/run.sh end to end at toy scale on Common Voice (en, de, fr: 48 kHz MP3) and MLS (de, es: FLAC) in
one run: multilingual pretraining of all five, per-language fine-tuning (fr with SentencePiece, the others with
letters), decoding, scoring and the table across languages; a re-run that does nothing; `--stage 5 --stop-stage 5`
alone; and `--init` from an XLSR-shaped fairseq checkpoint (layer-norm conv, pre-LN) instead of pretraining."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from recipe_helpers import RECIPES, TOY_TRAIN, ok, run_recipe, snapshot, stage_lines, stages_run
from w2v2cli.data.manifest import read_manifest
from w2v2cli.train.logging import read_metrics

RUN = RECIPES / "xlsr" / "run.sh"
TOY = ["--nj", "1", "--threads", "1", "--pretrain-config", "tiny", "--finetune-config", "tiny",
       "--pretrain-updates", "5", "--finetune-updates", "5", "--pretrain-opts", TOY_TRAIN, "--finetune-opts", TOY_TRAIN]
TAGS = ["cv_en", "cv_de", "cv_fr", "mls_de", "mls_es"]


def run(*args) -> subprocess.CompletedProcess:
    return run_recipe(RUN, *args)


def test_cv_and_mls_languages_in_one_run(xlsr_corpus, tmp_path):
    exp = tmp_path / "exp"
    args = ["--corpus", xlsr_corpus, "--dir", exp, "--langs", "en de:cv fr de:mls es", "--vocab", "letters fr:spm",
            "--vocab-size", "30", *TOY]
    ok(run(*args))
    data = exp / "data"
    for tag in TAGS:  # manifests with labels; Common Voice converted to 16 kHz FLAC
        for split in ("train", "dev", "test"):
            m = read_manifest(data / tag / f"{split}.tsv")
            assert len((data / tag / f"{split}.ltr").read_text().splitlines()) == len(m) > 0
            assert all(m.abspath(i).suffix == ".flac" and m.abspath(i).is_file() for i in range(len(m)))
    assert "/mls_german/" in str(read_manifest(data / "mls_de" / "train.tsv").abspath(0))
    cv_rows = len((xlsr_corpus / "de" / "train.tsv").read_text().splitlines()) - 1  # header line
    assert len(read_manifest(data / "cv_de" / "train.tsv")) == cv_rows
    # one pretraining run over the five training sets, sampled with alpha 0.5
    cfg = yaml.safe_load((exp / "pretrain" / "config.yaml").read_text())
    assert [s["path"] for s in cfg["data"]["train"]] == [str(data / t / "train.tsv") for t in TAGS]
    assert cfg["data"]["sampling_alpha"] == 0.5
    assert max(r["update"] for r in read_metrics(exp / "pretrain") if r.get("split") == "train") == 5
    # fine-tuning per language with its vocabulary; fr's is SentencePiece
    for tag in TAGS:
        vocab = yaml.safe_load((exp / f"finetune_{tag}" / "checkpoint_best" / "config.yaml").read_text())["vocab"]
        assert vocab["kind"] == ("spm" if tag == "cv_fr" else "letters")
        if tag == "cv_fr":
            assert len(vocab["tokens"]) == 30
    # decode + score per language, and the table with the mean across languages
    table = (exp / "results.md").read_text()
    wers, cers = [], []
    for tag in TAGS:
        d = exp / "decode" / tag / "viterbi"
        n = len(read_manifest(data / tag / "test.tsv"))
        assert len((d / "hyp.trn").read_text().splitlines()) == n
        s = json.loads((d / "report" / "summary.json").read_text())
        wers.append(s["wer"])
        cers.append(s["cer"])
        assert f"| {tag} | viterbi | {s['wer']:.2f} | {s['cer']:.2f} | {n} |" in table
    assert f"| mean | viterbi | {sum(wers) / 5:.2f} | {sum(cers) / 5:.2f} | 5 rows |" in table
    # a re-run does nothing; --stage 5 --stop-stage 5 scores again and nothing else
    before = snapshot(exp)
    again = ok(run(*args))
    assert stage_lines(again) == [] and again.count("done before, skipped") == 5 + 1 + 5 + 5 + 1
    assert snapshot(exp) == before
    score = ok(run(*args, "--stage", 5, "--stop-stage", 5))
    assert stages_run(score) == {"Stage 5"}
    changed = {p for p, t in snapshot(exp).items() if before.get(p) != t}
    assert changed and all("/decode/" in p or p.endswith(("results.md", "/.done/5")) for p in changed)


def test_init_from_an_xlsr_checkpoint_and_language_lookup(xlsr_corpus, tmp_path):
    exp = tmp_path / "exp"
    # de is in both corpora: without :cv / :mls that is an error naming both folders, before any stage runs
    res = run("--corpus", xlsr_corpus, "--dir", exp, "--langs", "de", *TOY)
    assert res.returncode == 1 and "write de:cv or de:mls" in res.stderr
    assert str(xlsr_corpus / "de") in res.stderr and str(xlsr_corpus / "mls_german") in res.stderr
    res = run("--corpus", xlsr_corpus, "--dir", exp, "--langs", "it", *TOY)
    assert res.returncode == 1 and str(xlsr_corpus / "mls_italian") in res.stderr
    assert not (exp / "data").exists()
    # es exists only in MLS: found there; --init replaces pretraining with the imported checkpoint
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "checkpoint"))
    import transformers
    from ckpt_helpers import fairseq_checkpoint, hf_model

    hf = hf_model(transformers.Wav2Vec2ForPreTraining, "lv60", seed=4)
    init = tmp_path / "xlsr_53_56k.pt"
    torch.save(fairseq_checkpoint(hf, "lv60", "new", normalize=True), init)
    out = ok(run("--corpus", xlsr_corpus, "--dir", exp, "--langs", "es", "--init", init, *TOY))
    assert "importing --init" in out and not (exp / "pretrain").exists()
    tuned = yaml.safe_load((exp / "finetune_mls_es" / "checkpoint_best" / "config.yaml").read_text())
    assert tuned["model"]["layer_norm_first"] and tuned["model"]["extractor_mode"] == "layer_norm"
    assert (tuned["model"]["encoder_layers"], tuned["model"]["encoder_embed_dim"]) == (2, 32)
    assert "| mls_es | viterbi |" in (exp / "results.md").read_text()

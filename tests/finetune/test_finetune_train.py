"""Fine-tuning runs on real synthetic speech (tiny preset, a few utterances): learning, resume, --init sources."""

from __future__ import annotations

import json

import pytest
import torch
from ft_helpers import FAST
from safetensors.torch import load_file

from w2v2cli.checkpoint import load_checkpoint, load_model_any
from w2v2cli.errors import CheckpointError
from w2v2cli.train.config import training_preset
from w2v2cli.train.evaluate import evaluate_ctc
from w2v2cli.train.finetune import finetune, resolve_finetune
from w2v2cli.vocab import Vocabulary

# overfitting 4 utterances: no masking, no freezing, a constant high learning rate
OVERFIT = FAST + ["optim.lr=2e-3", "lr.scheduler=constant", "task.freeze_finetune_updates=0", "model.mask_prob=0",
                  "model.mask_channel_prob=0"]


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_finetuning_from_scratch_learns_the_transcripts(four, tmp_path):
    out = tmp_path / "ft"
    result = finetune([four], out, init="none", config="tiny", valid=[four], max_updates=40,
                      overrides=OVERFIT + ["checkpoint.validate_interval_updates=4"])
    assert result.stopped == "max_updates" and result.update == 40
    curve = [(r["update"], r["wer"]) for r in _records(out) if r.get("split") == "valid"]
    assert [u for u, _ in curve] == list(range(4, 41, 4))
    assert curve[0][1] >= 0.9  # after 4 updates nearly every word is wrong
    best = min(w for _, w in curve)
    assert best <= 0.25  # measured: 0.0 by update 20
    # checkpoint_best is the best validation and carries the vocabulary of dict.ltr.txt
    ckpt = load_checkpoint(out / "checkpoint_best", kind="ctc")
    assert ckpt.vocab == Vocabulary.from_fairseq_dict(four.parent / "dict.ltr.txt")
    n_symbols = len((four.parent / "dict.ltr.txt").read_text().splitlines())
    assert ckpt.cfg.vocab_size == len(ckpt.vocab) == 4 + n_symbols  # <s> <pad> </s> <unk> + the dict
    assert ckpt.provenance["value"] == pytest.approx(best)
    again = evaluate_ctc(out / "checkpoint_best", [four])
    assert again["wer"] == pytest.approx(best) and again["empty_frac"] == 0.0


def test_resume_continues_and_matches_an_uninterrupted_run(four, tmp_path):
    sets = FAST + ["lr.scheduler=constant", "task.freeze_finetune_updates=2", "checkpoint.validate_interval_updates=3"]
    whole = finetune([four], tmp_path / "whole", init="none", config="tiny", valid=[four], max_updates=6,
                     overrides=sets)
    first = finetune([four], tmp_path / "split", init="none", config="tiny", valid=[four], max_updates=3,
                     overrides=sets, resume="auto")
    assert first.resumed_from is None and first.update == 3
    second = finetune([four], tmp_path / "split", init="none", config="tiny", valid=[four], max_updates=6,
                      overrides=sets, resume="auto")
    assert second.resumed_from.name == "update_00000003" and second.update == 6
    a = load_file(str(whole.last_checkpoint / "model.safetensors"))
    b = load_file(str(second.last_checkpoint / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    assert second.valid_metrics["wer"] == pytest.approx(whole.valid_metrics["wer"])
    assert [r["update"] for r in _records(tmp_path / "split") if r.get("split") == "valid"] == [3, 6]


def test_pretrained_lr_scale_resumes_exactly_and_refuses_a_changed_scale(four, hf_dir, tmp_path):
    sets = FAST + ["lr.scheduler=constant", "task.pretrained_lr_scale=0.5"]
    whole = finetune([four], tmp_path / "whole", init=str(hf_dir), config="tiny", max_updates=4, overrides=sets)
    finetune([four], tmp_path / "split", init=str(hf_dir), config="tiny", max_updates=2, overrides=sets,
             resume="auto")
    with pytest.raises(CheckpointError, match=r"lr scales \[1.0, 0.5\], this run's at \[1.0\]"):
        finetune([four], tmp_path / "split", init=str(hf_dir), config="tiny", max_updates=4, resume="auto",
                 overrides=FAST + ["lr.scheduler=constant"])
    second = finetune([four], tmp_path / "split", init=str(hf_dir), config="tiny", max_updates=4, overrides=sets,
                      resume="auto")
    assert second.resumed_from.name == "update_00000002"
    a = load_file(str(whole.last_checkpoint / "model.safetensors"))
    b = load_file(str(second.last_checkpoint / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    assert "pretrained_lr_scale: 0.5" in (tmp_path / "whole" / "init.yaml").read_text()


def test_init_from_transformers_dir_trains_only_the_head_while_frozen(four, hf_dir, tmp_path):
    out = tmp_path / "ft"
    sets = FAST + ["task.freeze_finetune_updates=100", "model.feature_grad_mult=0.0"]
    cfg, task = resolve_finetune([four], out, init=str(hf_dir), config="tiny", overrides=sets, max_updates=3)
    assert (cfg.model.encoder_embed_dim, cfg.model.encoder_layers, cfg.model.conv_dim) == (48, 2, 32)  # from --init
    # the preset re-initialises 2 top layers; of a 2-layer model that would be the whole transformer: not applied
    assert training_preset("tiny_ctc").task.reinit_layers == 2 and cfg.task.reinit_layers == 0
    recipe = training_preset("tiny_ctc").model
    assert (cfg.model.mask_prob, cfg.model.mask_channel_prob, cfg.model.feature_grad_mult) == \
        (recipe.mask_prob, recipe.mask_channel_prob, 0.0)
    torch.manual_seed(cfg.seed)  # what the trainer does before build_model: the run's initial weights
    initial = {k: v.clone() for k, v in task.build_model(cfg).state_dict().items()}

    result = finetune([four], out, init=str(hf_dir), config="tiny", overrides=sets, max_updates=3)
    final = load_file(str(result.last_checkpoint / "model.safetensors"))
    hf_encoder = load_model_any(hf_dir, kind="encoder").model.state_dict()
    for key, value in hf_encoder.items():  # the frozen encoder is exactly the transformers model
        assert torch.equal(final[f"wav2vec2.{key}"], value), key
        assert torch.equal(initial[f"wav2vec2.{key}"], value), key
    assert not torch.equal(final["lm_head.weight"], initial["lm_head.weight"])  # the head learned
    assert (out / "init.yaml").read_text().startswith(f"init: {hf_dir}")
    # resuming takes the architecture from the run's checkpoint (2 layers): the preset's count is dropped there too
    cfg, task = resolve_finetune([four], out, init=str(hf_dir), config="tiny", overrides=sets, max_updates=4,
                                 resume="auto")
    assert task.init is None and cfg.model.encoder_layers == 2 and cfg.task.reinit_layers == 0


def test_init_from_our_pretraining_checkpoint(four, pretrain_ckpt, tmp_path):
    out = tmp_path / "ft"
    result = finetune([four], out, init=str(pretrain_ckpt), config="tiny", valid=[four], max_updates=3,
                      overrides=FAST + ["task.freeze_finetune_updates=0", "model.feature_grad_mult=0.0"])
    pre = load_file(str(pretrain_ckpt / "model.safetensors"))
    final = load_file(str(result.last_checkpoint / "model.safetensors"))
    assert not any(k.startswith(("quantizer.", "project_q.", "final_proj.")) for k in final)  # heads dropped
    enc = [k for k in final if k.startswith("wav2vec2.")]
    assert set(enc) == {k for k in pre if k.startswith("wav2vec2.")}
    conv = [k for k in enc if k.startswith("wav2vec2.feature_extractor.")]
    assert conv and all(torch.equal(final[k], pre[k]) for k in conv)  # feature encoder frozen (grad mult 0)
    moved = [k for k in enc if k.startswith("wav2vec2.encoder.layers.") and not torch.equal(final[k], pre[k])]
    assert len(moved) > 10  # the transformer trains once unfrozen
    ckpt = load_checkpoint(result.last_checkpoint)
    saved_pre = load_checkpoint(pretrain_ckpt)
    assert ckpt.kind == "ctc" and ckpt.cfg.encoder_layers == saved_pre.cfg.encoder_layers
    recipe, pre_recipe = training_preset("tiny_ctc").model, training_preset("tiny").model
    assert recipe.mask_prob != pre_recipe.mask_prob  # so the next line tells them apart
    assert (ckpt.cfg.mask_prob, ckpt.cfg.mask_channel_prob) == (recipe.mask_prob, recipe.mask_channel_prob)
    assert (saved_pre.cfg.mask_prob, saved_pre.cfg.mask_channel_prob) == (pre_recipe.mask_prob,
                                                                          pre_recipe.mask_channel_prob)
    assert "wer" in result.valid_metrics and "kind: pretrain" in (out / "init.yaml").read_text()
    assert "reinit_layers: 2" in (out / "init.yaml").read_text()  # the preset's, of 4 layers


def test_sentencepiece_vocabulary_run(four, tmp_path):
    out = tmp_path / "ft"
    result = finetune([four], out, init="none", config="tiny", valid=[four], max_updates=3, vocab="spm",
                      vocab_size=40, overrides=FAST + ["task.labels=wrd"])
    ckpt = load_checkpoint(result.last_checkpoint, kind="ctc")
    assert ckpt.vocab.kind == "spm" and ckpt.cfg.vocab_size == len(ckpt.vocab) <= 40
    words = four.with_suffix(".wrd").read_text().splitlines()
    assert [ckpt.vocab.decode(ckpt.vocab.encode(w)) for w in words] == words
    metrics = evaluate_ctc(result.last_checkpoint, [four], labels="wrd")
    assert metrics["wer"] == pytest.approx(result.valid_metrics["wer"])
    # resuming keeps the saved SentencePiece model (no retraining)
    again = finetune([four], out, init="none", config="tiny", valid=[four], max_updates=4, vocab="spm",
                     vocab_size=40, overrides=FAST + ["task.labels=wrd"], resume="auto")
    assert again.update == 4 and load_checkpoint(again.last_checkpoint).vocab == ckpt.vocab


def test_early_stopping_on_validation_wer(four, tmp_path):
    # a learning rate too small to change any greedy output: the WER never improves after the first validation
    sets = FAST + ["optim.lr=1e-12", "lr.scheduler=constant", "checkpoint.validate_interval_updates=1",
                   "checkpoint.early_stop_patience=2"]
    result = finetune([four], tmp_path / "ft", init="none", config="tiny", valid=[four], max_updates=10,
                      overrides=sets)
    assert result.stopped == "early_stop" and result.update == 3
    wers = [r["wer"] for r in _records(tmp_path / "ft") if r.get("split") == "valid"]
    assert len(wers) == 3 and wers[0] == wers[1] == wers[2]
    assert load_checkpoint(result.best_checkpoint).provenance["update"] == 1


def test_evaluating_an_all_blank_checkpoint_warns_about_the_checkpoint(four, tmp_path):
    """The warning names the checkpoint and manifest, not a training config the evaluation does not have."""
    import io
    from dataclasses import replace

    from rich.console import Console

    from w2v2cli.checkpoint.io import save_checkpoint
    from w2v2cli.model import build_model

    vocab = Vocabulary.from_fairseq_dict(four.parent / "dict.ltr.txt")
    cfg = replace(training_preset("tiny_ctc").model, vocab_size=len(vocab))
    model = build_model(cfg, "ctc")
    with torch.no_grad():  # every frame says blank
        model.lm_head.weight.zero_()
        model.lm_head.bias.zero_()
        model.lm_head.bias[vocab.blank] = 50.0
    ckpt = save_checkpoint(tmp_path / "blank", model, cfg, "ctc", vocab=vocab)
    out = io.StringIO()
    metrics = evaluate_ctc(ckpt, [four], console=Console(file=out, width=300))
    assert metrics["empty_frac"] == 1.0 and metrics["wer"] == 1.0
    text = " ".join(out.getvalue().split())
    assert f"{ckpt}: 100% of the hypotheses on {four.name} are empty" in text
    assert "mean blank posterior 1.000" in text and "all-blank phase" in text
    assert "optim.lr" not in text and "update 0" not in text


def test_fbank_presets_pretrain_then_finetune_with_frequency_warping(four, tmp_path):
    """`tiny_fbank` pretrains through the log-mel front end and `--config tiny_fbank` fine-tunes with
    `tiny_fbank_ctc` (frequency warping on); the front end's learned layers carry over from the pretrained model."""
    from w2v2cli.train.pretrain import pretrain

    pre = pretrain([four], tmp_path / "pt", config="tiny_fbank", overrides=FAST, max_updates=2)
    saved_pre = load_checkpoint(pre.last_checkpoint)
    assert saved_pre.cfg.extractor_mode == "fbank" and saved_pre.cfg.fbank_warp == 0.0
    assert saved_pre.cfg.conv_layers == [(80, 400, 160), (192, 3, 1), (128, 2, 2)]
    assert saved_pre.cfg.hop == 320
    sets = FAST + ["model.feature_grad_mult=0.0"]  # the front end's conv layers stay as pretrained
    result = finetune([four], tmp_path / "ft", init=str(pre.last_checkpoint), config="tiny_fbank", valid=[four],
                      overrides=sets, max_updates=3)
    ckpt = load_checkpoint(result.last_checkpoint)
    preset = training_preset("tiny_fbank_ctc").model
    assert ckpt.kind == "ctc" and ckpt.cfg.extractor_mode == "fbank"
    assert ckpt.cfg.fbank_warp == preset.fbank_warp > 0  # a fine-tuning field: from the preset, not the init
    pre_w, final = load_file(str(pre.last_checkpoint / "model.safetensors")), \
        load_file(str(result.last_checkpoint / "model.safetensors"))
    front = [k for k in final if k.startswith("wav2vec2.feature_extractor.")]
    assert len(front) == 2 and all(torch.equal(final[k], pre_w[k]) for k in front)
    assert "wer" in result.valid_metrics
    # a conv-front-end init with the fbank fine-tuning preset: its warping cannot apply, one clear error
    from w2v2cli.errors import ConfigError

    conv_pre = pretrain([four], tmp_path / "pt_conv", config="tiny", overrides=FAST, max_updates=1)
    with pytest.raises(ConfigError, match="fbank_warp.*extractor_mode: fbank"):
        resolve_finetune([four], tmp_path / "ft2", init=str(conv_pre.last_checkpoint), config="tiny_fbank",
                         overrides=FAST, max_updates=1)

"""fairseq checkpoints -> w2v2: both families, pretraining and CTC, old (`args`) and new (`cfg`) configs.

Each fairseq file is built from a random transformers model through the test's own transformers -> fairseq
key mapping (ckpt_helpers), imported with w2v2, and run on the same padded batch as the transformers model.
"""

from __future__ import annotations

import pytest
import torch
import transformers
from typer.testing import CliRunner

from ckpt_helpers import (
    LETTERS, fairseq_checkpoint, hf_ctc_logits, hf_hidden, hf_model, padded_batch, run_cli, write_dict,
)
from w2v2cli.checkpoint import load_checkpoint, load_model_any
from w2v2cli.checkpoint.fairseq import parse_conv_layers, read_fairseq
from w2v2cli.checkpoint.hf import state_dict_to_hf
from w2v2cli.cli.app import app
from w2v2cli.errors import CheckpointError

TOL = 1e-4
FINETUNE = dict(apply_mask=True, mask_prob=0.5, mask_channel_prob=0.25, mask_channel_length=64, layerdrop=0.1,
                final_dropout=0.0, dropout=0.0, attention_dropout=0.0, activation_dropout=0.1, dropout_input=0.0,
                feature_grad_mult=0.0, freeze_finetune_updates=10000)


def _valid_frames_close(ours, theirs, model_cfg_hop, lengths):
    frames = [(int(n) - 400) // model_cfg_hop + 1 for n in lengths]
    worst = 0.0
    for i, f in enumerate(frames):
        worst = max(worst, (ours[i, :f] - theirs[i, :f]).abs().max().item())
    return worst


@pytest.mark.parametrize("family,style", [("base", "old"), ("base", "new"), ("lv60", "old"), ("lv60", "new")])
def test_pretraining_checkpoint_matches_transformers(tmp_path, family, style):
    hf = hf_model(transformers.Wav2Vec2ForPreTraining, family, seed=1)
    path = tmp_path / "checkpoint_best.pt"
    torch.save(fairseq_checkpoint(hf, family, style, normalize=family == "lv60"), path)

    result = CliRunner().invoke(app, ["import", "fairseq", str(path), str(tmp_path / "ck")])
    assert result.exit_code == 0, result.output
    assert "pretrain" in result.output
    loaded = load_checkpoint(tmp_path / "ck")
    cfg = loaded.cfg
    assert loaded.kind == "pretrain" and loaded.vocab is None
    assert cfg.extractor_mode == ("layer_norm" if family == "lv60" else "group_norm")
    assert cfg.layer_norm_first is (family == "lv60") and cfg.conv_bias is (family == "lv60")
    assert cfg.conv_layers == [(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2
    assert (cfg.encoder_layers, cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim, cfg.encoder_attention_heads) == \
        (2, 32, 64, 4)
    assert (cfg.conv_pos, cfg.conv_pos_groups, cfg.latent_vars, cfg.latent_groups, cfg.final_dim) == (16, 4, 8, 2, 12)
    assert cfg.codevector_dim == 16 and cfg.latent_temp == (2.0, 0.5, 0.999995)
    assert (cfg.layerdrop, cfg.feature_grad_mult, cfg.dropout_input, cfg.mask_prob) == (0.05, 0.1, 0.1, 0.65)
    assert cfg.normalize_audio is (family == "lv60")
    assert loaded.provenance["source"] == "fairseq" and loaded.provenance["num_updates"] == 1234

    # same weights: our state dict mapped to transformers names equals the transformers model's, tensor by tensor
    theirs = hf.state_dict()
    mapped = state_dict_to_hf(loaded.model.state_dict(), cfg)
    assert mapped.keys() == theirs.keys()
    assert all(torch.equal(mapped[k], theirs[k]) for k in theirs)

    wave, lengths = padded_batch(seed=2)
    with torch.no_grad():
        ours = loaded.model.wav2vec2(wave, lengths).x
    worst = _valid_frames_close(ours, hf_hidden(hf.wav2vec2, wave, lengths), cfg.hop, lengths)
    assert worst <= TOL, worst


@pytest.mark.parametrize("family,style", [("base", "old"), ("base", "new"), ("lv60", "old"), ("lv60", "new")])
def test_ctc_checkpoint_matches_transformers(tmp_path, family, style):
    hf = hf_model(transformers.Wav2Vec2ForCTC, family, seed=3, vocab_size=len(LETTERS) + 4)
    path = tmp_path / "wav2vec_small_10m.pt"
    torch.save(fairseq_checkpoint(hf, family, style, normalize=family == "lv60", finetune=FINETUNE), path)
    if style == "old":
        write_dict(tmp_path / "dict.ltr.txt")  # found beside the checkpoint
        args = []
    else:
        write_dict(tmp_path / "letters.txt")
        args = ["--dict", str(tmp_path / "letters.txt")]

    result = CliRunner().invoke(app, ["import", "fairseq", str(path), str(tmp_path / "ck"), *args])
    assert result.exit_code == 0, result.output
    loaded = load_checkpoint(tmp_path / "ck")
    cfg = loaded.cfg
    assert loaded.kind == "ctc" and cfg.vocab_size == 32 and len(loaded.vocab) == 32
    assert loaded.vocab.tokens[:5] == ["<s>", "<pad>", "</s>", "<unk>", "|"] and loaded.vocab.blank == 0
    # fine-tuning values override the pretraining ones, as fairseq's Wav2VecEncoder does
    assert (cfg.mask_prob, cfg.mask_channel_prob, cfg.mask_channel_length, cfg.layerdrop) == (0.5, 0.25, 64, 0.1)
    assert (cfg.dropout, cfg.attention_dropout, cfg.activation_dropout, cfg.feature_grad_mult) == (0.0, 0.0, 0.1, 0.0)
    assert cfg.dropout_features == 0.1  # not a fine-tuning override: stays the pretraining value
    assert cfg.normalize_audio is (family == "lv60")

    theirs = hf.state_dict()
    mapped = state_dict_to_hf(loaded.model.state_dict(), cfg)
    assert mapped.keys() == theirs.keys() and all(torch.equal(mapped[k], theirs[k]) for k in theirs)

    wave, lengths = padded_batch(seed=4)
    with torch.no_grad():
        logits, frames = loaded.model(wave, lengths)
    assert frames.tolist() == [49, 34]
    worst = _valid_frames_close(logits, hf_ctc_logits(hf, wave, lengths), cfg.hop, lengths)
    assert worst <= TOL, worst

    # load_model_any converts the .pt on the fly to the same model
    direct = load_model_any(path, dict_path=(tmp_path / "letters.txt") if args else None)
    with torch.no_grad():
        assert torch.equal(direct.model(wave, lengths)[0], logits)


def test_apply_mask_false_turns_masking_off(tmp_path):
    hf = hf_model(transformers.Wav2Vec2ForCTC, "base", seed=5, vocab_size=32)
    torch.save(fairseq_checkpoint(hf, "base", "new", False, finetune=dict(FINETUNE, apply_mask=False)),
               tmp_path / "m.pt")
    write_dict(tmp_path / "dict.ltr.txt")
    cfg = read_fairseq(tmp_path / "m.pt").cfg
    assert cfg.mask_prob == 0.0 and cfg.mask_channel_prob == 0.0


def test_missing_projection_becomes_identity(tmp_path):
    """fairseq omits post_extract_proj when conv and model widths match."""
    hf = hf_model(transformers.Wav2Vec2ForPreTraining, "base", seed=6, conv_dim=[32] * 7)
    with torch.no_grad():
        hf.wav2vec2.feature_projection.projection.weight.copy_(torch.eye(32))
        hf.wav2vec2.feature_projection.projection.bias.zero_()
    state = fairseq_checkpoint(hf, "base", "new", False)
    state["cfg"]["model"]["conv_feature_layers"] = "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2"
    del state["model"]["post_extract_proj.weight"], state["model"]["post_extract_proj.bias"]
    torch.save(state, tmp_path / "m.pt")
    loaded = load_model_any(tmp_path / "m.pt")
    wave, lengths = padded_batch(seed=7)
    with torch.no_grad():
        ours = loaded.model.wav2vec2(wave, lengths).x
    assert _valid_frames_close(ours, hf_hidden(hf.wav2vec2, wave, lengths), 320, lengths) <= TOL


def _base_state(tmp_path, **model_changes):
    hf = hf_model(transformers.Wav2Vec2ForPreTraining, "base", seed=8)
    state = fairseq_checkpoint(hf, "base", "new", False)
    state["cfg"]["model"].update(model_changes)
    return state


def test_errors_name_the_problem(tmp_path):
    path = tmp_path / "m.pt"
    state = _base_state(tmp_path)
    state["model"]["target_glu.0.weight"] = torch.zeros(2, 2)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"1 weights have no counterpart in w2v2's model: target_glu.0.weight"):
        read_fairseq(path)

    torch.save(_base_state(tmp_path, quantize_targets=False), path)
    with pytest.raises(CheckpointError, match=r"not supported \(quantize_targets=False\)"):
        read_fairseq(path)

    torch.save(_base_state(tmp_path, _name="hubert"), path)
    with pytest.raises(CheckpointError, match="fairseq model 'hubert' is not supported"):
        read_fairseq(path)

    state = _base_state(tmp_path)
    state["model"]["encoder.layers.0.fc1.weight"] = torch.zeros(3, 3)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"shape mismatch \(wav2vec2.encoder.layers.0.ffn.fc1.weight: \(3, 3\)"):
        load_model_any(path)

    torch.save({"model": {}, "something": 1}, path)
    with pytest.raises(CheckpointError, match="neither 'cfg' nor 'args'"):
        read_fairseq(path)

    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="not a fairseq checkpoint"):
        read_fairseq(path)


def test_ctc_dictionary_problems(tmp_path):
    hf = hf_model(transformers.Wav2Vec2ForCTC, "base", seed=9, vocab_size=32)
    path = tmp_path / "ft.pt"
    torch.save(fairseq_checkpoint(hf, "base", "old", False, finetune=FINETUNE), path)
    with pytest.raises(CheckpointError, match="needs its letter dictionary") as info:
        read_fairseq(path)
    assert "--dict" in info.value.hint
    write_dict(tmp_path / "short.txt", LETTERS[:10])
    with pytest.raises(CheckpointError, match=r"gives 14 outputs \(4 specials \+ 10 symbols\) but .* has 32"):
        read_fairseq(path, dict_path=tmp_path / "short.txt")
    # no pretraining config inside the fine-tuned file
    state = fairseq_checkpoint(hf, "base", "old", False, finetune=FINETUNE)
    state["args"].w2v_args = None
    torch.save(state, path)
    write_dict(tmp_path / "dict.ltr.txt")
    with pytest.raises(CheckpointError, match="does not contain its pretraining config"):
        read_fairseq(path)


def test_cli_errors_exit_nonzero_and_write_nothing(tmp_path):
    hf = hf_model(transformers.Wav2Vec2ForCTC, "base", seed=10, vocab_size=32)
    path = tmp_path / "ft.pt"
    torch.save(fairseq_checkpoint(hf, "base", "old", False, finetune=FINETUNE), path)
    code, err = run_cli("import", "fairseq", path, tmp_path / "out")
    assert code == 1 and "needs its letter dictionary" in err and "hint: pass it with --dict" in err
    assert not (tmp_path / "out").exists()


def test_conv_spec_parser_never_evaluates_code():
    assert parse_conv_layers("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2") == \
        [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    assert parse_conv_layers("2 * [(64, 3, 2)]") == [(64, 3, 2), (64, 3, 2)]
    with pytest.raises(CheckpointError, match="cannot read conv layer spec"):
        parse_conv_layers("__import__('os').system('true')")
    with pytest.raises(CheckpointError, match="not a list of"):
        parse_conv_layers("[(1, 2)]")

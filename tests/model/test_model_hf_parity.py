"""Parity with transformers: random transformers models saved to disk, mapped through checkpoint/hf.py into our
model, run on the same audio in eval mode; and our weights mapped back reproduce our outputs in transformers."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch
import transformers

from w2v2cli.checkpoint.hf import config_from_hf, config_to_hf, hf_kind, state_dict_from_hf, state_dict_to_hf
from w2v2cli.model import build_model

TOL = 1e-4


def hf_config(family: str, **extra) -> transformers.Wav2Vec2Config:
    """A small random-model config of the family, built directly in transformers' terms (no hub)."""
    layer = family == "xlsr"
    return transformers.Wav2Vec2Config(
        vocab_size=12, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
        conv_dim=[32] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2],
        conv_bias=layer, feat_extract_norm="layer" if layer else "group", do_stable_layer_norm=layer,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        num_codevectors_per_group=16, num_codevector_groups=2, codevector_dim=24, proj_codevector_dim=24,
        num_negatives=10, hidden_dropout=0.1, attention_dropout=0.1, activation_dropout=0.1, feat_proj_dropout=0.1,
        mask_time_prob=0.3, mask_time_length=3, layerdrop=0.1, **extra,
    )


def save_and_import(hf_model, tmp_path, kind=None):
    """save_pretrained to disk, then read config.json + model.safetensors through our mapping."""
    hf_model.save_pretrained(tmp_path)
    hf_json = json.loads((tmp_path / "config.json").read_text())
    hf_sd = safetensors.torch.load_file(str(tmp_path / "model.safetensors"))
    cfg = config_from_hf(hf_json)
    sd = state_dict_from_hf(hf_sd, cfg, kind)
    model = build_model(cfg, kind or hf_kind(sd))
    model.load_state_dict(sd, strict=True)  # every parameter, no leftovers
    return model.eval(), cfg


def _randomise_norms(model):
    """transformers initialises LayerNorms to (1, 0); random affine values make the parity check bite."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2 + (1.0 if name.endswith("weight") else 0.0))
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.mark.parametrize("family", ["base", "xlsr"])
def test_ctc_logits_and_hidden_states_match_transformers(family, tmp_path, audio_batch):
    torch.manual_seed(0)
    hf = transformers.Wav2Vec2ForCTC(hf_config(family)).eval()
    _randomise_norms(hf)
    ours, cfg = save_and_import(hf, tmp_path)
    assert cfg.extractor_mode == ("layer_norm" if family == "xlsr" else "group_norm")
    assert cfg.layer_norm_first == (family == "xlsr") and cfg.vocab_size == 12
    w, lengths = audio_batch
    attn = (torch.arange(w.shape[1])[None] < lengths[:, None]).long()
    with torch.no_grad():
        # as transformers users run each family: layer-norm models with an attention mask; group-norm models
        # (whose feature extractor returns no attention mask) on the zero-padded batch as it is
        hf_out = hf(w, attention_mask=attn if family == "xlsr" else None, output_hidden_states=True)
        logits, frames = ours(w, lengths if family == "xlsr" else None)
        enc = ours.wav2vec2(w, lengths if family == "xlsr" else None, output_hidden_states=True)
    assert logits.shape == hf_out.logits.shape == (2, 18, 12)
    if family == "xlsr":
        # compare valid frames only: transformers leaves garbage on padded frames, we do too, but differently
        valid = torch.arange(18)[None] < frames[:, None]
        assert frames.tolist() == [18, 12]
        assert (logits - hf_out.logits)[valid].abs().max() <= TOL
    else:
        assert (logits - hf_out.logits).abs().max() <= TOL
    assert len(enc.hidden_states) == len(hf_out.hidden_states) == 3
    for ours_h, hf_h in zip(enc.hidden_states, hf_out.hidden_states):
        diff = (ours_h - hf_h)
        if family == "xlsr":
            diff = diff[valid]
        assert diff.abs().max() <= TOL
    # the logits are not trivially small: the check above has teeth
    assert logits.abs().max() > 0.1


def hf_each_alone(hf, w, lengths) -> list[torch.Tensor]:
    """transformers' logits for each utterance of a padded batch, run alone at its own length."""
    return [hf(w[i:i + 1, :n]).logits[0] for i, n in enumerate(lengths.tolist())]


def assert_matches_each_alone(logits, frames, alone) -> None:
    for i, ref in enumerate(alone):
        assert int(frames[i]) == ref.shape[0]
        assert (logits[i, :ref.shape[0]] - ref).abs().max() <= TOL


def test_group_norm_family_with_attention_mask_matches(tmp_path, audio_batch):
    """Group-norm model, padded batch with lengths. Eval mode gives each utterance what transformers gives it
    alone; with `padding_free_norm` and `unbatch_on_cpu` off it is transformers' own padded-batch result with
    an attention mask (the padding inside layer 0's group-norm statistics), which differs measurably."""
    torch.manual_seed(1)
    hf = transformers.Wav2Vec2ForCTC(hf_config("base")).eval()
    _randomise_norms(hf)
    ours, _ = save_and_import(hf, tmp_path)
    w, lengths = audio_batch
    attn = (torch.arange(w.shape[1])[None] < lengths[:, None]).long()
    with torch.no_grad():
        hf_logits = hf(w, attention_mask=attn).logits
        alone = hf_each_alone(hf, w, lengths)
        logits, frames = ours(w, lengths)
        assert_matches_each_alone(logits, frames, alone)
        ours.wav2vec2.padding_free_norm = ours.wav2vec2.unbatch_on_cpu = False
        batch_logits, _ = ours(w, lengths)
    valid = torch.arange(logits.shape[1])[None] < frames[:, None]
    assert (batch_logits - hf_logits)[valid].abs().max() <= TOL
    assert (hf_logits[1, :frames[1]] - alone[1]).abs().max() > 100 * TOL  # the padding's effect is real


@pytest.mark.parametrize("family", ["base", "xlsr"])
def test_exported_weights_reproduce_our_logits_in_transformers(family, tmp_path, audio_batch, tiny_cfg):
    torch.manual_seed(2)
    cfg = tiny_cfg(family, vocab_size=9)
    ours = build_model(cfg, "ctc").eval()
    _randomise_norms(ours)
    hf_cfg = transformers.Wav2Vec2Config(**config_to_hf(cfg, None, "Wav2Vec2ForCTC"))
    hf = transformers.Wav2Vec2ForCTC(hf_cfg).eval()
    missing, unexpected = hf.load_state_dict(state_dict_to_hf(ours.state_dict(), cfg), strict=True)
    assert not missing and not unexpected
    w, lengths = audio_batch
    with torch.no_grad():
        logits, frames = ours(w, lengths)
        assert_matches_each_alone(logits, frames, hf_each_alone(hf, w, lengths))
    # and through transformers' own loader from a directory (legacy weight-norm names are renamed by it)
    hf.save_pretrained(tmp_path)
    again = transformers.Wav2Vec2ForCTC.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert (again(w[:1]).logits - ours(w[:1])[0]).abs().max() <= TOL


def test_legacy_weight_norm_names_import(tmp_path, tiny_cfg):
    """Checkpoints written by older transformers carry pos-conv `weight_g` / `weight_v`; both spellings map."""
    torch.manual_seed(3)
    cfg = tiny_cfg("base")
    ours = build_model(cfg, "encoder").eval()
    legacy = state_dict_to_hf(ours.state_dict(), cfg, legacy_weight_norm=True)
    assert "encoder.pos_conv_embed.conv.weight_g" in legacy
    back = state_dict_from_hf(legacy, cfg)
    assert set(back) == set(ours.state_dict())
    for k, v in ours.state_dict().items():
        assert torch.equal(back[k], v), k


def test_pretraining_checkpoint_imports_as_each_kind(tmp_path):
    torch.manual_seed(4)
    hf = transformers.Wav2Vec2ForPreTraining(hf_config("xlsr"))
    pre, cfg = save_and_import(hf, tmp_path)
    assert type(pre).__name__ == "Wav2Vec2ForPreTraining"
    sd = safetensors.torch.load_file(str(tmp_path / "model.safetensors"))
    enc = state_dict_from_hf(sd, cfg, "encoder")
    assert not any(k.startswith(("quantizer", "project", "final_proj", "wav2vec2.")) for k in enc)
    assert torch.equal(enc["encoder.layers.1.ffn.fc2.weight"],
                       sd["wav2vec2.encoder.layers.1.feed_forward.output_dense.weight"])
    assert torch.equal(pre.final_proj.weight, sd["project_hid.weight"])
    ctc = state_dict_from_hf(sd, cfg, "ctc")  # fine-tuning starts: encoder kept, heads dropped, lm_head to init
    assert hf_kind(sd) == "pretrain" and hf_kind(ctc) == "encoder"
    missing, unexpected = build_model(cfg.replace(vocab_size=5), "ctc").load_state_dict(ctc, strict=False)
    assert sorted(missing) == ["lm_head.bias", "lm_head.weight"] and not unexpected
    # round trip back to transformers names is exact and complete
    back = state_dict_to_hf(pre.state_dict(), cfg)
    assert set(back) == set(sd)


def test_unknown_keys_and_unsupported_configs_are_refused(tiny_cfg):
    from w2v2cli.errors import CheckpointError

    cfg = tiny_cfg("base")
    sd = state_dict_to_hf(build_model(cfg, "encoder").state_dict(), cfg)
    sd["adapter.layers.0.conv.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="adapter.layers.0.conv.weight"):
        state_dict_from_hf(sd, cfg)
    base = hf_config("base").to_dict()
    with pytest.raises(CheckpointError, match="hidden_act"):
        config_from_hf({**base, "hidden_act": "relu"})
    with pytest.raises(CheckpointError, match="hubert"):
        config_from_hf({**base, "model_type": "hubert"})
    with pytest.raises(CheckpointError, match="hidden_size"):
        config_from_hf({k: v for k, v in base.items() if k != "hidden_size"})
    bad = tiny_cfg("base", encoder_embed_dim=64, encoder_attention_heads=4)
    with pytest.raises(CheckpointError, match="shape"):
        state_dict_from_hf(state_dict_to_hf(build_model(cfg, "encoder").state_dict(), cfg), bad)


def test_config_round_trip_keeps_the_architecture(tiny_cfg):
    for family in ("base", "xlsr"):
        cfg = tiny_cfg(family, vocab_size=9)
        back = config_from_hf(config_to_hf(cfg, None, "Wav2Vec2ForCTC"))
        for field in ("extractor_mode", "conv_layers", "conv_bias", "encoder_layers", "encoder_embed_dim",
                      "encoder_ffn_embed_dim", "encoder_attention_heads", "layer_norm_first", "conv_pos",
                      "conv_pos_groups", "latent_vars", "latent_groups", "final_dim", "codevector_dim",
                      "vocab_size", "mask_prob", "mask_length", "dropout", "layerdrop"):
            assert getattr(back, field) == getattr(cfg, field), field

"""Shared helpers for the model tests: tiny configs of both families and random audio."""

from __future__ import annotations

import pytest
import torch

from w2v2cli.model import model_preset

# Tiny but complete: 7-layer conv stack with the published kernels/strides (hop 320, receptive field 400),
# 2 transformer layers, grouped positional conv with an even kernel (like 128).
TINY = dict(
    conv_layers=[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2,
    encoder_layers=2, encoder_embed_dim=48, encoder_ffn_embed_dim=96, encoder_attention_heads=4,
    conv_pos=16, conv_pos_groups=4, final_dim=24, latent_vars=16, latent_groups=2, num_negatives=10,
    dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, dropout_input=0.0, dropout_features=0.0,
    layerdrop=0.0, feature_grad_mult=1.0,
)


def make_tiny_cfg(family: str, **changes):
    """family "base": group-norm conv + post-LN; "xlsr": layer-norm conv with bias + pre-LN."""
    fam = dict(extractor_mode="group_norm", conv_bias=False, layer_norm_first=False)
    if family == "xlsr":
        fam = dict(extractor_mode="layer_norm", conv_bias=True, layer_norm_first=True, normalize_audio=True)
    return model_preset("base", **{**TINY, **fam, **changes})


@pytest.fixture
def audio_batch():
    """Two utterances, the second shorter and zero-padded: (waveforms [2, 6000], lengths [2])."""
    g = torch.Generator().manual_seed(1234)
    w = torch.randn(2, 6000, generator=g)
    lengths = torch.tensor([6000, 4170])
    w[1, 4170:] = 0.0
    return w, lengths


@pytest.fixture
def tiny_cfg():
    """`tiny_cfg(family, **changes)` -> a tiny ModelConfig of the family ("base" or "xlsr")."""
    return make_tiny_cfg

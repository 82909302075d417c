"""Activation checkpointing (`distributed.activation_checkpointing: N`): the same loss and gradients, less memory.

Memory is measured as the bytes the autograd graph keeps for the backward pass at the end of the forward pass
(every tensor handed to `saved_tensors_hooks`, counted once per storage) plus the layer inputs the checkpoints
keep themselves: the activation memory that checkpointing trades for recomputation. Whole-process peak memory on
BASE/LARGE is in BENCHMARKS.md.
"""

from __future__ import annotations

import pytest
import torch

from w2v2cli.errors import ConfigError
from w2v2cli.model import build_model, model_preset
from w2v2cli.model.losses import pretraining_loss
from w2v2cli.train.config import DistributedConfig, load_train_config
from w2v2cli.train.distributed import set_activation_checkpointing


def _step(every: int) -> tuple[float, dict[str, torch.Tensor], int]:
    """Loss, gradients and kept bytes of one pretraining forward/backward of a 4-layer model with dropout."""
    cfg = model_preset("tiny", dropout=0.1, attention_dropout=0.1, activation_dropout=0.1)
    torch.manual_seed(0)
    model = build_model(cfg, "pretrain").train()
    layers = set_activation_checkpointing(model, every)
    waves = torch.randn(2, 48000, generator=torch.Generator().manual_seed(1))
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor):
        kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    torch.manual_seed(2)  # masks, negatives, dropout
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(waves)
    loss, _, _ = pretraining_loss(out, 0.1, 10.0)
    frames = model.wav2vec2.output_lengths(torch.tensor([waves.shape[1]]))
    layer_input = int(waves.shape[0] * frames * cfg.encoder_embed_dim * 4)  # [B, F, D] float32, kept per checkpoint
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads, sum(kept.values()) + layers * layer_input


def test_checkpointing_gives_the_same_loss_and_gradients_with_less_memory():
    loss0, grads0, kept0 = _step(0)
    loss1, grads1, kept1 = _step(1)
    loss2, grads2, kept2 = _step(2)
    assert abs(loss1 - loss0) <= 1e-6 and abs(loss2 - loss0) <= 1e-6  # dropout masks are replayed exactly
    for grads in (grads1, grads2):
        assert sorted(grads) == sorted(grads0)
        for name, g in grads0.items():
            torch.testing.assert_close(grads[name], g, rtol=1e-5, atol=1e-7, msg=name)
    # every layer checkpointed keeps least, every 2nd in between (measured: see the assertion message)
    assert kept1 < kept2 < kept0, (kept0, kept2, kept1)
    assert kept1 < 0.8 * kept0, (kept0, kept1)


def test_activation_checkpointing_is_off_in_eval_and_bad_values_are_named():
    model = build_model(model_preset("tiny"), "encoder").eval()
    assert set_activation_checkpointing(model, 1) == 4 and model.encoder.checkpoint_every == 1
    with torch.no_grad():  # nothing to recompute: the plain path runs
        model(torch.randn(1, 16000))
    with pytest.raises(ConfigError, match="distributed.activation_checkpointing"):
        DistributedConfig(activation_checkpointing=-1)
    with pytest.raises(ConfigError, match="distributed.fsdp"):
        load_train_config("tiny", overrides=["distributed.fsdp=maybe"])

"""In eval mode a padded batch gives every utterance its unbatched result, on both code paths (one utterance at
a time on the CPU; the batched path with masked attention and padding-free group-norm statistics elsewhere)."""

from __future__ import annotations

import pytest
import torch

from w2v2cli.model import build_model
from w2v2cli.model.components import ConvLayer, masked_group_norm

LENGTHS = [9000, 8120, 5333, 9000]


def _batch():
    g = torch.Generator().manual_seed(5)
    w = torch.randn(len(LENGTHS), max(LENGTHS), generator=g) * 0.3
    for i, n in enumerate(LENGTHS):
        w[i, n:] = 0.0
    return w, torch.tensor(LENGTHS)


def _randomise_norms(model):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.2)


@pytest.mark.parametrize("unbatch", [True, False], ids=["one-at-a-time", "batched"])
@pytest.mark.parametrize("family", ["base", "xlsr"])
def test_padded_batch_equals_each_utterance_alone(family, unbatch, monkeypatch, tiny_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(family, vocab_size=9), "ctc").eval()
    _randomise_norms(model)
    monkeypatch.setattr(model.wav2vec2, "unbatch_on_cpu", unbatch)
    w, lengths = _batch()
    with torch.no_grad():
        logits, frames = model(w, lengths)
        enc = model.wav2vec2(w, lengths, output_hidden_states=True)
        alone = [model(w[i:i + 1, :n])[0][0] for i, n in enumerate(LENGTHS)]
        alone_enc = [model.wav2vec2(w[i:i + 1, :n], output_hidden_states=True) for i, n in enumerate(LENGTHS)]
    assert frames.tolist() == [a.shape[0] for a in alone] == [27, 25, 16, 27]
    assert logits.shape[:2] == (4, 27) and enc.padding_mask is not None
    for i, a in enumerate(alone):
        torch.testing.assert_close(logits[i, :frames[i]], a, rtol=0, atol=2e-5)
        torch.testing.assert_close(enc.features[i, :frames[i]], alone_enc[i].features[0], rtol=0, atol=2e-5)
        for h, ha in zip(enc.hidden_states, alone_enc[i].hidden_states):
            torch.testing.assert_close(h[i, :frames[i]], ha[0], rtol=0, atol=2e-5)
    # the batch's feature penalty is the mean over all valid frames
    pen = sum(float(e.features_pen) * e.x.shape[1] for e in alone_enc) / sum(e.x.shape[1] for e in alone_enc)
    assert float(enc.features_pen) == pytest.approx(pen, rel=1e-5)
    assert logits.abs().max() > 0.1


def test_training_mode_keeps_padding_in_the_group_norm_statistics(tiny_cfg):
    """Training keeps fairseq's batch semantics: the padded utterance's valid frames do change with padding."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg("base", vocab_size=9), "ctc").train()
    model.wav2vec2.cfg = model.wav2vec2.cfg.replace(mask_prob=0.0, mask_channel_prob=0.0)
    w, lengths = _batch()
    logits, frames = model(w, lengths)
    alone, _ = model(w[2:3, :LENGTHS[2]])
    assert (logits[2, :frames[2]] - alone[0]).abs().max() > 1e-3


def test_masked_group_norm_is_group_norm_of_the_valid_part():
    torch.manual_seed(0)
    layer = ConvLayer(1, 6, 10, 5, False, "group")
    with torch.no_grad():
        layer.norm.weight.uniform_(0.5, 1.5)
        layer.norm.bias.uniform_(-0.5, 0.5)
        x = torch.randn(3, 6, 40)
        frames = torch.tensor([40, 31, 7])
        y = masked_group_norm(x, frames, layer.norm)
        for i, n in enumerate(frames.tolist()):
            torch.testing.assert_close(y[i, :, :n], layer.norm(x[i:i + 1, :, :n])[0], rtol=0, atol=1e-5)
        # bf16 input: statistics in float32, output back in bf16
        yb = masked_group_norm(x.bfloat16(), frames, layer.norm)
        assert yb.dtype == torch.bfloat16
        torch.testing.assert_close(yb.float(), y, rtol=0, atol=0.05)

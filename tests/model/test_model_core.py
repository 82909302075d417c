"""The model itself: parameter counts, padding, errors, quantizer, losses, gradient scaling, training masks."""

from __future__ import annotations

import math

import pytest
import torch

from w2v2cli.errors import W2V2Error
from w2v2cli.model import (
    GumbelVectorQuantizer,
    InputShapeError,
    Wav2Vec2ForCTC,
    Wav2Vec2ForPreTraining,
    Wav2Vec2Model,
    build_model,
    gumbel_temperature,
    model_preset,
)
from w2v2cli.model.losses import contrastive_loss, diversity_loss, pretraining_loss


def _count(cfg, kind):
    with torch.device("meta"):  # shapes only: the count is exact without allocating 300M floats
        model = build_model(cfg, kind)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("preset,kind,vocab,expected", [
    ("base", "pretrain", 0, 95_044_608),
    ("large", "pretrain", 0, 317_380_864),
    ("xlsr", "pretrain", 0, 317_390_592),
    ("base", "ctc", 32, 94_396_320),
    ("xlsr", "ctc", 32, 315_471_520),
])
def test_parameter_counts_equal_the_published_architectures(preset, kind, vocab, expected):
    assert _count(model_preset(preset, vocab_size=vocab), kind) == expected


def test_tiny_preset_builds_and_runs():
    model = build_model(model_preset("tiny", vocab_size=5), "ctc").eval()
    with torch.no_grad():
        logits, frames = model(torch.randn(1, 16000))
    assert logits.shape == (1, 49, 5) and frames.tolist() == [49]


def test_padded_batch_equals_utterances_one_by_one(tiny_cfg):
    """Layer-norm family with lengths: padding changes nothing on the valid frames."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg("xlsr", vocab_size=6), "ctc").eval()
    lens = [7000, 3333, 5120]
    g = torch.Generator().manual_seed(3)
    utts = [torch.randn(n, generator=g) for n in lens]
    batch = torch.zeros(3, max(lens))
    for i, u in enumerate(utts):
        batch[i, : len(u)] = u
    batch[1, 3333:] = 100.0  # whatever sits in the padding must not leak into valid frames
    with torch.no_grad():
        logits, frames = model(batch, torch.tensor(lens))
        enc = model.wav2vec2(batch, torch.tensor(lens))
        for i, u in enumerate(utts):
            one, one_frames = model(u[None])
            one_enc = model.wav2vec2(u[None])
            f = int(one_frames[0])
            assert int(frames[i]) == f
            assert (logits[i, :f] - one[0]).abs().max() <= 1e-4
            assert (enc.x[i, :f] - one_enc.x[0]).abs().max() <= 1e-4
            assert (enc.features[i, :f] - one_enc.features[0]).abs().max() <= 1e-4
    assert enc.padding_mask is not None and enc.padding_mask.sum(1).tolist() == [0, 21 - 10, 21 - 15]


def test_unpadded_lengths_take_the_mask_free_path(tiny_cfg):
    model = build_model(tiny_cfg("base"), "encoder").eval()
    w = torch.randn(2, 4000)
    with torch.no_grad():
        a = model(w, torch.tensor([4000, 4000]))
        b = model(w)
    assert a.padding_mask is None and torch.equal(a.x, b.x) and a.lengths.tolist() == [12, 12]


@pytest.mark.parametrize("shape,lengths,words", [
    ((1, 0), None, "(1, 0)"),
    ((2, 399), None, "(2, 399)"),
    ((0, 16000), None, "(0, 16000)"),
    ((16000,), None, "(16000,)"),
    ((2, 4000), [4000, 300], "length 300"),
    ((2, 4000), [4000, 4001], "length 4001"),
    ((2, 4000), [4000], "(1,)"),
])
def test_unusable_input_raises_a_clear_error(tiny_cfg, shape, lengths, words):
    model = build_model(tiny_cfg("base"), "encoder")
    lengths = None if lengths is None else torch.tensor(lengths)
    with pytest.raises(InputShapeError) as err:
        model(torch.zeros(shape), lengths)
    assert words in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, W2V2Error)


def test_exactly_the_receptive_field_gives_one_frame(tiny_cfg):
    model = build_model(tiny_cfg("base"), "encoder").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 400))
    assert out.x.shape == (1, 1, 48) and out.lengths.tolist() == [1]


def test_output_lengths_follow_the_conv_formula():
    model = Wav2Vec2Model(model_preset("tiny"))
    lengths = torch.tensor([400, 719, 720, 16000, 250000])
    expect = []
    for n in lengths.tolist():
        for _, k, s in model.cfg.conv_layers:
            n = (n - k) // s + 1
        expect.append(n)
    assert model.output_lengths(lengths).tolist() == expect == [1, 1, 2, 49, 781]


def test_quantizer_eval_picks_argmax_codevectors():
    torch.manual_seed(0)
    q = GumbelVectorQuantizer(in_features=8, num_groups=2, num_vars=5, codevector_dim=6).eval()
    x = torch.randn(30, 8)
    out = q(x, temperature=1.0)
    logits = q.weight_proj(x).view(30, 2, 5)
    assert torch.equal(out.codes, logits.argmax(-1))
    books = q.codevectors.view(2, 5, 3)
    expect = torch.cat([books[0][out.codes[:, 0]], books[1][out.codes[:, 1]]], dim=1)
    assert torch.allclose(out.quantized, expect)
    # perplexities from their definitions
    hard = torch.nn.functional.one_hot(out.codes, 5).float().mean(0)
    soft = logits.softmax(-1).mean(0)
    ppl = lambda p: torch.exp(-(p * torch.log(p.clamp_min(1e-30))).sum(-1)).sum()  # noqa: E731
    assert torch.allclose(out.code_perplexity, ppl(hard), atol=1e-5)
    assert torch.allclose(out.prob_perplexity, ppl(soft), atol=1e-5)
    assert 2.0 <= float(out.code_perplexity) <= 10.0


def test_quantizer_perplexity_extremes():
    q = GumbelVectorQuantizer(in_features=4, num_groups=2, num_vars=4, codevector_dim=4).eval()
    with torch.no_grad():
        q.weight_proj.weight.zero_()
        q.weight_proj.bias.copy_(torch.tensor([5.0, 0, 0, 0, 0, 0, 9.0, 0]))
        out = q(torch.randn(10, 4))
    assert float(out.code_perplexity) == pytest.approx(2.0)  # one code per group
    with torch.no_grad():
        q.weight_proj.bias.zero_()
        q.weight_proj.weight.zero_()
        out = q(torch.randn(10, 4))
    assert float(out.prob_perplexity) == pytest.approx(8.0)  # uniform softmax: G * V


def test_quantizer_training_is_hard_forward_and_differentiable():
    torch.manual_seed(1)
    q = GumbelVectorQuantizer(in_features=8, num_groups=2, num_vars=5, codevector_dim=6).train()
    x = torch.randn(50, 8)
    out = q(x, temperature=0.7)
    books = q.codevectors.view(2, 5, 3)
    expect = torch.cat([books[0][out.codes[:, 0]], books[1][out.codes[:, 1]]], dim=1)
    assert torch.allclose(out.quantized, expect, atol=1e-6)  # exactly one entry per group (hard one-hot)
    assert out.temperature == 0.7
    out.quantized.sum().backward()
    assert q.weight_proj.weight.grad is not None and q.weight_proj.weight.grad.abs().sum() > 0  # straight-through


def test_gumbel_temperature_schedule():
    assert gumbel_temperature((2.0, 0.5, 0.999995), 0) == 2.0
    assert gumbel_temperature((2.0, 0.5, 0.999995), 100_000) == pytest.approx(2.0 * 0.999995 ** 100_000)
    assert gumbel_temperature((2.0, 0.5, 0.999995), 400_000) == 0.5


def test_losses_by_hand():
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, float("-inf")]])
    want = -(torch.log_softmax(logits, 1)[:, 0]).sum()
    assert torch.allclose(contrastive_loss(logits), want)
    assert torch.allclose(contrastive_loss(logits, "mean"), want / 2)
    assert float(diversity_loss(torch.tensor(160.0), 640)) == pytest.approx(0.75)

    from w2v2cli.model import PretrainOutput

    out = PretrainOutput(logits=logits, features_pen=torch.tensor(0.5), code_perplexity=torch.tensor(3.0),
                         prob_perplexity=torch.tensor(4.0), num_vars=8, temperature=1.5, num_masked=2)
    loss, n, metrics = pretraining_loss(out, diversity_weight=0.1, feature_penalty_weight=10.0)
    assert n == 2
    assert float(loss) == pytest.approx(float(want) + 0.1 * 0.5 * 2 + 10 * 0.5 * 2, rel=1e-6)
    assert metrics["accuracy"] == 0.5 and metrics["num_masked"] == 2 and metrics["temperature"] == 1.5
    assert metrics["loss"] == pytest.approx(float(loss) / 2, rel=1e-6)
    assert metrics["contrastive"] == pytest.approx(float(want) / 2, rel=1e-6)


def test_chance_level_loss_with_random_model(tiny_cfg):
    """An untrained model's per-frame InfoNCE is near log(K + 1): nothing leaks the answer."""
    torch.manual_seed(2)
    cfg = tiny_cfg("base", num_negatives=20, latent_vars=64, mask_prob=0.5, mask_length=4)
    model = build_model(cfg, "pretrain").eval()
    with torch.no_grad():
        out = model(torch.randn(4, 16000), generator=torch.Generator().manual_seed(0))
    per_frame = float(contrastive_loss(out.logits)) / out.num_masked
    assert abs(per_frame - math.log(21)) < 0.5


def test_pretraining_step_learns(tiny_cfg):
    """A few Adam steps on one batch drive the loss down: the objective's gradients reach everything."""
    torch.manual_seed(3)
    cfg = tiny_cfg("base", mask_prob=0.5, mask_length=4, num_negatives=10)
    model = Wav2Vec2ForPreTraining(cfg).train()
    w = torch.randn(2, 8000)
    lengths = torch.tensor([8000, 6000])
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for step in range(12):
        out = model(w, lengths, temperature=2.0, generator=torch.Generator().manual_seed(step % 2))
        loss, n, metrics = pretraining_loss(out)
        opt.zero_grad()
        (loss / n).backward()
        opt.step()
        losses.append(metrics["contrastive"])
    assert not w.requires_grad
    assert model.quantizer.weight_proj.weight.grad.abs().sum() > 0
    assert model.wav2vec2.feature_extractor.conv_layers[0].conv.weight.grad.abs().sum() > 0
    assert losses[-1] < losses[0] - 0.3, losses


def test_feature_grad_mult_scales_and_freezes(tiny_cfg):
    torch.manual_seed(4)
    cfg = tiny_cfg("base", vocab_size=5)
    w = torch.randn(1, 4000)
    grads = {}
    for mult in (1.0, 0.25, 0.0):
        torch.manual_seed(5)
        model = Wav2Vec2ForCTC(cfg).eval()
        model.wav2vec2.feature_grad_mult = mult
        logits, _ = model(w)
        logits.square().sum().backward()
        grads[mult] = model.wav2vec2.feature_extractor.conv_layers[2].conv.weight.grad
        proj_grad = model.wav2vec2.feature_projection.linear.weight.grad
        assert proj_grad is not None and proj_grad.abs().sum() > 0
    assert torch.allclose(grads[0.25], grads[1.0] * 0.25, rtol=1e-4, atol=1e-9)
    assert grads[0.0] is None  # ran without autograd


def test_ctc_masks_only_in_training(tiny_cfg):
    torch.manual_seed(6)
    cfg = tiny_cfg("xlsr", vocab_size=5, mask_prob=0.5, mask_length=3, mask_channel_prob=0.3,
                   mask_channel_length=4)
    model = Wav2Vec2ForCTC(cfg)
    w = torch.randn(2, 6000)
    with torch.no_grad():
        model.eval()
        a, _ = model(w)
        b, _ = model(w)
        model.train()
        c, _ = model(w, generator=torch.Generator().manual_seed(1))
        d, _ = model(w, generator=torch.Generator().manual_seed(1))
        e, _ = model(w, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3  # masked in training
    assert torch.equal(c, d) and not torch.equal(c, e)  # reproducible from the generator
    assert not hasattr(model, "quantizer")


def test_mask_embedding_replaces_masked_frames(tiny_cfg):
    cfg = tiny_cfg("base", encoder_layers=0)
    model = Wav2Vec2Model(cfg).eval()
    with torch.no_grad():  # silence the positional conv: the output is then norm(input) frame by frame
        model.encoder.pos_conv.weight_g.zero_()
        model.encoder.pos_conv.bias.zero_()
    w = torch.randn(1, 4000)
    mask = torch.zeros(1, 12, dtype=torch.bool)
    mask[0, 3:7] = True
    with torch.no_grad():
        ref = model(w)
        out = model(w, mask_time=mask)
        emb = model.encoder.norm(model.mask_embedding)
    assert out.mask_time is not None and torch.equal(out.mask_time, mask)
    assert torch.equal(out.features, ref.features)  # the quantizer's input is never masked
    assert torch.allclose(out.x[0, 3:7], emb.expand(4, -1), atol=1e-5)
    assert torch.allclose(out.x[0, ~mask[0]], ref.x[0, ~mask[0]])
    assert not torch.allclose(ref.x[0, 3:7], emb.expand(4, -1), atol=1e-2)


def test_layerdrop_one_skips_every_layer(tiny_cfg):
    cfg = tiny_cfg("base", layerdrop=1.0)
    model = Wav2Vec2Model(cfg).train()
    out = model(torch.randn(1, 4000), output_hidden_states=True)
    assert len(out.hidden_states) == 1
    model.eval()
    with torch.no_grad():
        assert len(model(torch.randn(1, 4000), output_hidden_states=True).hidden_states) == 3


def test_build_model_kinds_and_errors():
    from w2v2cli.errors import ConfigError

    cfg = model_preset("tiny")
    assert isinstance(build_model(cfg, "pretrain"), Wav2Vec2ForPreTraining)
    assert isinstance(build_model(cfg, "encoder"), Wav2Vec2Model)
    with pytest.raises(ConfigError, match="vocab_size"):
        build_model(cfg, "ctc")
    with pytest.raises(ConfigError, match="kind"):
        build_model(cfg, "tts")
    keys = set(build_model(cfg.replace(vocab_size=4), "ctc").state_dict())
    assert "wav2vec2.encoder.pos_conv.weight_g" in keys and "lm_head.weight" in keys
    assert not any(k.startswith(("quantizer", "project_q", "final_proj")) for k in keys)

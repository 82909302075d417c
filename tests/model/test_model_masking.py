"""Span masking, channel masking and negative sampling, checked against exact expectations."""

from __future__ import annotations

import math

import torch

from w2v2cli.model import compute_channel_mask, compute_span_mask, sample_negatives


def expected_masked(n: int, p: float, span: int, min_masks: int) -> float:
    """Exact expected number of masked frames of fairseq's static-span scheme for an utterance of n frames."""
    x = p * n / span
    total = 0.0
    for k, weight in ((math.floor(x), 1 - (x - math.floor(x))), (math.floor(x) + 1, x - math.floor(x))):
        k = min(max(k, min_masks), n)
        cand = n - span if n - span > k else min(k + 1, n)
        masked = 0.0
        for t in range(n):
            c = max(0, min(t, cand - 1) - max(0, t - span + 1) + 1)  # starts that would cover frame t
            masked += 1 - math.comb(cand - c, k) / math.comb(cand, k)
        total += weight * masked
    return total


def test_masked_fraction_matches_the_exact_expectation():
    lengths = torch.tensor([250, 180, 97, 30]).repeat(600)
    g = torch.Generator().manual_seed(0)
    mask = compute_span_mask(lengths, 250, mask_prob=0.65, mask_length=10, min_masks=2, generator=g)
    for i, n in enumerate([250, 180, 97, 30]):
        got = mask[i::4].sum(1).float().mean().item() / n
        want = expected_masked(n, 0.65, 10, 2) / n
        assert abs(got - want) < 0.01, (n, got, want)
    # the published setting masks about half of the frames
    assert 0.45 < expected_masked(250, 0.65, 10, 2) / 250 < 0.52
    assert 0.45 < mask[0::4].float().mean().item() < 0.52


def test_other_settings_match_too():
    lengths = torch.tensor([400, 123]).repeat(500)
    mask = compute_span_mask(lengths, 400, 0.2, 5, 0, generator=torch.Generator().manual_seed(3))
    for i, n in enumerate([400, 123]):
        got = mask[i::2].sum(1).float().mean().item() / n
        assert abs(got - expected_masked(n, 0.2, 5, 0) / n) < 0.01


def test_never_on_padding():
    lengths = torch.tensor([50, 7, 13, 1, 64])
    for seed in range(20):
        mask = compute_span_mask(lengths, 64, 0.9, 10, 2, generator=torch.Generator().manual_seed(seed))
        pad = torch.arange(64)[None] >= lengths[:, None]
        assert not (mask & pad).any()
        assert (mask.sum(1) >= torch.clamp(lengths, max=2)).all()


def test_min_masks_is_honoured():
    lengths = torch.full((200,), 100)
    g = torch.Generator().manual_seed(1)
    single = compute_span_mask(lengths, 100, 0.001, 1, min_masks=3, generator=g)
    assert (single.sum(1) == 3).all()  # three distinct one-frame spans
    spans = compute_span_mask(lengths, 100, 0.001, 5, min_masks=2, generator=g)
    counts = spans.sum(1)
    assert (counts >= 6).all() and (counts <= 10).all()  # two distinct 5-frame spans, possibly overlapping
    assert (counts == 10).any() and (counts < 10).any()


def test_same_generator_seed_gives_the_same_mask():
    lengths = torch.tensor([120, 80, 99])
    a = compute_span_mask(lengths, 120, 0.65, 10, 2, generator=torch.Generator().manual_seed(42))
    b = compute_span_mask(lengths, 120, 0.65, 10, 2, generator=torch.Generator().manual_seed(42))
    c = compute_span_mask(lengths, 120, 0.65, 10, 2, generator=torch.Generator().manual_seed(43))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_channel_mask_fraction_and_no_minimum():
    mask = compute_channel_mask(2000, 768, 0.5, 64, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (2000, 768)
    assert abs(mask.sum(1).float().mean().item() - expected_masked(768, 0.5, 64, 0)) / 768 < 0.01
    none = compute_channel_mask(500, 64, 0.01, 10, generator=torch.Generator().manual_seed(0))
    assert (none.sum(1) == 0).any()  # min_masks is 0 for channels


def test_negatives_come_from_other_masked_frames_of_the_same_utterance():
    lengths = torch.tensor([200, 60, 140])
    mask = compute_span_mask(lengths, 200, 0.65, 10, 2, generator=torch.Generator().manual_seed(0))
    neg = sample_negatives(mask, 100, generator=torch.Generator().manual_seed(1))
    where = mask.nonzero()
    m = where.shape[0]
    assert neg.shape == (m, 100) and neg.dtype == torch.long
    assert neg.min() >= 0 and neg.max() < m
    assert (neg != torch.arange(m)[:, None]).all()  # never the target itself
    assert (where[neg, 0] == where[:, 0:1]).all()  # same utterance
    assert (where[neg, 1] < lengths[where[neg, 0]]).all()  # never padding (only masked frames are candidates)


def test_negatives_are_uniform_over_the_other_frames():
    mask = torch.zeros(1, 20, dtype=torch.bool)
    mask[0, [2, 5, 6, 11, 17]] = True
    neg = sample_negatives(mask, 40000, generator=torch.Generator().manual_seed(2))
    counts = torch.bincount(neg[2], minlength=5).float() / 40000  # the third masked frame's distractors
    assert counts[2] == 0
    assert (counts[[0, 1, 3, 4]] - 0.25).abs().max() < 0.01


def test_cross_sample_negatives_and_lonely_frames():
    mask = torch.zeros(3, 10, dtype=torch.bool)
    mask[0, 3] = True  # one masked frame: nothing to contrast within its utterance
    mask[1, 2:6] = True
    mask[2, 0:3] = True
    neg = sample_negatives(mask, 5, cross_sample_negatives=4, generator=torch.Generator().manual_seed(0))
    assert neg.shape == (8, 9)
    assert (neg[0, :5] == 0).all()  # points at itself -> masked out as equal to the positive
    assert (neg[1:, :5] != torch.arange(1, 8)[:, None]).all()
    assert (neg[:, 5:] != torch.arange(8)[:, None]).all()
    where = mask.nonzero()
    assert (where[neg[:, 5:], 0] != where[:, 0:1]).any()  # cross-sample ones reach other utterances

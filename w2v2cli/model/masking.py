"""Span masking (time and channel) and negative sampling, vectorised over the batch.

    >>> g = torch.Generator().manual_seed(0)
    >>> mask = compute_span_mask(lengths=torch.tensor([250, 180]), max_len=250, mask_prob=0.65, mask_length=10,
    ...                          min_masks=2, generator=g)                       # [2, 250] bool
    >>> neg = sample_negatives(mask, num_negatives=100, generator=g)         # [M, 100] indices into masked frames

Span masking follows fairseq's `compute_mask_indices` (static span length, overlap allowed): an utterance of
`n` valid frames gets `int(mask_prob * n / mask_length + u)` span starts (u ~ U[0, 1)), at least `min_masks`,
drawn without replacement from the first `n - mask_length` positions; each start masks `mask_length` frames,
clipped at the utterance end. So `mask_prob` is the expected share of frames that *start* a span times the span
length; with overlaps about 49% of frames end up masked for 0.65 x 10. Unlike fairseq's default we do not trim
every utterance to the batch's smallest mask count (`require_same_masks`): our losses work on the flat list of
masked frames, so nothing needs equal counts.

All randomness comes from `torch.rand` on the given generator (or the global one); the work runs on the
device of `lengths` with no per-utterance Python loop and no host-device round trip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Uniform [0, 1) numbers on `device`, drawn from `generator` on the generator's own device, so one seeded
    CPU generator gives the same masks whether the model runs on the CPU or a GPU."""
    if generator is None or generator.device == torch.device(device):
        return torch.rand(shape, generator=generator, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device, non_blocking=True)


def compute_span_mask(lengths: Tensor, max_len: int, mask_prob: float, mask_length: int, min_masks: int = 0,
                      generator: torch.Generator | None = None) -> Tensor:
    """Random spans over `[B, max_len]`, never beyond each utterance's `lengths[b]`. Returns bool `[B, max_len]`."""
    device = lengths.device
    b = lengths.shape[0]
    if b == 0 or max_len == 0:
        return torch.zeros(b, max_len, dtype=torch.bool, device=device)
    lengths = lengths.clamp(max=max_len)
    u = uniform((b,), generator, device)
    num = (mask_prob * lengths.float() / float(mask_length) + u).long()
    num = torch.maximum(num, torch.full_like(num, min_masks))
    num = torch.minimum(num, lengths)
    # candidate starts: positions [0, n - mask_length); fairseq widens the range for short utterances so that
    # `num` distinct starts always exist
    num_candidates = torch.where(lengths - mask_length > num, lengths - mask_length,
                                 torch.minimum(num + 1, lengths))
    # a uniform random subset of size num[b] from range(num_candidates[b]): rank random keys, keep the lowest num[b]
    keys = uniform((b, max_len), generator, device)
    positions = torch.arange(max_len, device=device)
    keys = keys.masked_fill(positions[None, :] >= num_candidates[:, None], 2.0)
    ranks = keys.argsort(dim=1).argsort(dim=1)
    starts = ranks < num[:, None]
    if mask_length > 1:
        # frame t is masked when a span starts in [t - mask_length + 1, t]: a sliding max over the start indicators
        starts = F.max_pool1d(F.pad(starts.float().unsqueeze(1), (mask_length - 1, 0)), mask_length, stride=1)
        starts = starts.squeeze(1) > 0
    return starts & (positions[None, :] < lengths[:, None])


def compute_channel_mask(batch: int, channels: int, mask_prob: float, mask_length: int,
                         generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Tensor:
    """Channel (feature) spans per utterance, as fairseq's `mask_channel_*`: bool `[B, C]`, no minimum count."""
    lengths = torch.full((batch,), channels, dtype=torch.long, device=device)
    return compute_span_mask(lengths, channels, mask_prob, mask_length, min_masks=0, generator=generator)


def sample_negatives(mask: Tensor, num_negatives: int, cross_sample_negatives: int = 0,
                     generator: torch.Generator | None = None) -> Tensor:
    """Distractor indices for each masked frame: `[M, num_negatives + cross_sample_negatives]` long.

    Indices point into the flat list of masked frames in row-major order (`mask.nonzero()`), i.e. into the
    rows of `features[mask]`. The first `num_negatives` come uniformly from the *other* masked frames of the
    same utterance (never the frame itself, never padding, which is never masked); the rest come from the other
    masked frames of the whole batch. An utterance with a single masked frame has nothing to contrast with: its
    negatives point at the frame itself, so its distractor logits become -inf (as equal-to-positive ones do).
    """
    if mask.dim() != 2:
        raise ValueError(f"expected a [batch, frames] mask, got shape {tuple(mask.shape)}")
    device = mask.device
    counts = mask.sum(dim=1)  # [B]
    offsets = torch.cumsum(counts, 0) - counts  # first flat index of each utterance
    utt = torch.repeat_interleave(torch.arange(mask.shape[0], device=device), counts)  # [M]
    m = utt.shape[0]
    rank = torch.arange(m, device=device) - offsets[utt]  # position of each masked frame within its utterance
    parts = []
    if num_negatives > 0:
        others = (counts[utt] - 1).clamp(min=1)  # frames to choose from, excluding itself
        r = uniform((m, num_negatives), generator, device)
        pick = (r * others[:, None]).long().clamp(max=(others - 1)[:, None])
        pick = pick + (pick >= rank[:, None]).long()  # skip the frame itself, keeping the draw uniform
        single = (counts[utt] <= 1)[:, None]
        pick = torch.where(single, rank[:, None], pick)
        parts.append(offsets[utt][:, None] + pick)
    if cross_sample_negatives > 0:
        r = uniform((m, cross_sample_negatives), generator, device)
        pick = (r * max(m - 1, 1)).long().clamp(max=max(m - 2, 0))
        idx = torch.arange(m, device=device)[:, None]
        pick = pick + (pick >= idx).long()
        parts.append(pick if m > 1 else idx.expand(m, cross_sample_negatives))
    if not parts:
        return torch.zeros(m, 0, dtype=torch.long, device=device)
    return torch.cat(parts, dim=1)

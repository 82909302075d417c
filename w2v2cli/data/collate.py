"""Turning loaded utterances into a padded `Batch`.

    >>> batch = collate([np.zeros(16000), np.ones(12000)], ids=[4, 7], pad=True)
    >>> batch.waveforms.shape, batch.lengths            # (torch.Size([2, 16000]), tensor([16000, 12000]))

Two ways to make a rectangle, as fairseq does: `pad=True` zero-pads to the longest and records `lengths` (the
model turns them into an attention/padding mask; layer-norm conv models are trained this way), `pad=False`
crops every utterance to the shortest (group-norm conv models, whose per-utterance normalisation would see the
zeros), so all `lengths` are equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np
import torch


@dataclass
class Batch:
    """One batch of utterances.

    waveforms:      [B, T] float32, zero-padded after each utterance's length
    lengths:        [B] long, valid samples per utterance
    targets:        [B, U] long label ids padded with -1, or None (pretraining)
    target_lengths: [B] long, or None
    ids:            [B] long, utterance indices in the manifest (dataset order)
    bad_files:      (path, reason) of the batch's utterances that could not be used and were left out
    """

    waveforms: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor | None = None
    target_lengths: torch.Tensor | None = None
    ids: torch.Tensor | None = None
    bad_files: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.waveforms.shape[0])

    @property
    def num_samples(self) -> int:
        """Audio samples in the batch, not counting padding."""
        return int(self.lengths.sum())

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in moved.items():
            if isinstance(value, torch.Tensor) and name != "ids":
                moved[name] = value.to(device, non_blocking=non_blocking)
        return Batch(**moved)

    def pin_memory(self) -> "Batch":  # called by DataLoader(pin_memory=True)
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[name] = value.pin_memory()
        return Batch(**moved)


def collate(
    waveforms: Sequence[np.ndarray],
    ids: Sequence[int] | None = None,
    targets: Sequence[Sequence[int]] | None = None,
    pad: bool = True,
    quantum: int = 0,
) -> Batch:
    """Pads (pad=True) or crops to the shortest (pad=False, keeps the start); see the module docstring.
    quantum > 0: the batch's width is a multiple of it, padding rounded up or the crop rounded down (never below
    one quantum), so that a run sees few distinct shapes (`data.length_quantum`)."""
    if not waveforms:
        raise ValueError("collate: empty batch")
    lens = [int(len(w)) for w in waveforms]
    width = max(lens) if pad else min(lens)
    if quantum > 0:
        width = -(-width // quantum) * quantum if pad else max(width // quantum * quantum, min(width, quantum))
    out = torch.zeros(len(waveforms), width, dtype=torch.float32)
    for i, wav in enumerate(waveforms):
        n = min(lens[i], width)
        out[i, :n] = torch.as_tensor(np.asarray(wav[:n], dtype=np.float32))
    lengths = torch.tensor([min(n, width) for n in lens], dtype=torch.long)
    tgt = tgt_len = None
    if targets is not None:
        if len(targets) != len(waveforms):
            raise ValueError(f"collate: {len(targets)} targets for {len(waveforms)} waveforms")
        tgt_len = torch.tensor([len(t) for t in targets], dtype=torch.long)
        tgt = torch.full((len(targets), max(1, int(tgt_len.max()))), -1, dtype=torch.long)
        for i, t in enumerate(targets):
            if len(t):
                tgt[i, : len(t)] = torch.as_tensor(list(t), dtype=torch.long)
    id_tensor = torch.as_tensor(list(ids), dtype=torch.long) if ids is not None else None
    return Batch(out, lengths, tgt, tgt_len, id_tensor)

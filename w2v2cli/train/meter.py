"""Sums over one update and metrics between two log lines, reduced over ranks by name.

    >>> meter = Meter(sum_keys=("ntokens",))
    >>> meter.add({"accuracy": 0.5, "ntokens": 30}, sample_size=10)   # weighted mean / plain sum
    >>> meter.reduce(device, info)                                    # {"accuracy": 0.5, "ntokens": 30, ...}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from w2v2cli.train import distributed as D


@dataclass
class UpdateSums:
    """This rank's sums over the micro-batches of one update."""

    loss_sum: float = 0.0
    sample_size: float = 0.0
    audio: float = 0.0  # seconds
    nonfinite: float = 0.0  # micro-batches with a NaN/inf loss


class Meter:
    """Accumulates metrics between log steps: weighted means by sample size, sums for `sum_keys`; `counters` are
    the trainer's own (loss, audio, gradient norm, updates, skipped updates, bad audio files)."""

    def __init__(self, sum_keys: Sequence[str]):
        self.sum_keys = set(sum_keys)
        self.reset()

    def reset(self) -> None:
        self.values: dict[str, float] = {}
        self.weight = 0.0
        self.counters: dict[str, float] = {"loss_sum": 0.0, "sample_size": 0.0, "audio": 0.0, "grad_norm": 0.0,
                                           "updates": 0.0, "nonfinite": 0.0, "bad_audio": 0.0}

    def add(self, metrics: dict[str, float], sample_size: float) -> None:
        self.weight += sample_size
        for key, value in metrics.items():
            v = float(value)
            self.values[key] = self.values.get(key, 0.0) + (v if key in self.sum_keys else v * sample_size)

    def reduce(self, device: torch.device, info: D.DistInfo) -> dict[str, float]:
        """The metrics since the last reset over all ranks; `_audio` holds the audio seconds trained on."""
        # a rank whose batches since the last log line were all skipped (bad audio, NaN) holds no metric keys:
        # reduce by name, so that every rank sums the same list
        flat = {f"v:{k}": v for k, v in self.values.items()}
        flat.update({f"c:{k}": v for k, v in self.counters.items()}, weight=self.weight)
        flat = D.all_reduce_sum_dict(flat, device, info)
        weight = flat["weight"]
        counters = {k[2:]: v for k, v in flat.items() if k.startswith("c:")}
        out = {k[2:]: (v if k[2:] in self.sum_keys else v / max(weight, 1e-12)) for k, v in flat.items()
               if k.startswith("v:")}
        if counters["sample_size"] > 0:
            out["loss"] = counters["loss_sum"] / counters["sample_size"]
        updates = counters["updates"] / info.world_size
        if updates:  # only skipped updates since the last log line: no gradient norm to show (not 0.00)
            out["grad_norm"] = counters["grad_norm"] / (info.world_size * updates)
        out["nonfinite"] = counters["nonfinite"] / info.world_size
        if counters["bad_audio"]:
            out["bad_audio"] = counters["bad_audio"]  # files skipped since the last log line (all ranks)
        out["_audio"] = counters["audio"]
        return out

    @property
    def pending(self) -> bool:
        """Updates (applied or skipped) since the last log line."""
        return bool(self.counters["updates"] or self.counters["nonfinite"])

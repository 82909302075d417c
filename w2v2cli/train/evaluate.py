"""The one validation path: what the trainer runs every `checkpoint.validate_interval_updates` and what
`evaluate_ctc` runs on a finished checkpoint.

    >>> metrics = evaluate(model, task, loader, device)              # {"loss": ..., "wer": 0.21, ...}

The task scores each batch as additive sums (`task.valid_step`), the sums are added over batches and ranks, and
`task.valid_metrics` turns them into metrics (error rates as fractions). With `seed`, the global RNG is re-seeded
before each batch from its global position, so stochastic parts (pretraining's masks and negatives) are the same
at every validation and values are comparable over time.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable

import torch
from torch import nn

from w2v2cli.data.dataset import SkippedBatch, raise_if_failed
from w2v2cli.model.cpu_kernels import clear_weight_caches
from w2v2cli.train import distributed as D
from w2v2cli.train.state import micro_batch_seed
from w2v2cli.train.tasks import Task


def evaluate(model: nn.Module, task: Task, batches: Iterable, device: torch.device,
             info: D.DistInfo | None = None, seed: int | None = None,
             autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
             on_bad: Callable[[list[tuple[str, str]]], None] | None = None,
             distinct: int | None = None) -> dict[str, float]:
    """`task.valid_metrics` of the sums over `batches` (Batch, SkippedBatch or LoadFailure items) and all ranks; {}
    if no rank saw a batch. Utterances a batch left out as bad audio go to `on_bad` ((path, reason) pairs). Leaves
    `model` in eval mode. `distinct`: global batches from this position on repeat earlier ones (FSDP: the sampler
    wraps around so that every rank runs as many forward passes as the others); they run but are not counted."""
    info = info or D.DistInfo()
    model.eval()
    clear_weight_caches(model)  # the weights changed since the last validation, whatever optimizer changed them
    sums: dict[str, float] = {}
    with torch.no_grad():
        for i, item in enumerate(batches):
            item = raise_if_failed(item)
            if item.bad_files and on_bad is not None:
                on_bad(item.bad_files)
            if isinstance(item, SkippedBatch):
                continue
            batch = item.to(device)
            if seed is not None:
                torch.manual_seed(micro_batch_seed(seed, 0, i * info.world_size + info.rank))
            with autocast():
                part = task.valid_step(model, batch)
            if distinct is not None and i * info.world_size + info.rank >= distinct:
                continue  # a repeated batch: the forward pass only kept the ranks' collectives paired
            for key, value in part.items():
                sums[key] = sums.get(key, 0.0) + float(value)
    sums = D.all_reduce_sum_dict(sums, device, info)  # a rank may have had no validation batch
    return task.valid_metrics(sums) if sums else {}

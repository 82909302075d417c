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
import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from rich.console import Console
from torch import nn

from w2v2cli.data.dataset import SkippedBatch, raise_if_failed
from w2v2cli.errors import CheckpointError
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


def evaluate_ctc(checkpoint: str | os.PathLike, manifests: Sequence[str | os.PathLike], labels: str = "ltr",
                 max_tokens: int | None = None, device: str = "cpu", console: Console | None = None) -> dict[str, float]:
    """Greedy-decoding loss, WER, CER (fractions) and blank statistics of a CTC checkpoint on labelled manifests,
    through the trainer's validation path. `max_tokens`: samples per batch (default: `data.max_tokens`'s)."""
    from w2v2cli.checkpoint.io import load_checkpoint
    from w2v2cli.data.dataset import AudioDataset, make_loader
    from w2v2cli.data.sampler import BucketBatchSampler
    from w2v2cli.train.config import DataConfig, LoggingConfig, TaskConfig, TrainConfig
    from w2v2cli.train.ctc_task import ALL_BLANK_EMPTY_SHARE, CTCTask
    from w2v2cli.train.logging import RunLogger

    ckpt = load_checkpoint(checkpoint, kind="ctc", device=device)
    if ckpt.vocab is None:
        raise CheckpointError(f"{checkpoint} has no vocabulary", hint="fine-tuned checkpoints carry one")
    task = CTCTask(TrainConfig(model=ckpt.cfg, task=TaskConfig(name="ctc", labels=labels)), ckpt.vocab)
    targets = [ids for m in manifests for ids in task.targets(Path(m))]
    log = RunLogger(None, LoggingConfig(progress="none"), 0, console=console)
    for text in task.data_warnings():
        log.warn(None, text)
    ds = AudioDataset.from_manifests(manifests, targets=targets, normalize=ckpt.cfg.normalize_audio, pad=True,
                                     max_sample_size=10**12)
    longest, max_tokens = int(ds.sizes.max()), max_tokens or DataConfig().max_tokens
    sampler = BucketBatchSampler(ds.sizes, max(max_tokens, longest), longest, 0, 0, pad=True, shuffle=False)
    sampler.set_epoch(1, 0)
    metrics = evaluate(ckpt.model, task, make_loader(ds, sampler), torch.device(device))
    if metrics.get("empty_frac", 0.0) >= ALL_BLANK_EMPTY_SHARE:
        # not valid_health: its causes name a training config (update, lr, freezing) that an evaluation does not have
        log.warn(None, f"{checkpoint}: {metrics['empty_frac']:.0%} of the hypotheses on "
                       f"{', '.join(Path(m).name for m in manifests)} are empty (mean blank posterior "
                       f"{metrics.get('blank_prob', float('nan')):.3f}): the model emits only blanks; it had not "
                       "left CTC's all-blank phase when it was saved (its training log's warnings say why)")
    return metrics

"""Optimizer and learning-rate schedules.

    >>> opt = build_optimizer(model, cfg.optim)                       # AdamW (decoupled weight decay)
    >>> lr = lr_at(update, cfg.optim.lr, cfg.lr, cfg.optim.max_updates)
    >>> set_lr(opt, lr)

Schedules are pure functions of the update number, so resuming needs no scheduler state beyond the update
count (and cannot drift from the uninterrupted run).
- polynomial (pretraining, fairseq `polynomial_decay`): linear warmup from 0 over `warmup_updates`, then
  `(lr - end_lr) * (1 - progress) ** power + end_lr` down to `end_lr` at `max_updates`.
- tri_stage (fine-tuning): warmup from `init_lr_scale * lr`, hold, exponential decay to `final_lr_scale * lr`,
  with the three phases taking `phase_ratio` of `max_updates`.
- constant.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from w2v2cli.train.config import LRConfig, OptimConfig


def lr_at(update: int, peak: float, cfg: LRConfig, max_updates: int | None) -> float:
    """Learning rate for the update numbered `update` (0-based: the first step uses lr_at(0, ...)). `max_updates`
    None: the run's length is not known yet (a time budget before its first plan): the schedule as if endless."""
    if cfg.scheduler == "constant":
        return peak
    if cfg.scheduler == "polynomial":
        warmup = cfg.warmup_updates
        if warmup > 0 and update < warmup:
            return peak * (update + 1) / warmup
        if max_updates is None:
            return peak
        if update >= max_updates:
            return cfg.end_lr
        remaining = 1.0 - (update - warmup) / max(1, max_updates - warmup)
        return (peak - cfg.end_lr) * remaining ** cfg.power + cfg.end_lr
    # tri_stage
    if max_updates is None:  # the warm-up of an endless run has not left its start
        return cfg.init_lr_scale * peak
    warmup = int(cfg.phase_ratio[0] * max_updates)
    hold = int(cfg.phase_ratio[1] * max_updates)
    decay = max(1, max_updates - warmup - hold)
    init, final = cfg.init_lr_scale * peak, cfg.final_lr_scale * peak
    if update < warmup:
        return init + (peak - init) * update / warmup
    if update < warmup + hold:
        return peak
    progress = min(1.0, (update - warmup - hold) / decay)
    return peak * math.exp(math.log(cfg.final_lr_scale) * progress) if final > 0 else peak * (1 - progress)


def build_optimizer(model: nn.Module, cfg: OptimConfig,
                    lr_scales: dict[str, float] | None = None) -> torch.optim.Optimizer:
    """AdamW over every trainable parameter, as fairseq's `adam` (its weight decay is decoupled, on all weights).

    `lr_scales`: parameter name -> multiplier of the scheduled lr (`set_lr`); parameters not named train at the
    full lr, in the first parameter group (whose lr the trainer logs). Without scales there is one group."""
    scales = lr_scales or {}
    groups: dict[float, list[nn.Parameter]] = {1.0: []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault(float(scales.get(name, 1.0)), []).append(p)
    param_groups = [{"params": ps, "lr_scale": s} for s, ps in groups.items() if ps or s == 1.0]
    return torch.optim.AdamW(param_groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                             weight_decay=cfg.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's lr: `lr` times the group's `lr_scale` (1 where it has none)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)

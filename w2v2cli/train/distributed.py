"""Distributed setup from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); no launcher of our own.

    $ torchrun --nproc_per_node 8 -m w2v2cli pretrain train.tsv --config base --set optim.update_freq=8
    >>> dist_info = init_distributed(cfg.distributed, device)     # DistInfo(rank, world_size, local_rank, ...)
    >>> model = wrap_model(model, dist_info, cfg.distributed, find_unused=True)
    >>> total = all_reduce_sum([loss_sum, sample_size])            # no-op when world_size == 1

NCCL on GPUs, gloo on CPU. FSDP (`distributed.fsdp: true`) shards parameters, gradients and optimizer state
for the large models; otherwise DistributedDataParallel.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from w2v2cli.errors import ConfigError
from w2v2cli.train.config import DistributedConfig


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_info() -> DistInfo:
    """Reads torchrun's variables; a plain `python` run is rank 0 of 1."""
    try:
        return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                        int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as err:
        raise ConfigError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {err}") from err


def pick_device(name: str, info: DistInfo) -> torch.device:
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no GPU is available", hint="use --set device=cpu")
    torch.cuda.set_device(info.local_rank)
    return torch.device("cuda", info.local_rank)


def init_distributed(cfg: DistributedConfig, device: torch.device) -> DistInfo:
    info = env_info()
    if info.world_size <= 1:
        return info
    backend = cfg.backend if cfg.backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30),
                                **({"device_id": device} if device.type == "cuda" else {}))
    info.backend = backend
    return info


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, info: DistInfo, cfg: DistributedConfig, device: torch.device,
               find_unused: bool) -> nn.Module:
    if not info.enabled:
        return model
    if cfg.fsdp:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        return FSDP(model, device_id=device if device.type == "cuda" else None, use_orig_params=True)
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids, find_unused_parameters=find_unused)


def no_sync(model: nn.Module, skip: bool):
    """Context that skips the gradient all-reduce (all but the last micro-batch of an update)."""
    if skip and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()


def all_reduce_sum(values: list[float], device: torch.device, info: DistInfo) -> list[float]:
    """Sums floats over ranks (float64 so sample counts stay exact)."""
    if not info.enabled:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64,
                     device=device if info.backend == "nccl" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def all_reduce_sum_dict(values: dict[str, float], device: torch.device, info: DistInfo) -> dict[str, float]:
    """Sums a dict of floats over ranks. Ranks may hold different keys (a rank that saw no validation batch holds
    none): the key names are gathered first and a missing key counts as 0, so every rank reduces the same list."""
    if not info.enabled:
        return {k: float(v) for k, v in values.items()}
    names: list[list[str]] = [[] for _ in range(info.world_size)]
    dist.all_gather_object(names, sorted(values))
    keys = sorted(set().union(*names))
    return dict(zip(keys, all_reduce_sum([values.get(k, 0.0) for k in keys], device, info)))


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()

"""Distributed setup from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); no launcher of our own.

    $ torchrun --nproc_per_node 8 -m w2v2cli pretrain train.tsv --config base --set optim.update_freq=8
    >>> dist_info = init_distributed(cfg.distributed, device)     # DistInfo(rank, world_size, local_rank, ...)
    >>> model = wrap_model(model, dist_info, cfg.distributed, find_unused=True)
    >>> total = all_reduce_sum([loss_sum, sample_size])            # no-op when world_size == 1

NCCL on GPUs, gloo on CPU. FSDP (`distributed.fsdp: true`) is FSDP2 (`torch.distributed.fsdp.fully_shard`):
each transformer layer, the conv feature encoder and the rest of the model (the root) are sharded units, so
parameters, gradients and optimizer state are split over the ranks and one unit's full parameters exist only
while it runs; in bf16 the parameters are gathered in bf16 and gradients reduced in fp32. Otherwise
DistributedDataParallel. `distributed.activation_checkpointing: N` recomputes every Nth transformer layer's
activations in the backward pass (with or without FSDP, also in one process).
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


def shutdown(finished: bool = False) -> None:
    """Leaves the process group. After a run that `finished` on this rank the ranks first meet at a barrier, so no
    rank tears its communication threads down while another still talks to it (rank 1 could abort at exit with
    "terminate called without an active exception" while rank 0 was still printing its summary, and torchrun then
    reported a completed run as failed). After an error there is no barrier: the other ranks may never arrive."""
    if dist.is_available() and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def wrap_model(model: nn.Module, info: DistInfo, cfg: DistributedConfig, device: torch.device,
               find_unused: bool, precision: str = "fp32") -> nn.Module:
    """Activation checkpointing, then FSDP2 (in place: the model object itself, now an `FSDPModule`) or DDP."""
    set_activation_checkpointing(model, cfg.activation_checkpointing)
    if not info.enabled:
        return model
    if cfg.fsdp:
        return shard_model(model, device, precision)
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids, find_unused_parameters=find_unused)


def set_activation_checkpointing(model: nn.Module, every: int) -> int:
    """Recompute every `every`-th transformer layer (0 = none) of each TransformerEncoder in `model`; the number
    of layers checkpointed."""
    from w2v2cli.model.components import TransformerEncoder

    count = 0
    for module in model.modules():
        if isinstance(module, TransformerEncoder):
            module.checkpoint_every = every
            count += len(range(0, len(module.layers), every)) if every else 0
    return count


def shard_model(model: nn.Module, device: torch.device, precision: str = "fp32") -> nn.Module:
    """FSDP2 units: every transformer layer, the conv feature encoder, then the root (everything else).

    bf16: parameters are all-gathered and used in bf16, gradients reduce-scattered in fp32 (the optimizer keeps
    fp32 master weights, the shards). The model object is sharded in place and returned."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from w2v2cli.model.components import ConvFeatureEncoder, EncoderLayer, TransformerEncoder
    from w2v2cli.model.cpu_kernels import disable_weight_caches
    from w2v2cli.model.wav2vec2 import Wav2Vec2Model

    if precision == "fp16":
        raise ConfigError("distributed.fsdp with optim.precision fp16 is not supported (its GradScaler does not "
                          "know sharded gradients)", hint="use optim.precision=bf16 (or --dtype bf16)")
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if precision == "bf16" \
        else MixedPrecisionPolicy()
    for module in model.modules():
        if isinstance(module, Wav2Vec2Model):
            # eval mode on the CPU runs a padded batch one utterance at a time; ranks holding batches of other
            # sizes would then run different numbers of forward passes and their all-gathers would not pair up
            module.unbatch_on_cpu = False
        if isinstance(module, TransformerEncoder):
            # layerdrop: the same layers on every rank (seeded per micro-batch by `seed_layerdrop`)
            module.layerdrop_generator = torch.Generator()
        if isinstance(module, (EncoderLayer, ConvFeatureEncoder)):
            fully_shard(module, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    disable_weight_caches(model)  # the all-gathered parameters reuse memory: a cache could not see them change
    return model


def seed_layerdrop(model: nn.Module, seed: int) -> None:
    """Seeds the layerdrop generators `shard_model` gave the model (the same seed on every rank)."""
    for module in model.modules():
        generator = getattr(module, "layerdrop_generator", None)
        if generator is not None:
            generator.manual_seed(seed)


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


@contextlib.contextmanager
def _fsdp_no_sync(model):
    model.set_requires_gradient_sync(False)  # gradients accumulate unsharded, reduce-scattered on the last
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def no_sync(model: nn.Module, skip: bool):
    """Context that skips the gradient all-reduce (all but the last micro-batch of an update)."""
    if skip and is_sharded(model):
        return _fsdp_no_sync(model)
    if skip and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> float:
    """`torch.nn.utils.clip_grad_norm_` for sharded (DTensor) gradients too: the norm over all shards."""
    from torch.distributed.tensor import DTensor

    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads, 2.0)
    if isinstance(norm, DTensor):
        norm = norm.full_tensor()  # the sum of the squared local norms over the ranks
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return float(norm)


def local_tensors(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """This rank's pieces of a (sharded) state dict, and the index entries (full shape, split or not)."""
    from torch.distributed.tensor import DTensor, Shard

    from w2v2cli.checkpoint.shards import tensor_entry

    local, entries = {}, {}
    for name, value in state.items():
        if isinstance(value, DTensor):
            if tuple(value.placements) != (Shard(0),):
                raise TypeError(f"{name}: expected FSDP's Shard(0) placement, got {value.placements}")
            local[name], entries[name] = value.to_local(), tensor_entry(value.shape, True)
        else:
            local[name], entries[name] = value, tensor_entry(value.shape, False)
    return local, entries


def from_local(piece: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`piece` as a tensor placed as `like` (a DTensor shard of the same parameter, or a plain tensor)."""
    from torch.distributed.tensor import DTensor

    if isinstance(like, DTensor):
        if tuple(piece.shape) != tuple(like.to_local().shape):
            raise ValueError(f"shard of shape {tuple(piece.shape)}, this rank holds {tuple(like.to_local().shape)}")
        return DTensor.from_local(piece.to(like.device, like.dtype), like.device_mesh, like.placements,
                                  shape=like.shape, stride=like.stride(), run_check=False)
    return piece.to(like.device)


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

"""A training run's numeric precision: which one (`optim.precision`) and the autocast context that applies it.

    >>> precision, why = resolve_precision("auto", torch.device("cpu"))   # ("bf16", "CPU has AMX") or ("fp32", ...)
    >>> with autocast(precision, device):
    ...     loss = model(batch)
"""

from __future__ import annotations

import contextlib

import torch

from w2v2cli.errors import ConfigError
from w2v2cli.runtime import resolve_dtype


def resolve_precision(name: str, device: torch.device) -> tuple[str, str]:
    """(precision, why) of a training run: `auto` follows `w2v2cli.runtime.resolve_dtype` (bf16 on GPUs that
    have it, else fp16; bf16 on CPUs with AMX or avx512_bf16; else fp32)."""
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("optim.precision fp16 needs a GPU (GradScaler)", hint="use optim.precision=bf16 on CPU")
    return resolve_dtype(name, str(device), training=True)


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision for bf16 and fp16 (weights and optimizer stay fp32); a no-op context for fp32."""
    enabled = precision in ("bf16", "fp16")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)

"""Inference on the CPU through oneDNN with pre-packed weights: linear layers (and linear + GELU fused).

    >>> y = linear(x, module.fc1, "gelu")       # == F.gelu(module.fc1(x)), float rounding apart

PyTorch's `F.linear` on the CPU calls MKL's sgemm, which repacks the weight on every call. oneDNN's matmul with
the weight packed once into its blocked layout runs the transformer's shapes (a few hundred to a few thousand
frames x 768 x 3072) at 180-220 GFLOP/s on a 2-core AVX2 machine where sgemm reaches 130-200 (measured,
BENCHMARKS.md), and it applies the GELU of the feed-forward block while the output is still in cache. These are
the ops `torch.compile`'s CPU weight freezing uses (`torch.ops.mkldnn._linear_pointwise`).

Used only where nothing needs gradients (no autograd: `torch.no_grad()` / `torch.inference_mode()`), on CPU
float32 tensors, and on bf16 tensors with bf16 weights (`w2v2 decode --dtype bf16`: the packed bf16 kernel is
1.2x `F.linear` + GELU on the feed-forward shapes, measured on a Zen 4 core with avx512_bf16); everywhere else (training, GPU, autocast) this is exactly `F.linear` (+ `F.gelu`). The packed
weight is cached beside the module (a weak map, so copies and pickles of the model never carry it) and
rebuilt when the parameter changes (`weights_key`, which the positional conv's weight cache uses too). If
the ops are missing or fail, the first failure turns the path off for the process and the plain ops run.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# switched off by the first failure (a torch build without the ops); tests and benchmarks may set it
ENABLED = bool(torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
               and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))

_DTYPES = {torch.float32, torch.bfloat16}  # bf16 is dropped by its first failure (fp32 stays)
_PACK_ROWS_HINT = 512  # the rows oneDNN picks its blocking for; any row count works with the packed weight
_CACHE: weakref.WeakKeyDictionary[nn.Linear, tuple[tuple, Tensor]] = weakref.WeakKeyDictionary()


def usable(x: Tensor) -> bool:
    """True where the packed path applies: CPU float32 (or bf16) input, no autograd, not under autocast."""
    return (ENABLED and x.device.type == "cpu" and x.dtype in _DTYPES and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu"))


def weights_key(*params: Tensor) -> tuple:
    """What a tensor derived from `params` depends on: storage, in-place updates (`_version`: optimizer steps,
    load_state_dict), dtype, device, shape, and whether inference mode (whose tensors are special) is on.
    Updates that do not bump `_version` (fused optimizers, `param.data` writes) need `clear_weight_caches`."""
    return tuple((p.data_ptr(), p._version, p.dtype, p.device, p.shape) for p in params) + (
        torch.is_inference_mode_enabled(),)


def _packed(module: nn.Linear) -> Tensor:
    w = module.weight
    key = weights_key(w)
    cache = _CACHE.get(module)
    if cache is None or cache[0] != key:
        cache = (key, torch.ops.mkldnn._reorder_linear_weight(w.detach(), _PACK_ROWS_HINT))
        _CACHE[module] = cache
    return cache[1]


def clear_weight_caches(model: nn.Module) -> None:
    """Drops every weight cached for the modules of `model` (packed linear weights, the positional conv's weight);
    the next inference pass rebuilds them. Needed after parameter updates that `weights_key` cannot see: PyTorch's
    fused optimizers (`torch.optim.AdamW(..., fused=True)`) and writes through `param.data` change the values
    without bumping `_version`. Validation during training calls it first."""
    for module in model.modules():
        _CACHE.pop(module, None)
        if hasattr(module, "clear_weight_cache"):  # modules with their own cached weight
            module.clear_weight_cache()


def disable_weight_caches(model: nn.Module) -> None:
    """No packed weights and no cached positional-conv weight for the modules of `model`: for models whose
    parameters are re-materialised before every forward pass into reused memory (FSDP all-gathers them), where
    storage address and version counter do not reveal that the values changed."""
    for module in model.modules():
        module.w2v2_no_weight_cache = True


def caches_allowed(module: nn.Module) -> bool:
    return not getattr(module, "w2v2_no_weight_cache", False)


def linear(x: Tensor, module: nn.Linear, activation: str | None = None) -> Tensor:
    """`module(x)`, then `F.gelu` when activation == "gelu"; packed oneDNN kernels where `usable(x)`."""
    global ENABLED
    if activation not in (None, "gelu"):
        raise ValueError(f"activation must be None or 'gelu', got {activation!r}")
    if usable(x) and caches_allowed(module) and module.weight.dtype == x.dtype:
        try:
            shape = x.shape
            x2 = x.reshape(-1, shape[-1]).contiguous()
            bias = module.bias.detach() if module.bias is not None else None
            y = torch.ops.mkldnn._linear_pointwise(x2, _packed(module), bias, activation or "none", [],
                                                   "none" if activation else "")
            return y.view(*shape[:-1], y.shape[-1])
        except (RuntimeError, NotImplementedError):
            if x.dtype == torch.float32:
                ENABLED = False  # fall through to the plain ops, for good
            else:
                _DTYPES.discard(x.dtype)
    y = F.linear(x, module.weight, module.bias)
    return F.gelu(y) if activation == "gelu" else y

"""Process-level performance settings that w2v2 applies itself, so users need not know about them.

    >>> from w2v2cli.runtime import configure_runtime
    >>> configure_runtime()        # once, at the start of training or inference (idempotent)
    RuntimeSettings(malloc_keep_memory=True, ...)

glibc's malloc serves large blocks (> 128 KiB, the size of almost every activation) with `mmap` and gives them
back to the kernel on `free`; the next step asks for the same sizes again and the kernel has to zero and fault in
every page once more. On a CPU training step that is up to half the wall time spent in the kernel (sys time).
Telling glibc to keep freed memory (`mallopt(M_MMAP_MAX, 0)`: large blocks come from the heap;
`mallopt(M_TRIM_THRESHOLD, huge)`: the heap top is never returned) makes later steps reuse the same pages:
measured on a 2-core Zen 3, 1.3-1.5x faster training steps and ~10% faster inference (see BENCHMARKS.md).
Peak RSS grows a little because memory freed between steps stays mapped (it is reused, not leaked).

The setting is process-wide and only affects allocations made after the call. Nothing happens when the C
library is not glibc (musl, macOS), when `W2V2_MALLOC_KEEP=0` is set in the environment, or when the user
already tuned glibc through `GLIBC_TUNABLES` (their settings win).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# mallopt takes an int; glibc stores M_TRIM_THRESHOLD as a size_t, so -1 reads as SIZE_MAX: never trim
_NEVER_TRIM = -1

_applied: "RuntimeSettings | None" = None


@dataclass(frozen=True)
class RuntimeSettings:
    """What `configure_runtime` did: malloc_keep_memory (glibc told to keep freed memory), reason when not,
    threads (torch intra-op threads in use), flush_denormal (CPU denormals flushed to zero)."""

    malloc_keep_memory: bool
    reason: str
    threads: int
    flush_denormal: bool


def _glibc():
    """The process's C library when it is glibc (it exports `gnu_get_libc_version`), else None."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - attribute lookup raises AttributeError when absent
    except (OSError, AttributeError):
        return None
    return libc


def malloc_keep_memory() -> tuple[bool, str]:
    """Tells glibc malloc to keep freed memory mapped (no mmap for large blocks, no trimming).
    Returns (applied, reason)."""
    if os.environ.get("W2V2_MALLOC_KEEP", "1").strip().lower() in ("0", "false", "no", "off"):
        return False, "disabled by W2V2_MALLOC_KEEP=0"
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False, "GLIBC_TUNABLES already sets glibc.malloc (left as the user set it)"
    libc = _glibc()
    if libc is None:
        return False, "the C library is not glibc"
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) == 1
    return ok, "applied" if ok else "mallopt refused the setting"


def configure_runtime(threads: int | None = None, keep_memory: bool = True) -> RuntimeSettings:
    """Applies w2v2's process-level CPU settings once (later calls return the first result, except that
    `threads` is applied whenever given). threads: torch intra-op threads (None = torch's default, one per
    core). keep_memory: the glibc malloc setting described in the module docstring."""
    import torch

    global _applied
    if threads:
        torch.set_num_threads(int(threads))
    if _applied is not None:
        if threads:
            _applied = RuntimeSettings(_applied.malloc_keep_memory, _applied.reason, torch.get_num_threads(),
                                       _applied.flush_denormal)
        return _applied
    if keep_memory:
        applied, reason = malloc_keep_memory()
    else:
        applied, reason = False, "not requested"
    # denormals (tiny weights/gradients late in training) are 10-100x slower on x86; flushing them is what
    # the GPU does anyway
    flush = bool(torch.set_flush_denormal(True))
    _applied = RuntimeSettings(applied, reason, torch.get_num_threads(), flush)
    return _applied

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

oneDNN (PyTorch's CPU convolutions, and its bf16 matrix products) compiles a kernel ("primitive") for each new
shape and keeps the last 1,024 in a cache. A training run whose batch lengths come in few shapes
(`data.length_quantum`) needs more than that: a tiny pretraining run makes ~80 primitives per batch shape (forward
and backward of every layer), tens of batch shapes, and each validation another ~2,400, so the cache thrashes and
every validation compiles all of its kernels again. Its capacity is read from `ONEDNN_PRIMITIVE_CACHE_CAPACITY`
when oneDNN makes its first primitive; `enlarge_kernel_cache` sets it to 16,384 unless the environment already
does, and the trainer calls it for runs with a length quantum. Measured (BENCHMARKS.md): tiny bf16 pretraining
with the quantum on 6 h of audio, updates 300-2,500 in 358 s instead of 448 s; RSS levels at ~2.5 GB. Not for
exact batch lengths: there nearly every batch has new shapes, the large cache only fills with kernels used once,
and the same tiny pretraining in fp32 ran 24 instead of 45 audio s/s by update 500 (RSS 7 instead of 2.6 GB, half
the CPU time in the kernel; bench/ARCHIVE.md, "Thirteenth search").

Denormal numbers (below 1.2e-38 in fp32) take x86 CPUs 10-100x longer per operation; they are flushed to zero
(as GPUs do) in this thread and in every thread of torch's OpenMP pool, which `torch.set_flush_denormal` alone
does not reach once the pool exists (`flush_denormals`).
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
ONEDNN_CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
ONEDNN_CACHE_CAPACITY = 16384  # oneDNN's default: 1,024


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
    flush = flush_denormals()
    _applied = RuntimeSettings(applied, reason, torch.get_num_threads(), flush)
    return _applied


def enlarge_kernel_cache() -> str:
    """Lets oneDNN keep 16,384 compiled kernels instead of 1,024 (see the module docstring: for runs whose
    shapes repeat), unless `ONEDNN_PRIMITIVE_CACHE_CAPACITY` is already set (a user's value wins). Takes effect
    only before oneDNN makes its first primitive, when it reads the variable. Returns the capacity the process
    has from then on."""
    return os.environ.setdefault(ONEDNN_CACHE_ENV, str(ONEDNN_CACHE_CAPACITY))


def _denormals_survive(threads: int) -> bool:
    """True when an elementwise product split over `threads` OpenMP threads still makes denormals (1e-20 squared
    is 1e-40, below fp32's smallest normal number): some thread of torch's pool does not flush them."""
    import torch

    y = torch.full((65_536 * 2 * max(threads, 1),), 1e-20)  # several of ATen's 32,768-element grains per thread
    return bool((y * y).any())


def _libgomp():
    """The GNU OpenMP runtime this process has loaded (torch's own copy in pip wheels), else None."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = {line.split()[-1] for line in f if "libgomp" in line.rsplit("/", 1)[-1]}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
            lib.GOMP_parallel  # noqa: B018 - raises AttributeError when absent
            return lib
        except (OSError, AttributeError):
            continue
    return None


def flush_denormals() -> bool:
    """Flushes CPU denormals to zero in this thread and in every thread of torch's OpenMP pool; True when no
    thread of the pool makes denormals afterwards.

    `torch.set_flush_denormal` sets the calling thread's MXCSR only. Threads created later inherit it, but once
    torch has run a parallel op the pool's threads exist, and they would go on computing with denormals (half
    of every 2-thread elementwise op, for a program that built its model before training). Then each pool
    thread sets its own flag: one OpenMP parallel region through libgomp's `GOMP_parallel`, calling back into
    torch in every thread."""
    import torch

    if not torch.set_flush_denormal(True):
        return False  # not an x86 CPU with SSE3
    threads = torch.get_num_threads()
    if threads < 2 or not _denormals_survive(threads):
        return True
    lib = _libgomp()
    if lib is None:
        return False
    callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _data: torch.set_flush_denormal(True))
    lib.GOMP_parallel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    lib.GOMP_parallel.restype = None
    lib.GOMP_parallel(ctypes.cast(callback, ctypes.c_void_p), None, threads, 0)
    return not _denormals_survive(threads)


# ------------------------------------------------------------------------------------------- bf16 or fp32
DTYPES = ("auto", "fp32", "bf16")


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo (`platform.processor()` or the machine type where it has none)."""
    import platform  # noqa: PLC0415

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return name


def cpu_bf16_units() -> str:
    """What this CPU has for bf16 arithmetic: "amx" (AMX tiles, `amx_bf16`: Xeon Sapphire Rapids and later),
    "avx512_bf16" (vector bf16 dot products only: Cooper Lake, AMD Zen 4 and later) or "" (none: bf16 is then
    emulated, about 30x slower than fp32). From torch's CPU checks, or the kernel's flags in /proc/cpuinfo."""
    import torch

    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if "amx_bf16" in flags or (not flags and check is not None and check()):  # no /proc: ask torch
        return "amx"
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    if "avx512_bf16" in flags or (not flags and check is not None and check()):
        return "avx512_bf16"
    return ""


def resolve_dtype(name: str, device: str, training: bool, units: str | None = None) -> tuple[str, str]:
    """(dtype, why) for `--dtype NAME` on `device` ("cpu", "cuda", "cuda:1"): "bf16" or "fp32" ("fp16" for
    training on GPUs without bf16, where `auto` keeps the GradScaler path). `units`: the CPU's bf16 units as
    `cpu_bf16_units()` names them (None: this machine's).

    The `auto` rule (measurements in bench/ARCHIVE.md, "bf16 on CPUs and GPUs"):
    - GPU: bf16 where the GPU has it (Ampere and later); else fp16 for training, fp32 for inference;
    - CPU with AMX (`amx_bf16`): bf16, training and inference;
    - CPU with avx512_bf16 but no AMX (AMD Zen 4): bf16 too. Measured on one Zen 4 core, BASE: decoding 1.7-2.4x
      and the pretraining step 1.7x faster than fp32, so the vector bf16 dot products alone pay off;
    - any other CPU: fp32 (bf16 is emulated there, ~30x slower).
    """
    if name not in DTYPES + ("fp16",):
        from w2v2cli.errors import ConfigError

        raise ConfigError(f"--dtype must be auto, fp32 or bf16, got {name!r}")
    if name != "auto":
        return name, "as asked"
    import torch

    if str(device).startswith("cuda"):
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16", "auto: the GPU has bf16"
        return ("fp16", "auto: the GPU has no bf16 (fp16 with loss scaling)") if training else \
            ("fp32", "auto: the GPU has no bf16")
    units = cpu_bf16_units() if units is None else units
    if units == "amx":
        return "bf16", "auto: the CPU has AMX bf16 matrix units"
    if units == "avx512_bf16":
        return "bf16", "auto: the CPU has avx512_bf16 dot products (no AMX), measured faster than fp32"
    return "fp32", "auto: the CPU has no bf16 units (bf16 would be emulated, ~30x slower)"

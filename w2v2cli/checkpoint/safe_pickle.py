"""Reading pickled `.pt` files (fairseq checkpoints, `pytorch_model.bin`) without running their code.

    >>> state = load_pickled("wav2vec_small.pt")          # dict: model, args/cfg, optimizer_history, ...

Everything goes through `torch.load(weights_only=True)`: its unpickler builds tensors and plain Python
containers only. fairseq also pickles a few harmless objects, which we allow by exact name and nothing else:
`argparse.Namespace` (the `args` of checkpoints written before fairseq moved to hydra in 2021) and numpy
scalars/arrays (best-loss and meter values in `extra_state`). Newer checkpoints keep their config as plain
dicts under `cfg` (fairseq calls `OmegaConf.to_container` before saving). Any other global, such as
`os.system` or `builtins.eval` in a malicious file, makes loading fail with a CheckpointError that names it;
nothing from the file is executed.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from w2v2cli.errors import CheckpointError


def _numpy_allow_list() -> list[Any]:
    """numpy's pickling helpers, under both their numpy 2 (`numpy._core`) and numpy 1 (`numpy.core`) names."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    items: list[Any] = [np.ndarray, np.dtype]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        items += [(multiarray.scalar, f"{mod}.scalar"), (multiarray._reconstruct, f"{mod}._reconstruct")]
    # dtype classes appear by name in pickles written by numpy >= 1.25
    for kind in (np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_):
        dtype_cls = type(np.dtype(kind))
        items.append((dtype_cls, f"numpy.dtypes.{dtype_cls.__name__}"))
    return items


def allowed_globals() -> list[Any]:
    """The explicit allow-list passed to `torch.serialization.safe_globals`."""
    return [argparse.Namespace, *_numpy_allow_list()]


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # legacy (non-zip) format: the unpickler's own message names the global
        return []


def load_pickled(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """Loads a torch-pickled file with the restricted unpickler; CheckpointError on anything unexpected."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist" if not path.exists() else f"{what} {path} is not a file")
    try:
        with torch.serialization.safe_globals(allowed_globals()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "Weights only load failed" in text or "WeightsUnpickler" in text:
            allowed = {f"{g.__module__}.{g.__qualname__}" for g in allowed_globals() if not isinstance(g, tuple)}
            allowed |= {g[1] for g in allowed_globals() if isinstance(g, tuple)}
            names = [n for n in _unsafe_globals(path) if n not in allowed]
            names = names or sorted(set(re.findall(r"GLOBAL ([\w.]+)", text)))
            what_found = (
                f"references {', '.join(names)}, which is not on the allow-list of plain data types"
                if names else "uses pickle instructions that the safe loader does not accept"
            )
            raise CheckpointError(
                f"refusing to load {path}: the pickle {what_found}; loading it could run code",
                hint="only files holding tensors, plain containers, argparse.Namespace and numpy scalars are read; "
                "if you trust the file, re-save its weights as safetensors in its own framework",
            ) from None
        raise CheckpointError(f"{path} is not a readable torch checkpoint: {text.splitlines()[0][:300]}") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, KeyError, TypeError, IndexError) as err:
        first = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint (truncated or corrupted?): {first}",
        ) from None

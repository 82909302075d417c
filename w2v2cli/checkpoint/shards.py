"""Sharded checkpoints (written by FSDP runs): one safetensors file of model and one of optimizer state per rank.

    >>> index = read_index(ckpt)                       # {"world_size": 2, "model": {name: {...}}, ...}
    >>> model_local, optim_local = read_shard(ckpt, rank=1, world_size=2)   # exact resume at the same size
    >>> state = consolidated_state(ckpt)               # the full state dict, as `model.safetensors` holds it

Layout of a sharded checkpoint directory (beside `config.yaml` and `trainer_state.pt`, see `io.py`):
`shards.json` (format, world size, and per tensor its full shape and whether it is split over the ranks),
`model-RRRRR-of-WWWWW.safetensors` (rank R's piece of every parameter: rows `[start, end)` of dim 0, as FSDP2's
`Shard(0)` placement gives them; unsplit tensors whole) and `optim-RRRRR-of-WWWWW.safetensors` (rank R's
optimizer moments, keyed `PARAM/STATE`). Concatenating the pieces in rank order along dim 0 gives the full
tensor. Nothing here unpickles: JSON and safetensors only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from w2v2cli.errors import CheckpointError

INDEX_FILE = "shards.json"
SHARDS_FORMAT = "w2v2-shards"
SHARDS_VERSION = 1


def shard_file(part: str, rank: int, world_size: int) -> str:
    """`model-00001-of-00002.safetensors` (part: model | optim)."""
    return f"{part}-{rank:05d}-of-{world_size:05d}.safetensors"


def is_sharded(path: str | os.PathLike) -> bool:
    return (Path(path) / INDEX_FILE).is_file()


def tensor_entry(shape: tuple[int, ...] | torch.Size, sharded: bool) -> dict[str, Any]:
    return {"shape": [int(n) for n in shape], "sharded": bool(sharded)}


def write_shard(tmp: Path, rank: int, world_size: int, model: dict[str, torch.Tensor],
                optim: dict[str, torch.Tensor]) -> None:
    """Writes and fsyncs this rank's two files into the (shared, temporary) checkpoint directory `tmp`."""
    from safetensors.torch import save_file

    for part, tensors in (("model", model), ("optim", optim)):
        path = tmp / shard_file(part, rank, world_size)
        save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}, str(path),
                  metadata={"format": "pt", "rank": str(rank), "world_size": str(world_size)})
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def index_bytes(world_size: int, model: dict[str, dict], optim: dict[str, dict]) -> bytes:
    """`shards.json`: model and optim map tensor names to `tensor_entry(...)`."""
    return json.dumps({"format": SHARDS_FORMAT, "version": SHARDS_VERSION, "world_size": world_size,
                       "model": model, "optim": optim}, indent=1, sort_keys=True).encode("utf-8")


def read_index(path: str | os.PathLike) -> dict[str, Any]:
    """Reads and checks `shards.json`; CheckpointError naming the file."""
    file = Path(path) / INDEX_FILE
    try:
        index = json.loads(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise CheckpointError(f"cannot read {file}: {err.strerror}") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{file} is not valid JSON (corrupted checkpoint?): {err}") from err
    if not isinstance(index, dict) or index.get("format") != SHARDS_FORMAT:
        raise CheckpointError(f"{file}: not a w2v2 shard index")
    if int(index.get("version", 0)) > SHARDS_VERSION:
        raise CheckpointError(f"{file}: shard format version {index['version']} is newer than this w2v2 understands",
                              hint="upgrade w2v2")
    world = index.get("world_size")
    if not isinstance(world, int) or world < 1 or not isinstance(index.get("model"), dict) or \
            not isinstance(index.get("optim"), dict):
        raise CheckpointError(f"{file}: missing or bad 'world_size', 'model' or 'optim'")
    return index


def _load(file: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except FileNotFoundError:
        raise CheckpointError(f"{file} is missing (incomplete sharded checkpoint)") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"cannot read {file} (truncated or corrupted?): {err}") from None


def check_shards(path: str | os.PathLike) -> dict[str, Any]:
    """Reads the index and the header of every shard file (not the tensors); the index."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    index = read_index(path)
    for rank in range(index["world_size"]):
        for part in ("model", "optim"):
            file = path / shard_file(part, rank, index["world_size"])
            if not file.is_file():
                raise CheckpointError(f"{file} is missing (incomplete sharded checkpoint)")
            try:
                with safe_open(str(file), "pt") as f:
                    keys = set(f.keys())
            except (SafetensorError, OSError, ValueError, RuntimeError) as err:
                raise CheckpointError(f"{file}: unreadable (truncated or corrupted?): {err}") from None
            missing = set(index[part]) - keys
            if missing:
                raise CheckpointError(f"{file}: {len(missing)} tensor(s) of {INDEX_FILE} missing "
                                      f"({', '.join(sorted(missing)[:3])})")
    return index


def read_shard(path: str | os.PathLike, rank: int, world_size: int) -> tuple[dict[str, torch.Tensor],
                                                                             dict[str, torch.Tensor]]:
    """Rank `rank`'s model and optimizer pieces; CheckpointError unless the checkpoint has `world_size` ranks."""
    path = Path(path)
    index = read_index(path)
    if index["world_size"] != world_size:
        raise CheckpointError(f"{path} was written by {index['world_size']} processes; this run has {world_size}",
                              hint=f"resume with torchrun --nproc_per_node {index['world_size']} (same number of "
                                   f"processes), or consolidate it (w2v2 consolidate) and start a new run with --init")
    return (_load(path / shard_file("model", rank, world_size)),
            _load(path / shard_file("optim", rank, world_size)))


def consolidated_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The full model state dict of a sharded checkpoint (pieces concatenated along dim 0, shapes checked)."""
    path = Path(path)
    index = read_index(path)
    world = index["world_size"]
    pieces = [_load(path / shard_file("model", r, world)) for r in range(world)]
    out: dict[str, torch.Tensor] = {}
    for name, entry in index["model"].items():
        if any(name not in p for p in pieces):
            raise CheckpointError(f"{path}: tensor {name} is missing from a shard")
        full = torch.cat([p[name] for p in pieces], 0) if entry["sharded"] else pieces[0][name]
        if list(full.shape) != entry["shape"]:
            raise CheckpointError(f"{path}: the shards of {name} make {list(full.shape)}, {INDEX_FILE} says "
                                  f"{entry['shape']}")
        out[name] = full
    return out

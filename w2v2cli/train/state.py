"""Trainer state: everything besides the weights that an exact resume needs.

    >>> data = trainer_state_bytes(TrainerState(update=400, epoch=2, position=96), optimizer, scaler)
    >>> save_checkpoint(dir, model, cfg.model, "pretrain", train_config=cfg, extra_files={STATE_FILE: data})
    >>> state, tensors = load_trainer_state(dir / STATE_FILE)   # torch.load(weights_only=True)

The file holds tensors and primitives only (optimizer moments, GradScaler state, RNG states, update count,
sampler position), so it is loaded with `weights_only=True`: a checkpoint cannot run code when resumed. It is
written inside the checkpoint directory, which `save_checkpoint` swaps in atomically; `save_trainer_state` is
the atomic stand-alone writer.
"""

from __future__ import annotations

import io
import os
import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from w2v2cli.errors import CheckpointError
from w2v2cli.textio import atomic_write_bytes

STATE_FILE = "trainer_state.pt"
STATE_VERSION = 1


@dataclass
class TrainerState:
    """Counters of a run (all primitives)."""

    update: int = 0  # optimizer updates done
    epoch: int = 1  # current epoch (1-based)
    position: int = 0  # global batches of `epoch` consumed (multiple of world_size x update_freq)
    world_size: int = 1
    update_freq: int = 1
    nonfinite_total: int = 0  # updates skipped for NaN/inf loss
    nonfinite_in_a_row: int = 0
    best_metric: float | None = None  # best validation value so far (checkpoint.best_metric)
    best_update: int = 0
    bad_validations: int = 0  # validations in a row without improvement (early stopping)
    audio_seconds: float = 0.0  # training audio processed (all ranks)
    wall_seconds: float = 0.0  # training time before this process started
    bad_files: int = 0  # distinct audio files skipped as unreadable / non-finite (data.max_bad_files)
    planned_updates: int = 0  # optim.max_minutes: the run's length in updates planned from its speed (0: none yet)
    plan_fixed: bool = False  # optim.max_minutes: past half the budget, the planned length no longer changes
    seed: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # task-specific primitives


def capture_rng() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_meta": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, pos, has_gauss, cached = state["numpy_meta"]
    np.random.set_state((name, state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainer_state_bytes(state: TrainerState, optimizer: torch.optim.Optimizer | dict,
                        scaler: torch.amp.GradScaler | None = None) -> bytes:
    """Serialises the state (tensors + primitives) with torch.save into bytes."""
    payload = {
        "version": STATE_VERSION,
        "trainer": asdict(state),
        "optimizer": optimizer if isinstance(optimizer, dict) else optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": capture_rng(),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def save_trainer_state(path: str | os.PathLike, data: bytes) -> None:
    """Atomic write (temp file + fsync + rename)."""
    atomic_write_bytes(path, data)


def load_trainer_state(path: str | os.PathLike) -> tuple[TrainerState, dict[str, Any]]:
    """Returns (TrainerState, payload with 'optimizer', 'scaler', 'rng'); weights_only=True."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"no trainer state in {path.parent} ({path.name} missing)",
                              hint="this checkpoint has weights only; it can initialise a run but not resume one") \
            from err
    except Exception as err:  # truncated file, foreign pickle
        raise CheckpointError(f"{path}: unreadable trainer state ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict) or payload.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path}: not a w2v2 trainer state (version {payload.get('version')!r})"
                              if isinstance(payload, dict) else f"{path}: not a w2v2 trainer state")
    known = {f.name for f in fields(TrainerState)}
    state = TrainerState(**{k: v for k, v in payload["trainer"].items() if k in known})
    return state, payload


def micro_batch_seed(seed: int, epoch: int, position: int) -> int:
    """Seed of the global RNG for one global batch: the same on any rank and after a resume."""
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1, dtype=np.uint64)[0] >> 1)

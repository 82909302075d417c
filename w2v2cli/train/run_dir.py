"""A run directory's layout, and finding the checkpoint a run resumes from.

    >>> list_checkpoints(Path("exp/pt"))                 # [(600, exp/pt/checkpoints/update_00000600), ...]
    >>> find_resume_checkpoint(Path("exp/pt"), "auto")   # the newest loadable one (damaged ones named, skipped)

Layout of DIR: `config.yaml` (the resolved config of the first run; each resumption's own in `config.resume-N.yaml`),
`metrics.jsonl`, `checkpoints/update_NNNNNNNN/` (model.safetensors, config.yaml, trainer_state.pt; under FSDP one
model-R-of-W.safetensors and optim-R-of-W.safetensors per rank and shards.json instead of model.safetensors, see
w2v2cli/checkpoint/shards.py; the last `checkpoint.keep_last` are kept), `checkpoint_last` -> newest,
`checkpoint_best` (weights of the best validation so far, when validating; always one model.safetensors),
`bad_audio.tsv` (w2v2cli/train/bad_audio.py).

Resuming never starts over silently: `resume="auto"` names every checkpoint it cannot load and why, announces a
fallback to an older one and fails when checkpoints exist but none loads; a directory that holds checkpoints is never
trained into from update 0 unless `resume="restart"` (which moves the old run aside first).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from w2v2cli.config import save_yaml
from w2v2cli.errors import CheckpointError
from w2v2cli.train.bad_audio import BAD_AUDIO_FILE
from w2v2cli.train.state import STATE_FILE, load_trainer_state

CKPT_DIR = "checkpoints"
LAST_LINK = "checkpoint_last"
BEST_DIR = "checkpoint_best"
_CKPT_RE = re.compile(r"^update_(\d+)$")


def checkpoint_path(out_dir: Path, update: int) -> Path:
    """Where the checkpoint of `update` lives: DIR/checkpoints/update_NNNNNNNN."""
    return out_dir / CKPT_DIR / f"update_{update:08d}"


def list_checkpoints(out_dir: Path, complete: bool = True) -> list[tuple[int, Path]]:
    """(update, path) of the checkpoints in DIR/checkpoints, newest first; `complete`: only those holding all
    three files (weights: model.safetensors, or shards.json for the sharded checkpoints of FSDP runs)."""
    from w2v2cli.checkpoint.shards import INDEX_FILE

    root = out_dir / CKPT_DIR
    found = []
    if root.is_dir():
        for child in root.iterdir():
            m = _CKPT_RE.match(child.name)
            if m and child.is_dir() and (not complete or (
                    all((child / f).is_file() for f in ("config.yaml", STATE_FILE)) and
                    ((child / "model.safetensors").is_file() or (child / INDEX_FILE).is_file()))):
                found.append((int(m.group(1)), child))
    return sorted(found, reverse=True)


def point_last_and_prune(out_dir: Path, path: Path, keep_last: int) -> None:
    """Switches DIR/checkpoint_last to `path` atomically and deletes all but the newest `keep_last` checkpoints."""
    link = out_dir / LAST_LINK
    tmp = out_dir / f".{LAST_LINK}.tmp-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.join(CKPT_DIR, path.name), tmp)
    os.replace(tmp, link)  # atomic switch of the pointer
    for _, old in list_checkpoints(out_dir)[keep_last:]:
        shutil.rmtree(old, ignore_errors=True)


def check_resumable(path: Path) -> None:
    """Raises CheckpointError (naming the file and the reason) unless `path` holds a readable config.yaml, a
    complete model.safetensors (its header and size; the weights are read by the resume itself) and trainer state."""
    from safetensors import SafetensorError, safe_open

    from w2v2cli.checkpoint.io import WEIGHTS_FILE, read_checkpoint_meta
    from w2v2cli.checkpoint.shards import check_shards, is_sharded

    sharded = is_sharded(path)  # an FSDP run's checkpoint: the index and every rank's files
    for name in ("config.yaml", STATE_FILE) if sharded else (WEIGHTS_FILE, "config.yaml", STATE_FILE):
        if not (path / name).is_file():
            raise CheckpointError(f"{path / name} is missing")
    read_checkpoint_meta(path)
    if sharded:
        check_shards(path)
    else:
        try:
            with safe_open(str(path / WEIGHTS_FILE), "pt") as f:
                f.keys()
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{path / WEIGHTS_FILE}: unreadable weights (truncated or corrupted?): "
                                  f"{err}") from None
    load_trainer_state(path / STATE_FILE)


def find_resume_checkpoint(out_dir: Path, resume: str | None,
                           skipped: list[tuple[Path, str]] | None = None) -> Path | None:
    """`auto`: the newest loadable checkpoint in DIR, None if DIR has no checkpoint at all; every checkpoint that
    cannot be loaded is appended to `skipped` as (path, reason), and CheckpointError when none loads.
    `restart` and None: None. Else the given directory."""
    if not resume or resume == "restart":
        return None
    if resume == "auto":
        problems = []
        for _, path in list_checkpoints(out_dir, complete=False):
            try:
                check_resumable(path)
            except CheckpointError as err:
                problems.append((path, err.message))
                continue  # a damaged newest checkpoint: fall back to the one before (announced by the caller)
            if skipped is not None:
                skipped.extend(problems)
            return path
        if problems:
            listed = "\n  ".join(reason for _, reason in problems)
            raise CheckpointError(f"--resume auto: none of the {len(problems)} checkpoint(s) in {out_dir / CKPT_DIR} "
                                  f"can be loaded:\n  {listed}",
                                  hint="resume from a copy of the run, or start over with --resume restart (moves "
                                       "the old run aside)")
        return None
    path = Path(resume)
    if path.is_file() and path.name == STATE_FILE:
        path = path.parent
    if not path.is_dir():
        raise CheckpointError(f"--resume: no checkpoint directory at {path}",
                              hint=f"use --resume auto, or a directory under {out_dir / CKPT_DIR}")
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(f"--resume: {path} has no {STATE_FILE}",
                              hint="weights-only checkpoints cannot resume a run; use them with --init")
    return path


def choose_resume(out_dir: Path, resume: str | None, notes: list[str]) -> Path | None:
    """The checkpoint to resume from (`find_resume_checkpoint`), with what the user must hear appended to `notes`;
    CheckpointError rather than training into a directory that holds a run from update 0."""
    skipped: list[tuple[Path, str]] = []
    found = find_resume_checkpoint(out_dir, resume, skipped)
    for path, reason in skipped:
        notes.append(f"cannot resume from {path.name}: {reason}")
    if skipped and found is not None:
        notes.append(f"falling back to the older checkpoint {found.name} (update {int(found.name[7:])})")
    if found is None and resume != "restart":
        existing = list_checkpoints(out_dir, complete=False)
        if existing:
            raise CheckpointError(f"{out_dir} already holds a run (checkpoints up to update {existing[0][0]}); "
                                  "refusing to start it over from update 0",
                                  hint="continue it with --resume auto, start over with --resume restart (moves the "
                                       "old run aside), or choose another --out")
    return found


def remove_stale_temporaries(out_dir: Path) -> str | None:
    """Removes what a kill during a save leaves behind (`.update_N.tmp-*` directories, link temporaries); a note
    naming them, or None."""
    stale = [p for d in (out_dir, out_dir / CKPT_DIR) if d.is_dir() for p in d.iterdir()
             if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name)]
    for p in stale:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    if not stale:
        return None
    return (f"removed {len(stale)} temporary file(s) left by an interrupted save: "
            f"{', '.join(p.name for p in stale[:3])}{' ...' if len(stale) > 3 else ''}")


def move_old_run_aside(out_dir: Path) -> str | None:
    """`--resume restart`: moves the previous run's files into DIR/before-restart-N; a note, or None."""
    names = [CKPT_DIR, LAST_LINK, BEST_DIR, "metrics.jsonl", BAD_AUDIO_FILE, "tensorboard"] + \
        sorted(p.name for p in out_dir.glob("config*.yaml"))
    present = [n for n in names if (out_dir / n).exists() or (out_dir / n).is_symlink()]
    if not present:
        return None
    n = 1
    while (out_dir / f"before-restart-{n}").exists():
        n += 1
    aside = out_dir / f"before-restart-{n}"
    aside.mkdir()
    for name in present:
        os.rename(out_dir / name, aside / name)
    return f"--resume restart: moved the previous run ({', '.join(present)}) to {aside}"


def record_config(out_dir: Path, config: dict[str, Any], resumed_from: Path | None) -> str | None:
    """Writes the run's resolved config: DIR/config.yaml for a new run, config.resume-N.yaml for each resumption
    (config.yaml stays the first run's); a note of what differs from the checkpoint's settings, or None."""
    from w2v2cli.checkpoint.io import read_checkpoint_meta

    if resumed_from is None or not (out_dir / "config.yaml").is_file():
        target = out_dir / "config.yaml"
    else:
        n = 1
        while (out_dir / f"config.resume-{n}.yaml").exists():
            n += 1
        target = out_dir / f"config.resume-{n}.yaml"
    save_yaml(config, target)
    if resumed_from is None:
        return None
    before = read_checkpoint_meta(resumed_from).get("train") or {}
    changed = [f"{key}: {_short(a)} -> {_short(b)}" for key, a, b in _diff(before, config)]
    return f"resuming with settings that differ from {resumed_from.name}'s: " + "; ".join(changed) if changed else None


def _diff(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old, new) of the leaves that differ between two nested dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in list(a) + [k for k in b if k not in a]:
            out += _diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [(prefix[:-1], a, b)]


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."

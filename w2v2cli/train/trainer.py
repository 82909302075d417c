"""The training loop shared by `w2v2 pretrain` and `w2v2 finetune` (they differ only by the `Task`).

    >>> cfg = load_train_config("tiny", overrides=["data.train=[{path: train.tsv}]"])
    >>> result = train(cfg, PretrainTask(cfg), out_dir="exp/pt", resume="auto", valid=["valid.tsv"])
    >>> result.update, result.last_checkpoint           # 600, exp/pt/checkpoints/update_00000600

Top-down, as nanoGPT: device and torchrun environment, seed, data, model, optimizer, precision, resume,
distributed wrapper, then one loop. Every update consumes `world_size x update_freq` batches of a seeded,
deterministic plan (w2v2cli.data.sampler), and the global random generator is re-seeded from
`(seed, epoch, global batch position)` before each micro-batch, so masks, negatives, dropout and Gumbel noise do
not depend on which rank computes a batch or on whether the run was interrupted: a resumed run repeats the
uninterrupted one, and 2 processes with update_freq 1 compute what 1 process with update_freq 2 computes.

Layout of DIR: `config.yaml` (the resolved config of the first run; each resumption's own in `config.resume-N.yaml`),
`metrics.jsonl`, `checkpoints/update_NNNNNNNN/` (model.safetensors, config.yaml, trainer_state.pt; under FSDP
one model-R-of-W.safetensors and optim-R-of-W.safetensors per rank and shards.json instead of model.safetensors,
see w2v2cli/checkpoint/shards.py; the last `checkpoint.keep_last` are kept), `checkpoint_last` -> newest,
`checkpoint_best` (weights of the best validation so far, when validating; always one model.safetensors),
`bad_audio.tsv` (utterances skipped as unreadable or non-finite, when there were any).

Fault tolerance: SIGTERM/SIGINT save a checkpoint and stop (`TrainResult.exit_code` is then 143/130, which the CLI
exits with); `resume="auto"` names every checkpoint it cannot load and why, announces a fallback to an older one,
and fails when checkpoints exist but none loads (`resume="restart"` moves the old run aside and starts over); a
directory that holds checkpoints is never trained into from update 0 without one of the two. Unreadable audio is
skipped up to `data.max_bad_files` files.
"""

from __future__ import annotations

import gc
import math
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Sequence

import torch
from rich.console import Console

from w2v2cli.config import from_dict, save_yaml, to_dict
from w2v2cli.data.augment import make_augmenter
from w2v2cli.data.dataset import AudioDataset, SkippedBatch, make_loader, raise_if_failed
from w2v2cli.data.sampler import BucketBatchSampler
from w2v2cli.errors import CheckpointError, ConfigError, DataError, TrainingError
from w2v2cli.runtime import configure_runtime, enlarge_kernel_cache, resolve_dtype
from w2v2cli.train import budget as B
from w2v2cli.train import distributed as D
from w2v2cli.train.config import TrainConfig
from w2v2cli.train.evaluate import evaluate
from w2v2cli.train.logging import HealthMonitor, RunLogger, truncate_metrics
from w2v2cli.train.optim import build_optimizer, lr_at, set_lr
from w2v2cli.train.state import (STATE_FILE, TrainerState, load_trainer_state, micro_batch_seed, restore_rng,
                                 trainer_state_bytes)
from w2v2cli.train.tasks import Task

CKPT_DIR = "checkpoints"
LAST_LINK = "checkpoint_last"
BEST_DIR = "checkpoint_best"
BAD_AUDIO_FILE = "bad_audio.tsv"
_CKPT_RE = re.compile(r"^update_(\d+)$")
SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}  # 128 + signal number, as shells report them


@dataclass
class TrainResult:
    out_dir: Path
    update: int
    epoch: int
    stopped: str  # max_updates | max_epochs | max_minutes (a budget's overrun guard) | early_stop | SIGTERM | SIGINT
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    train_metrics: dict[str, Any] = field(default_factory=dict)  # last logged
    valid_metrics: dict[str, Any] | None = None  # last validation
    resumed_from: Path | None = None
    skipped_utterances: int = 0  # shorter than min_sample_size (or unlabelled-too-long)
    nonfinite_updates: int = 0
    bad_files: int = 0  # unreadable / non-finite audio files skipped (listed in DIR/bad_audio.tsv)
    precision: str = ""  # fp32 / bf16 / fp16 and why (optim.precision auto names its choice)

    @property
    def exit_code(self) -> int:
        """What the process should exit with: 130 after SIGINT, 143 after SIGTERM (interrupted, resumable), else 0."""
        return SIGNAL_EXIT_CODES.get(self.stopped, 0)


def train(cfg: TrainConfig, task: Task, out_dir: str | os.PathLike, resume: str | None = None,
          valid: Sequence[str] | None = None, console: Console | None = None) -> TrainResult:
    """Runs training to `optim.max_updates` or the length planned for `optim.max_minutes` (or a stop condition);
    see the module docstring."""
    # oneDNN reads its cache size when it makes its first kernel, so this comes before any torch op
    if cfg.data.length_quantum:  # few batch shapes: keep their kernels (not for exact lengths: w2v2cli/runtime.py)
        enlarge_kernel_cache()
    # keep freed activation memory mapped (glibc), flush denormals in every thread (the only place the trainer does:
    # threads made later inherit the flag): see w2v2cli/runtime.py
    configure_runtime()
    return Trainer(cfg, task, Path(out_dir), resume, list(valid or cfg.data.valid), console).run()


# ------------------------------------------------------------------------------------------------ helpers
def resolve_precision(name: str, device: torch.device) -> tuple[str, str]:
    """(precision, why) of a training run: `auto` follows `w2v2cli.runtime.resolve_dtype` (bf16 on GPUs that
    have it, else fp16; bf16 on CPUs with AMX or avx512_bf16; else fp32)."""
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("optim.precision fp16 needs a GPU (GradScaler)", hint="use optim.precision=bf16 on CPU")
    return resolve_dtype(name, str(device), training=True)


def source_languages(sources) -> list[str]:
    """Language of each training manifest: its `lang`, else the file stem (train.tsv in de/ -> 'de' when the
    stems are all equal), else the path; manifests of one language form one sampling group."""
    paths = [Path(s.path) for s in sources]
    stems = [p.stem for p in paths]
    parents = [p.parent.name for p in paths]
    auto = stems if len(set(stems)) == len(stems) else parents if len(set(parents)) == len(parents) else \
        [str(p) for p in paths]
    return [s.lang or a for s, a in zip(sources, auto)]


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


def check_resumable(path: Path) -> None:
    """Raises CheckpointError (naming the file and the reason) unless `path` holds a readable config.yaml, a
    complete model.safetensors (its header and size; the weights are read by the resume itself) and trainer state."""
    from safetensors import SafetensorError, safe_open

    from w2v2cli.checkpoint.io import WEIGHTS_FILE, read_checkpoint_meta
    from w2v2cli.checkpoint.shards import check_shards, is_sharded

    if is_sharded(path):  # an FSDP run's checkpoint: the index and every rank's files
        for name in ("config.yaml", STATE_FILE):
            if not (path / name).is_file():
                raise CheckpointError(f"{path / name} is missing")
        read_checkpoint_meta(path)
        check_shards(path)
        load_trainer_state(path / STATE_FILE)
        return
    for name in (WEIGHTS_FILE, "config.yaml", STATE_FILE):
        if not (path / name).is_file():
            raise CheckpointError(f"{path / name} is missing")
    read_checkpoint_meta(path)
    try:
        with safe_open(str(path / WEIGHTS_FILE), "pt") as f:
            f.keys()
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path / WEIGHTS_FILE}: unreadable weights (truncated or corrupted?): {err}") from None
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


class _Stopper:
    """Turns SIGTERM/SIGINT into a flag checked after each update (then: save and exit cleanly)."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_Stopper":
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. some test runners): no handler
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _leave_signals_to_main(_worker_id: int) -> None:
    """DataLoader workers ignore SIGINT and SIGTERM: the main process stops the run at the end of the update and
    saves. Ctrl-C reaches the whole foreground process group, and so does SIGTERM from `timeout`, SLURM's
    `scancel` or a preempting scheduler; a worker killed by it made the run crash ("DataLoader worker is killed by
    signal: Terminated") instead of saving. A worker still exits when the main process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@dataclass
class _Sums:
    """This rank's sums over the micro-batches of one update."""

    loss_sum: float = 0.0
    sample_size: float = 0.0
    audio: float = 0.0  # seconds
    nonfinite: float = 0.0  # micro-batches with a NaN/inf loss


class _Meter:
    """Accumulates metrics between log steps: weighted means by sample size, sums for `sum_keys`."""

    def __init__(self, sum_keys: Sequence[str]):
        self.sum_keys = set(sum_keys)
        self.reset()

    def reset(self) -> None:
        self.values: dict[str, float] = {}
        self.weight = 0.0
        self.counters: dict[str, float] = {"loss_sum": 0.0, "sample_size": 0.0, "audio": 0.0, "grad_norm": 0.0,
                                           "updates": 0.0, "nonfinite": 0.0, "bad_audio": 0.0}

    def add(self, metrics: dict[str, float], sample_size: float) -> None:
        self.weight += sample_size
        for key, value in metrics.items():
            v = float(value)
            self.values[key] = self.values.get(key, 0.0) + (v if key in self.sum_keys else v * sample_size)

    def reduce(self, device: torch.device, info: D.DistInfo) -> dict[str, float]:
        # a rank whose batches since the last log line were all skipped (bad audio, NaN) holds no metric keys:
        # reduce by name, so that every rank sums the same list
        flat = {f"v:{k}": v for k, v in self.values.items()}
        flat.update({f"c:{k}": v for k, v in self.counters.items()}, weight=self.weight)
        flat = D.all_reduce_sum_dict(flat, device, info)
        weight = flat["weight"]
        counters = {k[2:]: v for k, v in flat.items() if k.startswith("c:")}
        out = {k[2:]: (v if k[2:] in self.sum_keys else v / max(weight, 1e-12)) for k, v in flat.items()
               if k.startswith("v:")}
        if counters["sample_size"] > 0:
            out["loss"] = counters["loss_sum"] / counters["sample_size"]
        updates = counters["updates"] / info.world_size
        if updates:  # only skipped updates since the last log line: no gradient norm to show (not 0.00)
            out["grad_norm"] = counters["grad_norm"] / (info.world_size * updates)
        out["nonfinite"] = counters["nonfinite"] / info.world_size
        if counters["bad_audio"]:
            out["bad_audio"] = counters["bad_audio"]  # files skipped since the last log line (all ranks)
        out["_audio"] = counters["audio"]
        return out

    @property
    def pending(self) -> bool:
        """Updates (applied or skipped) since the last log line."""
        return bool(self.counters["updates"] or self.counters["nonfinite"])


class BadAudio:
    """Audio files skipped as unreadable or non-finite: each distinct file is warned about once, written to
    `DIR/bad_audio.tsv` (`update<TAB>path<TAB>reason`; every rank appends its own) and counted; the count is summed
    over ranks at the next update and checked against `data.max_bad_files` there."""

    def __init__(self, out_dir: Path, resumed_update: int | None, rewrite: bool = True):
        self.path = out_dir / BAD_AUDIO_FILE
        self.seen: dict[str, str] = {}
        self.new = 0  # distinct files seen since the last update's reduction
        if self.path.is_file():
            keep = []
            for line in self.path.read_text(encoding="utf-8").splitlines()[1:]:
                parts = line.split("\t", 2)
                if len(parts) == 3 and parts[0].isdigit() and resumed_update is not None \
                        and int(parts[0]) <= resumed_update:
                    keep.append(line)
                    self.seen[parts[1]] = parts[2]
            if rewrite:  # lines after the checkpoint belong to the interrupted run (as in metrics.jsonl)
                from w2v2cli.textio import atomic_write_text

                atomic_write_text(self.path, "update\tpath\treason\n" + "".join(f"{line}\n" for line in keep))

    def add(self, update: int, files: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Records `files` (path, reason); returns the ones not seen before."""
        fresh = []
        for path, reason in files:
            if path in self.seen:
                continue
            self.seen[path] = reason
            fresh.append((path, reason))
        if fresh:
            header = not self.path.is_file()
            with open(self.path, "a", encoding="utf-8") as f:
                if header:
                    f.write("update\tpath\treason\n")
                f.writelines(f"{update}\t{p}\t{' '.join(r.split())}\n" for p, r in fresh)
            self.new += len(fresh)
        return fresh

    def error(self, total: int, limit: int) -> DataError:
        shown = "\n  ".join(f"{p}: {r}" for p, r in list(self.seen.items())[:5])
        more = f"\n  ... and {len(self.seen) - 5} more" if len(self.seen) > 5 else ""
        return DataError(f"{total} audio files could not be used, more than data.max_bad_files = {limit} "
                         f"(all listed in {self.path}):\n  {shown}{more}",
                         hint="fix or remove them (`w2v2 manifest --verify --skip-bad` finds them all), or raise "
                              "data.max_bad_files; then continue with --resume auto")


# ------------------------------------------------------------------------------------------------ trainer
class Trainer:
    def __init__(self, cfg: TrainConfig, task: Task, out_dir: Path, resume: str | None, valid: list[str],
                 console: Console | None = None):
        self.cfg, self.task, self.out_dir, self.resume, self.valid = cfg, task, out_dir, resume, valid
        self.console = console or Console(stderr=True)

    # -- data ---------------------------------------------------------------------------------------------
    def _pad(self) -> bool:
        mode = self.cfg.data.padding
        if mode == "auto":  # as fairseq: layer-norm conv models see padding masks, group-norm ones never see zeros
            return self.cfg.model.extractor_mode == "layer_norm" or self.cfg.task.name != "pretrain"
        return mode == "pad"

    def _normalize(self) -> bool:
        n = self.cfg.data.normalize
        return self.cfg.model.normalize_audio if n == "auto" else bool(n)

    def _targets(self, manifests: Sequence[str]) -> list | None:
        from w2v2cli.data.manifest import read_manifest

        out: list | None = None
        for m in manifests:
            parsed = read_manifest(m) if Path(m).is_file() else None  # read once, handed to the task
            t = self.task.targets(Path(m), parsed)
            if t is None:
                return None
            out = (out or []) + list(t)
        return out

    def build_data(self, info: D.DistInfo, manifests: Sequence[str], langs: Sequence[str] | None, train: bool):
        d = self.cfg.data
        pad = self._pad()
        targets = self._targets(manifests)
        augment = make_augmenter(d.speed_perturb, d.noise_prob, d.noise_snr, d.noise_manifest,
                                 d.sample_rate) if train else None
        ds = AudioDataset.from_manifests(manifests, langs=langs, targets=targets, sample_rate=d.sample_rate,
                                         normalize=self._normalize(), max_sample_size=d.max_sample_size,
                                         pad=pad, seed=self.cfg.seed, augment=augment, skip_bad=True,
                                         max_missing=d.max_bad_files,
                                         length_quantum=d.length_quantum if train else 0)
        labelled = targets is not None
        if train:
            sampler = BucketBatchSampler(ds.sizes, d.max_tokens, d.max_sample_size, d.min_sample_size,
                                         d.max_batch_size, pad=pad, seed=self.cfg.seed, shuffle=True,
                                         groups=ds.groups, alpha=d.sampling_alpha, rank=info.rank,
                                         world_size=info.world_size, update_freq=self.cfg.optim.update_freq,
                                         drop_longer=labelled, sorted_epochs=d.sorted_epochs)
        else:  # validation: every utterance, uncropped when labelled, in length order
            max_size = max(d.max_sample_size, int(ds.sizes.max())) if labelled else d.max_sample_size
            sampler = BucketBatchSampler(ds.sizes, max(d.max_tokens, max_size), max_size, 0, d.max_batch_size,
                                         pad=pad, seed=self.cfg.seed, shuffle=False, rank=info.rank,
                                         world_size=info.world_size, wrap=self.cfg.distributed.fsdp)
            ds.max_sample_size = max_size
        loader = make_loader(ds, sampler, num_workers=d.num_workers, prefetch_factor=d.prefetch_factor,
                             pin_memory=self.device.type == "cuda", worker_init_fn=_leave_signals_to_main)
        return ds, sampler, loader

    # -- checkpoints ----------------------------------------------------------------------------------------
    def _gather(self) -> dict[str, torch.Tensor]:
        """The full model state dict on rank 0 (collective under FSDP: every rank must call this; the other ranks
        get an empty dict)."""
        if self._sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            return get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return self.raw_model.state_dict()

    def save(self) -> Path:
        from w2v2cli.checkpoint.io import save_checkpoint

        path = self.out_dir / CKPT_DIR / f"update_{self.state.update:08d}"
        provenance = {"update": self.state.update, "epoch": self.state.epoch, "trainer": "w2v2cli.train"}
        if self._sharded:
            self._save_sharded(path, provenance)
        elif self.info.is_main:
            self.state.wall_seconds = self._wall()
            data = trainer_state_bytes(self.state, self.optimizer, self.scaler)
            save_checkpoint(path, self.raw_model.state_dict(), self.cfg.model, self.task.kind, vocab=self.task.vocab,
                            provenance=provenance, train_config=self.cfg, extra_files={STATE_FILE: data})
        if self.info.is_main:
            link = self.out_dir / LAST_LINK
            tmp = self.out_dir / f".{LAST_LINK}.tmp-{os.getpid()}"
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            os.symlink(os.path.join(CKPT_DIR, path.name), tmp)
            os.replace(tmp, link)  # atomic switch of the pointer
            for _, old in list_checkpoints(self.out_dir)[self.cfg.checkpoint.keep_last:]:
                shutil.rmtree(old, ignore_errors=True)
        D.barrier(self.info)
        self.last_saved = self.state.update
        return path

    def _save_sharded(self, path: Path, provenance: dict) -> None:
        """FSDP: every rank writes its pieces of the weights and optimizer moments into one temporary directory,
        rank 0 adds the index, config and trainer state and swaps it in (atomic, as unsharded saves)."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        from w2v2cli.checkpoint.io import finish_sharded_checkpoint, sharded_tmp_dir
        from w2v2cli.checkpoint.shards import index_bytes, write_shard

        info, tmp = self.info, sharded_tmp_dir(path)
        model_local, model_index = D.local_tensors(self.model.state_dict())
        optim = get_optimizer_state_dict(self.model, self.optimizer)  # keyed by parameter name
        flat = {f"{name}/{key}": value for name, st in optim["state"].items() for key, value in st.items()
                if isinstance(value, torch.Tensor)}
        optim_local, optim_index = D.local_tensors(flat)
        if info.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        D.barrier(info)
        failed = ""
        try:
            write_shard(tmp, info.rank, info.world_size, model_local, optim_local)
        except OSError as err:  # disk full, permission: every rank learns of it below and stops with the reason
            failed = f"rank {info.rank}: {err.strerror or err}"
        if D.all_reduce_sum([float(bool(failed))], self.device, info)[0]:
            D.barrier(info)
            if info.is_main:
                shutil.rmtree(tmp, ignore_errors=True)
            raise CheckpointError(f"cannot write {path}: {failed or 'another rank failed to write its shard'}"
                                  + (" (the previous checkpoint is intact)" if list_checkpoints(self.out_dir) else ""))
        if info.is_main:
            self.state.wall_seconds = self._wall()
            rest = {"param_groups": optim["param_groups"],
                    "state": {name: {k: v for k, v in st.items() if not isinstance(v, torch.Tensor)}
                              for name, st in optim["state"].items()}}
            data = trainer_state_bytes(self.state, rest, self.scaler)
            finish_sharded_checkpoint(path, index_bytes(info.world_size, model_index, optim_index), self.cfg.model,
                                      self.task.kind, vocab=self.task.vocab, provenance=provenance,
                                      train_config=self.cfg, extra_files={STATE_FILE: data})

    def save_best(self) -> Path:
        from w2v2cli.checkpoint.io import save_checkpoint

        model_sd = self._gather()  # FSDP too: checkpoint_best is always one model.safetensors
        path = self.out_dir / BEST_DIR
        if self.info.is_main:
            save_checkpoint(path, model_sd, self.cfg.model, self.task.kind, vocab=self.task.vocab,
                            provenance={"update": self.state.update, "best_metric": self.cfg.checkpoint.best_metric,
                                        "value": self.state.best_metric, "trainer": "w2v2cli.train"},
                            train_config=self.cfg)
        D.barrier(self.info)
        return path

    def restore(self, path: Path) -> None:
        from safetensors.torch import load_file

        from w2v2cli.checkpoint.io import read_checkpoint_meta
        from w2v2cli.checkpoint.shards import is_sharded
        from w2v2cli.model.config import ModelConfig

        saved = to_dict(from_dict(ModelConfig, read_checkpoint_meta(path)["model"], source=str(path)))
        now = to_dict(self.cfg.model)
        if saved != now:
            diff = [k for k in now if saved.get(k) != now.get(k)]
            raise CheckpointError(f"cannot resume from {path}: its model config differs in {', '.join(diff)}",
                                  hint="resume with the same --config/--set model.* values, or use a new --out")
        if is_sharded(path) != self._sharded:
            made = "an FSDP run (sharded)" if is_sharded(path) else "a run without FSDP"
            raise CheckpointError(f"cannot resume from {path}: it was written by {made}",
                                  hint="resume with the same distributed.fsdp setting, or start a new run with "
                                       f"--init {path}")
        state, payload = load_trainer_state(path / STATE_FILE)
        saved = [g.get("lr_scale", 1.0) for g in payload["optimizer"]["param_groups"]]
        now_scales = [g["lr_scale"] for g in self.optimizer.param_groups]
        if saved != now_scales:  # the optimizer's groups (one per lr scale) would not line up
            raise CheckpointError(f"cannot resume from {path}: its parameters train at lr scales {saved}, this "
                                  f"run's at {now_scales}",
                                  hint="resume with the same task.pretrained_lr_scale, or start a new run with "
                                       f"--init {path}")
        if self._sharded:
            self._restore_sharded(path, payload["optimizer"])
        else:
            self.raw_model.load_state_dict(load_file(str(path / "model.safetensors")), strict=True)
            self.optimizer.load_state_dict(payload["optimizer"])
        if payload.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(payload["scaler"])
        restore_rng(payload["rng"])
        self.state = state
        self.state.world_size, self.state.update_freq = self.info.world_size, self.cfg.optim.update_freq

    def _restore_sharded(self, path: Path, rest: dict) -> None:
        """FSDP: this rank's pieces back into its parameter shards and optimizer moments (same world size)."""
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        from w2v2cli.checkpoint.shards import read_shard

        model_local, optim_local = read_shard(path, self.info.rank, self.info.world_size)
        own = self.model.state_dict()
        if set(own) != set(model_local):
            raise CheckpointError(f"cannot resume from {path}: its shards hold other weights than the model")
        params = dict(self.model.named_parameters())
        self.model.load_state_dict({k: D.from_local(model_local[k], own[k]) for k in own}, strict=True)
        state = {name: dict(st) for name, st in rest["state"].items()}
        for key, piece in optim_local.items():
            name, _, slot = key.rpartition("/")
            # AdamW's moments are shaped as the parameter's shard; its step count is a scalar, the same everywhere
            state.setdefault(name, {})[slot] = D.from_local(piece, params[name]) if piece.dim() else piece
        set_optimizer_state_dict(self.model, self.optimizer, {"state": state, "param_groups": rest["param_groups"]})

    # -- validation -----------------------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """Validation metrics over every rank's share of the validation set (see `w2v2cli.train.evaluate`)."""
        model = self.model if self._sharded else self.raw_model
        self.valid_sampler.set_epoch(1, 0)
        metrics = evaluate(model, self.task, self.valid_loader, self.device, self.info, seed=self.cfg.seed,
                           autocast=self._autocast, on_bad=self._note_bad,
                           distinct=self.valid_sampler.num_distinct if self._sharded else None)
        model.train()
        return metrics

    def _improved(self, value: float) -> bool:
        best = self.state.best_metric
        if best is None:
            return True
        return value < best if self.cfg.checkpoint.best_mode == "min" else value > best

    def _autocast(self):
        enabled = self.precision in ("bf16", "fp16")
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype, enabled=enabled)

    def _wall(self) -> float:
        return self._wall0 + time.monotonic() - self._t0

    @property
    def total_updates(self) -> int:
        """The run's length in updates: `optim.max_updates`, or what fits in `optim.max_minutes` once planned."""
        return self.state.planned_updates or self.cfg.optim.max_updates

    @property
    def _sharded(self) -> bool:
        """True when the model is wrapped in FSDP (parameters, gradients and optimizer state are sharded)."""
        return self.cfg.distributed.fsdp and self.info.enabled

    # -- the run --------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        # device and distributed environment (torchrun sets RANK / WORLD_SIZE / LOCAL_RANK)
        self.device = D.pick_device(self.cfg.device, D.env_info())
        self.info = D.init_distributed(self.cfg.distributed, self.device)
        finished = False
        try:
            self._setup()
            try:
                with _Stopper() as stopper:
                    self._loop(stopper)
                    self._finish()
            finally:
                self.log.close()
            result = self._result()
            finished = True
            return result
        finally:
            self._release()
            D.shutdown(finished)

    def _release(self) -> None:
        """Drops the model, optimizer and data loaders before the process group goes: DDP's reducer holds the group,
        so the group's threads then stop inside `destroy_process_group`, not whenever the trainer is freed."""
        for name in ("model", "raw_model", "optimizer", "params", "loader", "valid_loader", "scaler"):
            if hasattr(self, name):
                setattr(self, name, None)
        gc.collect()

    def _setup(self) -> None:
        """Top-down: data, model, optimizer, precision, resume, distributed wrapper, logger."""
        cfg, task, info = self.cfg, self.task, self.info
        if not cfg.data.train:
            raise DataError("no training manifest given", hint="w2v2 pretrain TRAIN.tsv (or data.train in the config)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._notes: list[str] = []  # warnings found before the logger exists
        if info.is_main:
            self._remove_stale_temporaries()
        self.precision, why = resolve_precision(cfg.optim.precision, self.device)
        self._precision_note = f"{self.precision} ({why})"
        # data: a deterministic plan of batches; the loader's workers only load audio
        manifests = [s.path for s in cfg.data.train]
        self.dataset, self.sampler, self.loader = self.build_data(info, manifests, source_languages(cfg.data.train),
                                                                  train=True)
        if self.valid:
            _, self.valid_sampler, self.valid_loader = self.build_data(info, self.valid, None, train=False)
        # model: the same initial weights on every rank (DDP also broadcasts rank 0's)
        torch.manual_seed(cfg.seed)
        self.raw_model = task.build_model(cfg).to(self.device)
        find_unused = cfg.distributed.find_unused_parameters
        if find_unused == "auto":
            find_unused = task.find_unused_parameters()
        if self._sharded:  # FSDP2 shards the model in place; the optimizer must see the sharded parameters
            self.model = D.wrap_model(self.raw_model, info, cfg.distributed, self.device, bool(find_unused),
                                      self.precision)
        self.optimizer = build_optimizer(self.raw_model, cfg.optim, task.lr_scales(self.raw_model))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.state = TrainerState(seed=cfg.seed, world_size=info.world_size, update_freq=cfg.optim.update_freq)
        self.last_saved = -1
        resumed_from = self._find_resume()
        if resumed_from is not None:
            self.restore(resumed_from)
            self.last_saved = self.state.update
        if info.is_main:
            if resumed_from is None:
                save_yaml(to_dict(cfg), self.out_dir / "config.yaml")
            else:
                self._keep_resume_config(resumed_from)
            # records after the checkpoint belong to the interrupted run (all of them when starting at update 0)
            truncate_metrics(self.out_dir, self.state.update)
        self.bad = BadAudio(self.out_dir, self.state.update if resumed_from is not None else None,
                            rewrite=info.is_main)
        self._last_good = None  # the last usable batch (see _accumulate)
        if not self._sharded:  # DDP broadcasts rank 0's (restored) weights when it wraps
            self.model = D.wrap_model(self.raw_model, info, cfg.distributed, self.device, bool(find_unused),
                                      self.precision)
        self.params = [p for p in self.raw_model.parameters() if p.requires_grad]
        # what the user sees: rank 0 writes metrics.jsonl and the progress display
        # a time budget's length is not known until it is planned (the cap alone would read as the length)
        known = not cfg.optim.max_minutes or self.state.planned_updates
        self.log = RunLogger(self.out_dir, cfg.logging, self.total_updates if known else None, enabled=info.is_main,
                             console=self.console, start_update=self.state.update)
        self.health = HealthMonitor(cfg.logging.grad_norm_warn)
        self.meter = _Meter(task.sum_metrics)
        self.result = TrainResult(self.out_dir, 0, 0, "max_updates", resumed_from=resumed_from,
                                  skipped_utterances=self.sampler.num_dropped)
        for text in self._notes:
            self.log.warn(self.state.update if resumed_from is not None else None, text)
        for text in task.data_warnings():
            self.log.warn(None, text)
        if self.sampler.num_dropped:
            self.log.info(f"skipping {self.sampler.num_dropped} of {len(self.dataset)} utterances shorter than "
                          f"data.min_sample_size ({cfg.data.min_sample_size} samples)")
        self.result.precision = self._precision_note
        if cfg.optim.precision == "auto":
            self.log.info(f"precision: {self._precision_note}")
        if resumed_from is not None:
            self.log.info(f"resumed from {resumed_from} at update {self.state.update}")
        self._t0, self._wall0 = time.monotonic(), self.state.wall_seconds
        self._last_log_t = time.monotonic()
        self._tell_task_total()

    def _remove_stale_temporaries(self) -> None:
        """Removes what a kill during a save leaves behind (`.update_N.tmp-*` directories, link temporaries)."""
        stale = [p for d in (self.out_dir, self.out_dir / CKPT_DIR) if d.is_dir() for p in d.iterdir()
                 if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name)]
        for p in stale:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        if stale:
            self._notes.append(f"removed {len(stale)} temporary file(s) left by an interrupted save: "
                               f"{', '.join(p.name for p in stale[:3])}{' ...' if len(stale) > 3 else ''}")

    def _find_resume(self) -> Path | None:
        """The checkpoint to resume from (see `find_resume_checkpoint`); never starts over silently."""
        skipped: list[tuple[Path, str]] = []
        found = find_resume_checkpoint(self.out_dir, self.resume, skipped)
        for path, reason in skipped:
            self._notes.append(f"cannot resume from {path.name}: {reason}")
        if skipped and found is not None:
            self._notes.append(f"falling back to the older checkpoint {found.name} (update {int(found.name[7:])})")
        if found is None and self.resume != "restart":
            existing = list_checkpoints(self.out_dir, complete=False)
            if existing:
                raise CheckpointError(f"{self.out_dir} already holds a run (checkpoints up to update "
                                      f"{existing[0][0]}); refusing to start it over from update 0",
                                      hint="continue it with --resume auto, start over with --resume restart "
                                           "(moves the old run aside), or choose another --out")
        if self.resume == "restart" and self.info.is_main:
            self._move_old_run_aside()
        D.barrier(self.info)
        return found

    def _move_old_run_aside(self) -> None:
        names = [CKPT_DIR, LAST_LINK, BEST_DIR, "metrics.jsonl", BAD_AUDIO_FILE, "tensorboard"] + \
            sorted(p.name for p in self.out_dir.glob("config*.yaml"))
        present = [n for n in names if (self.out_dir / n).exists() or (self.out_dir / n).is_symlink()]
        if not present:
            return
        n = 1
        while (self.out_dir / f"before-restart-{n}").exists():
            n += 1
        aside = self.out_dir / f"before-restart-{n}"
        aside.mkdir()
        for name in present:
            os.rename(self.out_dir / name, aside / name)
        self._notes.append(f"--resume restart: moved the previous run ({', '.join(present)}) to {aside}")

    def _keep_resume_config(self, resumed_from: Path) -> None:
        """Writes this resumption's settings to config.resume-N.yaml (config.yaml stays the first run's) and
        notes what differs from the checkpoint's settings."""
        from w2v2cli.checkpoint.io import read_checkpoint_meta

        now = to_dict(self.cfg)
        before = read_checkpoint_meta(resumed_from).get("train") or {}
        changed = [f"{key}: {_short(a)} -> {_short(b)}" for key, a, b in _diff(before, now)]
        if changed:
            self._notes.append(f"resuming with settings that differ from {resumed_from.name}'s: " + "; ".join(changed))
        if not (self.out_dir / "config.yaml").is_file():
            save_yaml(now, self.out_dir / "config.yaml")
            return
        n = 1
        while (self.out_dir / f"config.resume-{n}.yaml").exists():
            n += 1
        save_yaml(now, self.out_dir / f"config.resume-{n}.yaml")

    def _loop(self, stopper: _Stopper) -> None:
        """Updates until `optim.max_updates` (or the length planned for `optim.max_minutes`), `optim.max_epochs`,
        early stopping or a signal."""
        cfg, st, result = self.cfg, self.state, self.result
        done = st.update >= self.total_updates
        while not done:
            if cfg.optim.max_epochs and st.epoch > cfg.optim.max_epochs:
                result.stopped = "max_epochs"
                return
            # the epoch's plan, from the batch a resumed run stopped at
            self.sampler.set_epoch(st.epoch, st.position)
            batches = iter(self.loader)
            while not done:
                micro = list(islice(batches, cfg.optim.update_freq))
                if not micro:  # end of the epoch
                    st.epoch, st.position = st.epoch + 1, 0
                    break
                local = self._accumulate(micro)
                # one all-reduce for the update's sums, the newly skipped audio files, "a rank was asked to stop"
                # and the training time (a time budget's plan), so that every rank takes the same decisions (step
                # or skip, log, the run's length, stop)
                _, sample_size, audio, nonfinite, bad, stop, wall = D.all_reduce_sum(
                    [local.loss_sum, local.sample_size, local.audio, local.nonfinite, float(self.bad.new),
                     float(stopper.signal is not None), self._wall()], self.device, self.info)
                self._count_bad(int(bad))
                st.audio_seconds += audio
                stepped = self._step(local, sample_size, nonfinite)
                self.log.advance(st.update)
                if (stepped and st.update % cfg.logging.log_interval == 0) or self.meter.counters["nonfinite"]:
                    self._log_train()  # a skipped update is logged at once, so that a NaN is seen where it came
                if cfg.optim.max_minutes:  # before a checkpoint, which keeps the plan
                    self._follow_budget(wall / self.info.world_size)
                if stepped:
                    self._validate_and_save()
                if stop:
                    result.stopped = stopper.signal or "SIGTERM"
                done = result.stopped != "max_updates" or st.update >= self.total_updates

    def _follow_budget(self, elapsed: float) -> None:
        """`optim.max_minutes`: plans the run's length from its speed so far until half the budget has passed,
        then keeps it; stops the run at the overrun guard (w2v2cli/train/budget.py). `elapsed`: training seconds,
        the same on every rank."""
        cfg, st = self.cfg, self.state
        budget = cfg.optim.max_minutes * 60.0
        if not st.plan_fixed and B.can_plan(st.update, elapsed):
            first = not st.planned_updates
            st.planned_updates = B.planned_updates(st.update, elapsed, budget, cfg.optim.max_updates)
            st.plan_fixed = elapsed >= B.FIX_AT * budget or st.planned_updates <= st.update
            self.log.set_total(st.planned_updates)
            self._tell_task_total()
            if first or st.plan_fixed:
                self.log.info(f"time budget {cfg.optim.max_minutes:g} min: {st.planned_updates} updates "
                              f"({elapsed / st.update:.3g} s per update over the first {st.update}; "
                              + ("fixed now" if st.plan_fixed else f"planned again until {B.FIX_AT:.0%} of the "
                                                                   "budget") + ")")
        elif st.plan_fixed and elapsed > B.OVERRUN * budget and st.update < self.total_updates:
            self.log.warn(st.update, f"{elapsed / 60:.1f} min of training is past the time budget of "
                                     f"{cfg.optim.max_minutes:g} min (x{B.OVERRUN:g}): stopping at update "
                                     f"{st.update} of the {st.planned_updates} planned, before the lr schedule "
                                     "ended (the machine slowed down after the plan was fixed)")
            self.result.stopped = "max_minutes"

    def _tell_task_total(self) -> None:
        """The task's checks that depend on the run's length (`Task.total_updates`) use the planned one."""
        self.task.total_updates = self.total_updates

    # -- one update -----------------------------------------------------------------------------------------
    def _accumulate(self, micro: list) -> _Sums:
        """Forward and backward over this rank's micro-batches of one update; their gradients add up."""
        cfg, st, info = self.cfg, self.state, self.info
        update_freq = cfg.optim.update_freq
        set_lr(self.optimizer, lr_at(st.update, cfg.optim.lr, cfg.lr, self.total_updates))
        self.task.begin_update(self.raw_model, st.update)
        self.model.train()
        sums = _Sums()
        for f, item in enumerate(micro):
            item = raise_if_failed(item)
            self._note_bad(item.bad_files)
            weight = 1.0
            if isinstance(item, SkippedBatch):  # no usable utterance in this micro-batch
                if not (info.enabled and f == len(micro) - 1):
                    continue  # nothing to learn from it; the other micro-batches' gradients stand
                # every rank must join the gradient all-reduce of the last micro-batch: run the last usable batch
                # with weight 0 (zero gradients, counted nowhere)
                if self._last_good is None:
                    raise DataError(f"rank {info.rank}: no readable audio in its first batch ({item.bad_files[0][0]})",
                                    hint=f"remove the files listed in {self.bad.path}")
                batch, weight = self._last_good, 0.0
            else:
                batch = item.to(self.device, non_blocking=True)
                self._last_good = batch if info.enabled else None
            # seeded by the batch's global position: masks and dropout depend neither on the rank nor on a resume
            torch.manual_seed(micro_batch_seed(cfg.seed, st.epoch, st.position + f * info.world_size + info.rank))
            if self._sharded:  # FSDP: every rank drops the same layers (its all-gathers must pair up)
                D.seed_layerdrop(self.model, micro_batch_seed(cfg.seed, st.epoch, st.position + f * info.world_size))
            # only sync gradients on the last micro-batch of the update
            with D.no_sync(self.model, skip=f < update_freq - 1):
                with self._autocast():
                    loss, sample_size, metrics = self.task.compute_loss(self.model, batch, st.update)
                self.scaler.scale(loss * weight if weight != 1.0 else loss).backward()
            if weight == 0.0:
                continue
            value = float(loss.detach())
            if not math.isfinite(value):
                sums.nonfinite += 1
            else:
                sums.loss_sum += value
                self.meter.add(metrics, float(sample_size))
            sums.sample_size += float(sample_size)
            sums.audio += batch.num_samples / cfg.data.sample_rate
        st.position += info.world_size * update_freq
        return sums

    def _step(self, local: _Sums, sample_size: float, nonfinite: float) -> bool:
        """Applies the update (True), or skips it when a loss or the gradient is NaN/inf (False).
        `sample_size` and `nonfinite` are summed over ranks."""
        st, counters = self.state, self.meter.counters
        if sample_size == 0 and nonfinite == 0:  # every micro-batch of every rank was skipped as bad audio
            self.optimizer.zero_grad(set_to_none=True)
            return False
        finite_loss = nonfinite == 0 and sample_size > 0
        grad_norm = self._unscale_and_clip(sample_size) if finite_loss else float("nan")
        stepped = math.isfinite(grad_norm)
        if stepped:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            st.update += 1
            st.nonfinite_in_a_row = 0
            counters["grad_norm"] += grad_norm
            counters["updates"] += 1
            counters["loss_sum"] += local.loss_sum
            counters["sample_size"] += local.sample_size
        else:
            self._skip(finite_loss)
        counters["audio"] += local.audio
        self.optimizer.zero_grad(set_to_none=True)
        return stepped

    def _unscale_and_clip(self, sample_size: float) -> float:
        """Turns the summed gradients into a mean over all frames of all ranks and clips them; the norm."""
        self.scaler.unscale_(self.optimizer)
        # gradients are sums over this rank's frames; DDP averaged them over ranks, so scale by
        # world_size / global sample size to get the mean over all frames of all ranks
        factor = self.info.world_size / sample_size
        for p in self.params:
            if p.grad is not None:
                p.grad.mul_(factor)
        clip = self.cfg.optim.clip_norm if self.cfg.optim.clip_norm > 0 else float("inf")
        if self._sharded:  # FSDP: the norm over all shards
            return D.clip_grad_norm(self.params, clip)
        return float(torch.nn.utils.clip_grad_norm_(self.params, clip))

    def _skip(self, finite_loss: bool) -> None:
        """A NaN/inf loss or gradient: no update (fp16: the scaler lowers its scale); too many in a row stop."""
        st = self.state
        if self.scaler.is_enabled() and finite_loss:
            self.scaler.step(self.optimizer)  # sees the inf and skips
            self.scaler.update()
        st.nonfinite_total += 1
        st.nonfinite_in_a_row += 1
        self.meter.counters["nonfinite"] += 1
        if st.nonfinite_in_a_row >= self.cfg.optim.max_nonfinite:
            raise TrainingError(f"{st.nonfinite_in_a_row} updates in a row had a NaN/inf loss or gradient "
                                f"(at update {st.update}, epoch {st.epoch}); stopping",
                                hint="lower optim.lr, set optim.clip_norm, use optim.precision=bf16 instead of "
                                     "fp16, or check the audio of the last batches")

    # -- bad audio ------------------------------------------------------------------------------------------
    def _note_bad(self, files: Sequence[tuple[str, str]]) -> None:
        """Warns about (once) and lists audio files that a batch left out; counted at the next update."""
        if not files:
            return
        limit, update = self.cfg.data.max_bad_files, self.state.update + 1  # met while computing this update, so
        # a resume from the checkpoint before it drops the record and meets (and counts) the file again
        for path, reason in self.bad.add(update, files):
            self.meter.counters["bad_audio"] += 1
            self.log.warn(update, f"skipped {path}: {reason} (listed in {self.bad.path.name}; the run stops after "
                                  f"more than data.max_bad_files = {limit})")

    def _count_bad(self, new_on_all_ranks: int) -> None:
        self.bad.new = 0
        if new_on_all_ranks:
            self.state.bad_files += new_on_all_ranks
            if self.state.bad_files > self.cfg.data.max_bad_files:
                raise self.bad.error(self.state.bad_files, self.cfg.data.max_bad_files)

    # -- logging, validation, checkpoints -------------------------------------------------------------------
    def _log_train(self) -> None:
        """Metrics since the last log line, reduced over ranks (rank 0 writes them), and the health checks."""
        st, update = self.state, self.state.update
        now = time.monotonic()
        metrics = self.meter.reduce(self.device, self.info)
        metrics["audio_s_per_s"] = metrics.pop("_audio") / max(now - self._last_log_t, 1e-9)
        metrics.update(lr=self.optimizer.param_groups[0]["lr"], epoch=st.epoch,
                       audio_hours=st.audio_seconds / 3600, wall_s=self._wall())
        if self.cfg.optim.max_minutes and st.planned_updates:
            metrics["planned_updates"] = st.planned_updates
        for key, value in self.task.log_metrics(max(update - 1, 0)).items():  # as of the last update done
            metrics.setdefault(key, value)
        self.log.train(update, metrics)
        self.result.train_metrics = metrics
        if self.cfg.logging.health:
            for text in self.health.check(metrics, self.task.health(metrics, update)):
                self.log.warn(update, text)
        self.meter.reset()
        self._last_log_t = now

    def _validate_and_save(self) -> None:
        """After an update: validate every `validate_interval_updates` (else with each checkpoint), then save
        every `save_interval_updates`."""
        c, update = self.cfg.checkpoint, self.state.update
        save_now = update % c.save_interval_updates == 0 and update != self.last_saved
        every = c.validate_interval_updates
        if self.valid and ((every and update % every == 0) or (not every and save_now)):
            self._validate_step()
        if save_now:
            self.result.last_checkpoint = self.save()

    def _validate_step(self) -> None:
        """Validates, logs, keeps `checkpoint_best` and counts validations without progress (early stopping)."""
        st, c, result = self.state, self.cfg.checkpoint, self.result
        metrics = self.validate()
        if not metrics:
            return
        for _, text in self.task.valid_health(metrics, st.update):
            self.log.warn(st.update, text)
        if self.cfg.logging.health:
            for text in self.health.check_valid(st.update, metrics.get("loss")):
                self.log.warn(st.update, text)
        self.log.valid(st.update, metrics)
        result.valid_metrics = {**metrics, "update": st.update}
        value = metrics.get(c.best_metric)
        if value is None:
            raise ConfigError(f"checkpoint.best_metric '{c.best_metric}' is not a validation metric",
                              hint=f"validation reports: {', '.join(sorted(metrics))}")
        if self._improved(value):
            st.best_metric, st.best_update, st.bad_validations = float(value), st.update, 0
            self.save_best()
        else:
            st.bad_validations += 1
            if c.early_stop_patience and st.bad_validations >= c.early_stop_patience:
                self.log.info(f"early stop: no better valid {c.best_metric} for {st.bad_validations} validations "
                              f"(best {st.best_metric:.4g} at update {st.best_update})")
                result.stopped = "early_stop"

    def _finish(self) -> None:
        """A final validation (unless this update was just validated) and a final checkpoint."""
        st, result = self.state, self.result
        if self.meter.pending:  # the updates since the last log line: the summary shows the final loss, not an older one
            self._log_train()
        if self.valid and result.stopped in ("max_updates", "max_epochs", "max_minutes") and \
                (result.valid_metrics is None or result.valid_metrics.get("update") != st.update):
            self._validate_step()
        if self.last_saved != st.update:
            result.last_checkpoint = self.save()
        elif result.last_checkpoint is None:
            result.last_checkpoint = self.out_dir / CKPT_DIR / f"update_{st.update:08d}"

    def _result(self) -> TrainResult:
        result, st = self.result, self.state
        result.update, result.epoch = st.update, st.epoch
        result.nonfinite_updates = st.nonfinite_total
        result.bad_files = st.bad_files
        best = self.out_dir / BEST_DIR
        result.best_checkpoint = best if best.is_dir() else None
        return result


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

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

Layout of DIR: `config.yaml` (resolved config), `metrics.jsonl`, `checkpoints/update_NNNNNNNN/` (model.safetensors,
config.yaml, trainer_state.pt; the last `checkpoint.keep_last` are kept), `checkpoint_last` -> newest,
`checkpoint_best` (weights of the best validation so far, when validating).
"""

from __future__ import annotations

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

from w2v2cli.config import save_yaml, to_dict
from w2v2cli.data.augment import make_augmenter
from w2v2cli.data.dataset import AudioDataset, make_loader, raise_if_failed
from w2v2cli.data.sampler import BucketBatchSampler
from w2v2cli.errors import CheckpointError, ConfigError, DataError, TrainingError
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
_CKPT_RE = re.compile(r"^update_(\d+)$")


@dataclass
class TrainResult:
    out_dir: Path
    update: int
    epoch: int
    stopped: str  # max_updates | max_epochs | early_stop | SIGTERM | SIGINT
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    train_metrics: dict[str, Any] = field(default_factory=dict)  # last logged
    valid_metrics: dict[str, Any] | None = None  # last validation
    resumed_from: Path | None = None
    skipped_utterances: int = 0  # shorter than min_sample_size (or unlabelled-too-long)
    nonfinite_updates: int = 0


def train(cfg: TrainConfig, task: Task, out_dir: str | os.PathLike, resume: str | None = None,
          valid: Sequence[str] | None = None, console: Console | None = None) -> TrainResult:
    """Runs training to `optim.max_updates` (or a stop condition); see the module docstring."""
    from w2v2cli.runtime import configure_runtime

    configure_runtime()  # keep freed activation memory mapped (glibc), flush denormals: see w2v2cli/runtime.py
    return Trainer(cfg, task, Path(out_dir), resume, list(valid or cfg.data.valid), console).run()


# ------------------------------------------------------------------------------------------------ helpers
def resolve_precision(name: str, device: torch.device) -> str:
    if name == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("optim.precision fp16 needs a GPU (GradScaler)", hint="use optim.precision=bf16 on CPU")
    return name


def source_languages(sources) -> list[str]:
    """Language of each training manifest: its `lang`, else the file stem (train.tsv in de/ -> 'de' when the
    stems are all equal), else the path; manifests of one language form one sampling group."""
    paths = [Path(s.path) for s in sources]
    stems = [p.stem for p in paths]
    parents = [p.parent.name for p in paths]
    auto = stems if len(set(stems)) == len(stems) else parents if len(set(parents)) == len(parents) else \
        [str(p) for p in paths]
    return [s.lang or a for s, a in zip(sources, auto)]


def list_checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    """(update, path) of complete checkpoints in DIR/checkpoints, newest first."""
    root = out_dir / CKPT_DIR
    found = []
    if root.is_dir():
        for child in root.iterdir():
            m = _CKPT_RE.match(child.name)
            if m and child.is_dir() and all((child / f).is_file() for f in ("model.safetensors", "config.yaml",
                                                                             STATE_FILE)):
                found.append((int(m.group(1)), child))
    return sorted(found, reverse=True)


def find_resume_checkpoint(out_dir: Path, resume: str | None) -> Path | None:
    """`auto`: the newest loadable checkpoint in DIR (None if there is none); else the given directory."""
    if not resume:
        return None
    if resume == "auto":
        for _, path in list_checkpoints(out_dir):
            try:
                load_trainer_state(path / STATE_FILE)
                return path
            except CheckpointError:
                continue  # a damaged newest checkpoint: fall back to the one before
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


def _ignore_sigint(_worker_id: int) -> None:  # DataLoader workers: the main process handles Ctrl-C
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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
                                           "updates": 0.0, "nonfinite": 0.0}

    def add(self, metrics: dict[str, float], sample_size: float) -> None:
        self.weight += sample_size
        for key, value in metrics.items():
            v = float(value)
            self.values[key] = self.values.get(key, 0.0) + (v if key in self.sum_keys else v * sample_size)

    def reduce(self, device: torch.device, info: D.DistInfo) -> dict[str, float]:
        keys = sorted(self.values)
        counter_keys = sorted(self.counters)
        flat = [self.values[k] for k in keys] + [self.weight] + [self.counters[k] for k in counter_keys]
        flat = D.all_reduce_sum(flat, device, info)
        values, weight = flat[: len(keys)], flat[len(keys)]
        counters = dict(zip(counter_keys, flat[len(keys) + 1:]))
        out = {k: (v if k in self.sum_keys else v / max(weight, 1e-12)) for k, v in zip(keys, values)}
        if counters["sample_size"] > 0:
            out["loss"] = counters["loss_sum"] / counters["sample_size"]
        updates = counters["updates"] / info.world_size
        out["grad_norm"] = counters["grad_norm"] / max(info.world_size * updates, 1)
        out["nonfinite"] = counters["nonfinite"] / info.world_size
        out["_audio"] = counters["audio"]
        return out


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
                                         pad=pad, seed=self.cfg.seed, augment=augment)
        labelled = targets is not None
        if train:
            sampler = BucketBatchSampler(ds.sizes, d.max_tokens, d.max_sample_size, d.min_sample_size,
                                         d.max_batch_size, pad=pad, seed=self.cfg.seed, shuffle=True,
                                         groups=ds.groups, alpha=d.sampling_alpha, rank=info.rank,
                                         world_size=info.world_size, update_freq=self.cfg.optim.update_freq,
                                         drop_longer=labelled)
        else:  # validation: every utterance, uncropped when labelled, in length order
            max_size = max(d.max_sample_size, int(ds.sizes.max())) if labelled else d.max_sample_size
            sampler = BucketBatchSampler(ds.sizes, max(d.max_tokens, max_size), max_size, 0, d.max_batch_size,
                                         pad=pad, seed=self.cfg.seed, shuffle=False, rank=info.rank,
                                         world_size=info.world_size, wrap=self.cfg.distributed.fsdp)
            ds.max_sample_size = max_size
        loader = make_loader(ds, sampler, num_workers=d.num_workers, prefetch_factor=d.prefetch_factor,
                             pin_memory=self.device.type == "cuda", worker_init_fn=_ignore_sigint)
        return ds, sampler, loader

    # -- checkpoints ----------------------------------------------------------------------------------------
    def _gather(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Full model and optimizer state dicts (collective under FSDP: every rank must call this)."""
        if self._sharded:
            from torch.distributed.fsdp import FullStateDictConfig, StateDictType
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            with FSDP.state_dict_type(self.model, StateDictType.FULL_STATE_DICT,
                                      FullStateDictConfig(offload_to_cpu=True, rank0_only=True)):
                return self.model.state_dict(), FSDP.optim_state_dict(self.model, self.optimizer)
        return self.raw_model.state_dict(), self.optimizer.state_dict()

    def save(self) -> Path:
        from w2v2cli.checkpoint.io import save_checkpoint

        model_sd, optim_sd = self._gather()
        path = self.out_dir / CKPT_DIR / f"update_{self.state.update:08d}"
        if self.info.is_main:
            self.state.wall_seconds = self._wall()
            data = trainer_state_bytes(self.state, optim_sd, self.scaler)
            save_checkpoint(path, model_sd, self.cfg.model, self.task.kind, vocab=self.task.vocab,
                            provenance={"update": self.state.update, "epoch": self.state.epoch,
                                        "trainer": "w2v2cli.train"},
                            train_config=self.cfg, extra_files={STATE_FILE: data})
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

    def save_best(self) -> Path:
        from w2v2cli.checkpoint.io import save_checkpoint

        model_sd, _ = self._gather()
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

        from w2v2cli.checkpoint.io import load_checkpoint

        ckpt = load_checkpoint(path, kind=self.task.kind)
        if to_dict(ckpt.cfg) != to_dict(self.cfg.model):
            saved, now = to_dict(ckpt.cfg), to_dict(self.cfg.model)
            diff = [k for k in now if saved.get(k) != now.get(k)]
            raise CheckpointError(f"cannot resume from {path}: its model config differs in {', '.join(diff)}",
                                  hint="resume with the same --config/--set model.* values, or use a new --out")
        del ckpt
        self.raw_model.load_state_dict(load_file(str(path / "model.safetensors")), strict=True)
        state, payload = load_trainer_state(path / STATE_FILE)
        self.optimizer.load_state_dict(payload["optimizer"])
        if payload.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(payload["scaler"])
        restore_rng(payload["rng"])
        self.state = state
        self.state.world_size, self.state.update_freq = self.info.world_size, self.cfg.optim.update_freq

    # -- validation -----------------------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """Validation metrics over every rank's share of the validation set (see `w2v2cli.train.evaluate`)."""
        model = self.model if self._sharded else self.raw_model
        self.valid_sampler.set_epoch(1, 0)
        metrics = evaluate(model, self.task, self.valid_loader, self.device, self.info, seed=self.cfg.seed,
                           autocast=self._autocast)
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
    def _sharded(self) -> bool:
        """True when the model is wrapped in FSDP (parameters, gradients and optimizer state are sharded)."""
        return self.cfg.distributed.fsdp and self.info.enabled

    # -- the run --------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        # device and distributed environment (torchrun sets RANK / WORLD_SIZE / LOCAL_RANK)
        self.device = D.pick_device(self.cfg.device, D.env_info())
        self.info = D.init_distributed(self.cfg.distributed, self.device)
        try:
            self._setup()
            try:
                with _Stopper() as stopper:
                    self._loop(stopper)
                    self._finish()
            finally:
                self.log.close()
            return self._result()
        finally:
            D.shutdown()

    def _setup(self) -> None:
        """Top-down: data, model, optimizer, precision, resume, distributed wrapper, logger."""
        cfg, task, info = self.cfg, self.task, self.info
        if not cfg.data.train:
            raise DataError("no training manifest given", hint="w2v2 pretrain TRAIN.tsv (or data.train in the config)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.precision = resolve_precision(cfg.optim.precision, self.device)
        if self.device.type == "cpu":
            torch.set_flush_denormal(True)  # denormals make CPU kernels 10x slower once activations get tiny
        # data: a deterministic plan of batches; the loader's workers only load audio
        manifests = [s.path for s in cfg.data.train]
        self.dataset, self.sampler, self.loader = self.build_data(info, manifests, source_languages(cfg.data.train),
                                                                  train=True)
        if self.valid:
            _, self.valid_sampler, self.valid_loader = self.build_data(info, self.valid, None, train=False)
        # model: the same initial weights on every rank (DDP also broadcasts rank 0's)
        torch.manual_seed(cfg.seed)
        self.raw_model = task.build_model(cfg).to(self.device)
        self.optimizer = build_optimizer(self.raw_model, cfg.optim)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.state = TrainerState(seed=cfg.seed, world_size=info.world_size, update_freq=cfg.optim.update_freq)
        self.last_saved = -1
        resumed_from = find_resume_checkpoint(self.out_dir, self.resume)
        if resumed_from is not None:
            self.restore(resumed_from)
            self.last_saved = self.state.update
        if info.is_main:
            save_yaml(to_dict(cfg), self.out_dir / "config.yaml")
            if resumed_from is not None:  # the records after the checkpoint belong to the interrupted run
                truncate_metrics(self.out_dir, self.state.update)
        find_unused = cfg.distributed.find_unused_parameters
        if find_unused == "auto":
            find_unused = task.find_unused_parameters()
        self.model = D.wrap_model(self.raw_model, info, cfg.distributed, self.device, bool(find_unused))
        self.params = [p for p in self.raw_model.parameters() if p.requires_grad]
        # what the user sees: rank 0 writes metrics.jsonl and the progress display
        self.log = RunLogger(self.out_dir, cfg.logging, cfg.optim.max_updates, enabled=info.is_main,
                             console=self.console, start_update=self.state.update)
        self.health = HealthMonitor(cfg.logging.grad_norm_warn)
        self.meter = _Meter(task.sum_metrics)
        self.result = TrainResult(self.out_dir, 0, 0, "max_updates", resumed_from=resumed_from,
                                  skipped_utterances=self.sampler.num_dropped)
        for text in task.data_warnings():
            self.log.warn(None, text)
        if self.sampler.num_dropped:
            self.log.info(f"skipping {self.sampler.num_dropped} of {len(self.dataset)} utterances shorter than "
                          f"data.min_sample_size ({cfg.data.min_sample_size} samples)")
        if resumed_from is not None:
            self.log.info(f"resumed from {resumed_from} at update {self.state.update}")
        self._t0, self._wall0 = time.monotonic(), self.state.wall_seconds
        self._last_log_t = time.monotonic()

    def _loop(self, stopper: _Stopper) -> None:
        """Updates until `optim.max_updates`, `optim.max_epochs`, early stopping or a signal."""
        cfg, st, result = self.cfg, self.state, self.result
        done = st.update >= cfg.optim.max_updates
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
                # one all-reduce for the update's sums and for "a rank was asked to stop", so that every rank
                # takes the same decisions (step or skip, log, stop)
                _, sample_size, audio, nonfinite, stop = D.all_reduce_sum(
                    [local.loss_sum, local.sample_size, local.audio, local.nonfinite,
                     float(stopper.signal is not None)], self.device, self.info)
                st.audio_seconds += audio
                stepped = self._step(local, sample_size, nonfinite)
                self.log.advance(st.update)
                if (stepped and st.update % cfg.logging.log_interval == 0) or self.meter.counters["nonfinite"]:
                    self._log_train()  # a skipped update is logged at once, so that a NaN is seen where it came
                if stepped:
                    self._validate_and_save()
                if stop:
                    result.stopped = stopper.signal or "SIGTERM"
                done = result.stopped != "max_updates" or st.update >= cfg.optim.max_updates

    # -- one update -----------------------------------------------------------------------------------------
    def _accumulate(self, micro: list) -> _Sums:
        """Forward and backward over this rank's micro-batches of one update; their gradients add up."""
        cfg, st, info = self.cfg, self.state, self.info
        update_freq = cfg.optim.update_freq
        set_lr(self.optimizer, lr_at(st.update, cfg.optim.lr, cfg.lr, cfg.optim.max_updates))
        self.task.begin_update(self.raw_model, st.update)
        self.model.train()
        sums = _Sums()
        for f, item in enumerate(micro):
            batch = raise_if_failed(item).to(self.device, non_blocking=True)
            # seeded by the batch's global position: masks and dropout depend neither on the rank nor on a resume
            torch.manual_seed(micro_batch_seed(cfg.seed, st.epoch, st.position + f * info.world_size + info.rank))
            # only sync gradients on the last micro-batch of the update
            with D.no_sync(self.model, skip=f < update_freq - 1):
                with self._autocast():
                    loss, sample_size, metrics = self.task.compute_loss(self.model, batch, st.update)
                self.scaler.scale(loss).backward()
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
            return float(self.model.clip_grad_norm_(clip))
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

    # -- logging, validation, checkpoints -------------------------------------------------------------------
    def _log_train(self) -> None:
        """Metrics since the last log line, reduced over ranks (rank 0 writes them), and the health checks."""
        st, update = self.state, self.state.update
        now = time.monotonic()
        metrics = self.meter.reduce(self.device, self.info)
        metrics["audio_s_per_s"] = metrics.pop("_audio") / max(now - self._last_log_t, 1e-9)
        metrics.update(lr=self.optimizer.param_groups[0]["lr"], epoch=st.epoch,
                       audio_hours=st.audio_seconds / 3600, wall_s=self._wall())
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
        if self.valid and result.stopped in ("max_updates", "max_epochs") and \
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
        best = self.out_dir / BEST_DIR
        result.best_checkpoint = best if best.is_dir() else None
        return result

"""The training loop shared by `w2v2 pretrain` and `w2v2 finetune` (they differ only by the `Task`).

    >>> cfg = load_train_config("tiny", overrides=["data.train=[{path: train.tsv}]"])
    >>> result = train(cfg, PretrainTask(cfg), out_dir="exp/pt", resume="auto", valid=["valid.tsv"])
    >>> result.update, result.last_checkpoint           # 600, exp/pt/checkpoints/update_00000600

Top-down, as nanoGPT: device and torchrun environment, data, model, optimizer, precision, resume, distributed
wrapper, then one loop. Every update consumes `world_size x update_freq` batches of a seeded, deterministic plan
(w2v2cli/data/sampler.py), and the global random generator is re-seeded from `(seed, epoch, global batch position)`
before each micro-batch, so masks, negatives, dropout and Gumbel noise do not depend on which rank computes a batch
or on whether the run was interrupted: a resumed run repeats the uninterrupted one, and 2 processes with
update_freq 1 compute what 1 process with update_freq 2 computes.

The concerns around the loop live in their own modules (architecture.md lists them): the run directory
(`run_dir.py`), checkpoints (`checkpointing.py`), data (`loaders.py`), time budgets (`budget.py`), skipped audio
(`bad_audio.py`), signals (`signals.py`), metric sums (`meter.py`), precision (`precision.py`).
"""

from __future__ import annotations

import gc
import math
import os
import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Sequence

import torch
from rich.console import Console

from w2v2cli.config import save_yaml, to_dict
from w2v2cli.data.dataset import SkippedBatch, raise_if_failed
from w2v2cli.errors import ConfigError, DataError, TrainingError
from w2v2cli.runtime import configure_runtime, enlarge_kernel_cache
from w2v2cli.train import budget as B
from w2v2cli.train import distributed as D
from w2v2cli.train import run_dir as R
from w2v2cli.train.bad_audio import BadAudio
from w2v2cli.train.checkpointing import Checkpointer
from w2v2cli.train.config import TrainConfig
from w2v2cli.train.evaluate import evaluate
from w2v2cli.train.loaders import build_data, source_languages
from w2v2cli.train.logging import HealthMonitor, RunLogger, truncate_metrics
from w2v2cli.train.meter import Meter, UpdateSums
from w2v2cli.train.optim import build_optimizer, lr_at, set_lr
from w2v2cli.train.precision import autocast, resolve_precision
from w2v2cli.train.signals import SIGNAL_EXIT_CODES, Stopper
from w2v2cli.train.state import TrainerState, micro_batch_seed
from w2v2cli.train.tasks import Task


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
    `resume`: "auto", "restart" or a checkpoint directory (w2v2cli/train/run_dir.py). See the module docstring."""
    # oneDNN reads its cache size when it makes its first kernel, so this comes before any torch op
    if cfg.data.length_quantum:  # few batch shapes: keep their kernels (not for exact lengths: w2v2cli/runtime.py)
        enlarge_kernel_cache()
    # keep freed activation memory mapped (glibc), flush denormals in every thread (the only place the trainer does:
    # threads made later inherit the flag): see w2v2cli/runtime.py
    configure_runtime()
    return Trainer(cfg, task, Path(out_dir), resume, list(valid or cfg.data.valid), console).run()


class Trainer:
    def __init__(self, cfg: TrainConfig, task: Task, out_dir: Path, resume: str | None, valid: list[str],
                 console: Console | None = None):
        self.cfg, self.task, self.out_dir, self.resume, self.valid = cfg, task, out_dir, resume, valid
        self.console = console or Console(stderr=True)

    @property
    def total_updates(self) -> int | None:
        """The run's length in updates: `optim.max_updates`, or what fits in `optim.max_minutes` once planned;
        None while a budget without a cap has no plan yet."""
        return self.state.planned_updates or self.cfg.optim.max_updates or None

    @property
    def _sharded(self) -> bool:
        """True when the model is wrapped in FSDP (parameters, gradients and optimizer state are sharded)."""
        return self.cfg.distributed.fsdp and self.info.enabled

    def _wall(self) -> float:
        return self._wall0 + time.monotonic() - self._t0

    def _done(self) -> bool:
        total = self.total_updates
        return total is not None and self.state.update >= total

    # -- the run --------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        # device and distributed environment (torchrun sets RANK / WORLD_SIZE / LOCAL_RANK)
        self.device = D.pick_device(self.cfg.device, D.env_info())
        self.info = D.init_distributed(self.cfg.distributed, self.device)
        finished = False
        try:
            self._setup()
            try:
                with Stopper() as stopper:
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
        for name in ("model", "raw_model", "optimizer", "params", "loader", "valid_loader", "scaler", "ckpt"):
            if hasattr(self, name):
                setattr(self, name, None)
        gc.collect()

    def _setup(self) -> None:
        """Top-down: data, model, optimizer, precision, resume, distributed wrapper, logger."""
        cfg, task, info = self.cfg, self.task, self.info
        if not cfg.data.train:
            raise DataError("no training manifest given", hint="w2v2 pretrain TRAIN.tsv (or data.train in the config)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        notes: list[str] = []  # warnings found before the logger exists
        if info.is_main:
            notes += filter(None, [R.remove_stale_temporaries(self.out_dir)])
        self.precision, why = resolve_precision(cfg.optim.precision, self.device)
        # data: a deterministic plan of batches; the loader's workers only load audio
        self.dataset, self.sampler, self.loader = build_data(
            cfg, task, info, [s.path for s in cfg.data.train], source_languages(cfg.data.train), True, self.device)
        if self.valid:
            _, self.valid_sampler, self.valid_loader = build_data(cfg, task, info, self.valid, None, False,
                                                                  self.device)
        resumed_from = self._setup_model_and_resume(notes)
        self._setup_logging(resumed_from, notes, f"{self.precision} ({why})")

    def _setup_model_and_resume(self, notes: list[str]) -> Path | None:
        """Model, optimizer, scaler, the checkpoint to resume from (restored), the distributed wrapper."""
        cfg, task, info = self.cfg, self.task, self.info
        # model: the same initial weights on every rank (DDP also broadcasts rank 0's)
        torch.manual_seed(cfg.seed)
        self.raw_model = task.build_model(cfg).to(self.device)
        find_unused = cfg.distributed.find_unused_parameters
        if find_unused == "auto":
            find_unused = task.find_unused_parameters()
        self.model = self.raw_model
        if self._sharded:  # FSDP2 shards the model in place; the optimizer must see the sharded parameters
            self.model = D.wrap_model(self.raw_model, info, cfg.distributed, self.device, bool(find_unused),
                                      self.precision)
        self.optimizer = build_optimizer(self.raw_model, cfg.optim, task.lr_scales(self.raw_model))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.ckpt = Checkpointer(self.out_dir, cfg, task, info, self.device, self.model, self.optimizer, self.scaler,
                                 self._sharded)
        self.state = TrainerState(seed=cfg.seed, world_size=info.world_size, update_freq=cfg.optim.update_freq)
        self.last_saved = -1
        self.prepared: list[str] = []  # what the task's data-dependent initialisation did (a fresh run only)
        resumed_from = R.choose_resume(self.out_dir, self.resume, notes)
        if self.resume == "restart" and info.is_main:
            notes += filter(None, [R.move_old_run_aside(self.out_dir)])
        D.barrier(info)
        if resumed_from is not None:
            self.state = self.ckpt.restore(resumed_from)
            self.state.world_size, self.state.update_freq = info.world_size, cfg.optim.update_freq
            self.last_saved = self.state.update
        else:  # data-dependent initialisation (k-means targets); a resumed run restores it with the weights
            self.prepared = task.prepare_model(self.raw_model, self.dataset)
        if info.is_main:
            notes += filter(None, [R.record_config(self.out_dir, to_dict(cfg), resumed_from)])
            # records after the checkpoint belong to the interrupted run (all of them when starting at update 0)
            truncate_metrics(self.out_dir, self.state.update)
        self.bad = BadAudio(self.out_dir, self.state.update if resumed_from is not None else None,
                            rewrite=info.is_main)
        self._last_good = None  # the last usable batch (see _accumulate)
        if not self._sharded:  # DDP broadcasts rank 0's (restored) weights when it wraps
            self.model = D.wrap_model(self.raw_model, info, cfg.distributed, self.device, bool(find_unused),
                                      self.precision)
        self.params = [p for p in self.raw_model.parameters() if p.requires_grad]
        return resumed_from

    def _setup_logging(self, resumed_from: Path | None, notes: list[str], precision_note: str) -> None:
        """What the user sees: rank 0 writes metrics.jsonl and the progress display; the notes gathered so far."""
        cfg, st = self.cfg, self.state
        # a time budget's length is not known until it is planned (the cap alone would read as the length)
        known = not cfg.optim.max_minutes or st.planned_updates
        self.log = RunLogger(self.out_dir, cfg.logging, self.total_updates if known else None,
                             enabled=self.info.is_main, console=self.console, start_update=st.update)
        self.health = HealthMonitor(cfg.logging.grad_norm_warn)
        self.meter = Meter(self.task.sum_metrics)
        self.result = TrainResult(self.out_dir, 0, 0, "max_updates", resumed_from=resumed_from,
                                  skipped_utterances=self.sampler.num_dropped, precision=precision_note)
        for text in notes:
            self.log.warn(st.update if resumed_from is not None else None, text)
        for text in self.task.data_warnings():
            self.log.warn(None, text)
        for text in self.prepared:
            self.log.info(text)
        if self.sampler.num_dropped:
            self.log.info(f"skipping {self.sampler.num_dropped} of {len(self.dataset)} utterances shorter than "
                          f"data.min_sample_size ({cfg.data.min_sample_size} samples)")
        if cfg.optim.precision == "auto":
            self.log.info(f"precision: {precision_note}")
        if resumed_from is not None:
            self.log.info(f"resumed from {resumed_from} at update {st.update}")
        self._t0, self._wall0 = time.monotonic(), st.wall_seconds
        self._last_log_t = time.monotonic()
        self.task.total_updates = self.total_updates

    def _loop(self, stopper: Stopper) -> None:
        """Updates until `optim.max_updates` (or the length planned for `optim.max_minutes`), `optim.max_epochs`,
        early stopping or a signal."""
        cfg, st, result = self.cfg, self.state, self.result
        done = self._done()
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
                st.bad_files = self.bad.settle(st.bad_files, int(bad), cfg.data.max_bad_files)
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
                done = result.stopped != "max_updates" or self._done()

    def _follow_budget(self, elapsed: float) -> None:
        """`optim.max_minutes`: the run's length planned from its speed (w2v2cli/train/budget.py)."""
        step = B.follow(self.state, self.cfg.optim.max_minutes, self.cfg.optim.max_updates or None, elapsed)
        if step.replanned:
            self.log.set_total(self.state.planned_updates)
            self.task.total_updates = self.total_updates  # the task's checks that depend on the run's length
        if step.note:
            self.log.info(step.note)
        if step.overrun:
            self.log.warn(self.state.update, step.overrun)
            self.result.stopped = "max_minutes"

    # -- one update -----------------------------------------------------------------------------------------
    def _accumulate(self, micro: list) -> UpdateSums:
        """Forward and backward over this rank's micro-batches of one update; their gradients add up."""
        cfg, st, info = self.cfg, self.state, self.info
        update_freq = cfg.optim.update_freq
        set_lr(self.optimizer, lr_at(st.update, cfg.optim.lr, cfg.lr, self.total_updates))
        self.task.begin_update(self.raw_model, st.update)
        self.model.train()
        sums = UpdateSums()
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
                    what = item.bad_files[0][0] if item.bad_files else "an empty batch that evens out the ranks"
                    raise DataError(f"rank {info.rank}: no readable audio in its first batch ({what})",
                                    hint=f"remove the files listed in {self.bad.path}, or resume with another "
                                         "number of processes")
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
                with autocast(self.precision, self.device):
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

    def _step(self, local: UpdateSums, sample_size: float, nonfinite: float) -> bool:
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
        # gradients are sums over this rank's frames and DDP averaged them over ranks: world_size / global sample
        # size makes them the mean over all frames of all ranks
        for grad in (p.grad for p in self.params if p.grad is not None):
            grad.mul_(self.info.world_size / sample_size)
        return D.clip_grad_norm(self.params, self.cfg.optim.clip_norm if self.cfg.optim.clip_norm > 0 else math.inf)

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
        # met while computing the next update: a resume from the checkpoint before it meets (and counts) them again
        for text in self.bad.note(self.state.update + 1, files, self.cfg.data.max_bad_files) if files else ():
            self.meter.counters["bad_audio"] += 1
            self.log.warn(self.state.update + 1, text)

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
            self.result.last_checkpoint = self._save()

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
        if st.best_metric is None or (value < st.best_metric if c.best_mode == "min" else value > st.best_metric):
            st.best_metric, st.best_update, st.bad_validations = float(value), st.update, 0
            self.ckpt.save_best(st)
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
            result.last_checkpoint = self._save()
        elif result.last_checkpoint is None:
            result.last_checkpoint = R.checkpoint_path(self.out_dir, st.update)

    def _result(self) -> TrainResult:
        result, st = self.result, self.state
        result.update, result.epoch = st.update, st.epoch
        result.nonfinite_updates = st.nonfinite_total
        result.bad_files = st.bad_files
        best = self.out_dir / R.BEST_DIR
        result.best_checkpoint = best if best.is_dir() else None
        return result

    def _save(self) -> Path:
        self.state.wall_seconds = self._wall()
        path = self.ckpt.save(self.state)
        self.last_saved = self.state.update
        return path

    # -- validation -----------------------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """Validation metrics over every rank's share of the validation set (see `w2v2cli.train.evaluate`)."""
        model = self.model if self._sharded else self.raw_model
        self.valid_sampler.set_epoch(1, 0)
        metrics = evaluate(model, self.task, self.valid_loader, self.device, self.info, seed=self.cfg.seed,
                           autocast=lambda: autocast(self.precision, self.device), on_bad=self._note_bad,
                           distinct=self.valid_sampler.num_distinct if self._sharded else None)
        model.train()
        return metrics

"""Writing and restoring a training run's checkpoints: weights, optimizer, scaler, trainer state.

    >>> ckpt = Checkpointer(out_dir, cfg, task, info, device, model, optimizer, scaler, sharded=False)
    >>> path = ckpt.save(state)            # DIR/checkpoints/update_NNNNNNNN, checkpoint_last points to it
    >>> state = ckpt.restore(path)         # weights and optimizer back in place; the trainer state returned

Every save is atomic (a temporary directory swapped in, see w2v2cli/checkpoint/io.py), so a kill during a save leaves
the previous checkpoint intact. Under FSDP every rank writes its own pieces of the weights and optimizer moments
(w2v2cli/checkpoint/shards.py) and rank 0 adds the index, config and trainer state; `checkpoint_best` is always one
model.safetensors. Where the directories lie and which one a run resumes from: w2v2cli/train/run_dir.py.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from w2v2cli.config import from_dict, to_dict
from w2v2cli.errors import CheckpointError
from w2v2cli.train import distributed as D
from w2v2cli.train.config import TrainConfig
from w2v2cli.train.run_dir import BEST_DIR, checkpoint_path, list_checkpoints, point_last_and_prune
from w2v2cli.train.state import STATE_FILE, TrainerState, load_trainer_state, restore_rng, trainer_state_bytes
from w2v2cli.train.tasks import Task

PROVENANCE = "w2v2cli.train"


@dataclass
class Checkpointer:
    """What a checkpoint is made of. `model`: the FSDP-wrapped model when `sharded`, else the plain module (not
    its DDP wrapper: a resume loads the weights before DDP wraps and broadcasts them)."""

    out_dir: Path
    cfg: TrainConfig
    task: Task
    info: D.DistInfo
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    sharded: bool  # FSDP: parameters and optimizer state are sharded over the ranks

    def save(self, state: TrainerState) -> Path:
        """A resumable checkpoint of `state.update` (collective: every rank calls it)."""
        from w2v2cli.checkpoint.io import save_checkpoint

        path = checkpoint_path(self.out_dir, state.update)
        provenance = {"update": state.update, "epoch": state.epoch, "trainer": PROVENANCE}
        if self.sharded:
            self._save_sharded(path, provenance, state)
        elif self.info.is_main:
            data = trainer_state_bytes(state, self.optimizer, self.scaler)
            save_checkpoint(path, self.model.state_dict(), self.cfg.model, self.task.kind, vocab=self.task.vocab,
                            provenance=provenance, train_config=self.cfg, extra_files={STATE_FILE: data})
        if self.info.is_main:
            point_last_and_prune(self.out_dir, path, self.cfg.checkpoint.keep_last)
        D.barrier(self.info)
        return path

    def _save_sharded(self, path: Path, provenance: dict, state: TrainerState) -> None:
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
            rest = {"param_groups": optim["param_groups"],
                    "state": {name: {k: v for k, v in st.items() if not isinstance(v, torch.Tensor)}
                              for name, st in optim["state"].items()}}
            data = trainer_state_bytes(state, rest, self.scaler)
            finish_sharded_checkpoint(path, index_bytes(info.world_size, model_index, optim_index), self.cfg.model,
                                      self.task.kind, vocab=self.task.vocab, provenance=provenance,
                                      train_config=self.cfg, extra_files={STATE_FILE: data})

    def gather(self) -> dict[str, torch.Tensor]:
        """The full model state dict on rank 0 (collective under FSDP: every rank must call this; the other ranks
        get an empty dict)."""
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            return get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return self.model.state_dict()

    def save_best(self, state: TrainerState) -> Path:
        """DIR/checkpoint_best: the weights of the best validation so far (collective under FSDP)."""
        from w2v2cli.checkpoint.io import save_checkpoint

        model_sd = self.gather()
        path = self.out_dir / BEST_DIR
        if self.info.is_main:
            save_checkpoint(path, model_sd, self.cfg.model, self.task.kind, vocab=self.task.vocab,
                            provenance={"update": state.update, "best_metric": self.cfg.checkpoint.best_metric,
                                        "value": state.best_metric, "trainer": PROVENANCE},
                            train_config=self.cfg)
        D.barrier(self.info)
        return path

    def restore(self, path: Path) -> TrainerState:
        """Loads the weights, optimizer, scaler and RNG states of `path` into this run; its trainer state. A
        checkpoint of another model config, FSDP setting or lr-scale grouping is a CheckpointError saying which."""
        from safetensors.torch import load_file

        self._check_compatible(path)
        state, payload = load_trainer_state(path / STATE_FILE)
        saved = [g.get("lr_scale", 1.0) for g in payload["optimizer"]["param_groups"]]
        now_scales = [g["lr_scale"] for g in self.optimizer.param_groups]
        if saved != now_scales:  # the optimizer's groups (one per lr scale) would not line up
            raise CheckpointError(f"cannot resume from {path}: its parameters train at lr scales {saved}, this "
                                  f"run's at {now_scales}",
                                  hint="resume with the same task.pretrained_lr_scale, or start a new run with "
                                       f"--init {path}")
        if self.sharded:
            self._restore_sharded(path, payload["optimizer"])
        else:
            self.model.load_state_dict(load_file(str(path / "model.safetensors")), strict=True)
            self.optimizer.load_state_dict(payload["optimizer"])
        if payload.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(payload["scaler"])
        restore_rng(payload["rng"])
        return state

    def _check_compatible(self, path: Path) -> None:
        from w2v2cli.checkpoint.io import read_checkpoint_meta
        from w2v2cli.checkpoint.shards import is_sharded
        from w2v2cli.model.config import ModelConfig

        saved = to_dict(from_dict(ModelConfig, read_checkpoint_meta(path)["model"], source=str(path)))
        now = to_dict(self.cfg.model)
        if saved != now:
            diff = [k for k in now if saved.get(k) != now.get(k)]
            raise CheckpointError(f"cannot resume from {path}: its model config differs in {', '.join(diff)}",
                                  hint="resume with the same --config/--set model.* values, or use a new --out")
        if is_sharded(path) != self.sharded:
            made = "an FSDP run (sharded)" if is_sharded(path) else "a run without FSDP"
            raise CheckpointError(f"cannot resume from {path}: it was written by {made}",
                                  hint="resume with the same distributed.fsdp setting, or start a new run with "
                                       f"--init {path}")

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


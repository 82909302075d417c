"""Pretraining entry point: the resolved config + the shared trainer with a `PretrainTask`.

    >>> result = pretrain(["train.tsv"], "exp/pt", config="tiny", overrides=["optim.lr=1e-3"], max_updates=200)
    >>> result.last_checkpoint, result.train_metrics["accuracy"]
    >>> resolved = pretrain_config("tiny", ["optim.lr=1e-3"], RunOptions(train=("train.tsv",), max_updates=200))
    >>> result = run_pretraining(resolved.cfg, "exp/pt")      # what `w2v2 pretrain` does: one typed config, then train

`train` lists fairseq manifests; several manifests are sampled per language with p ~ (n_l/N)^alpha (a `.yaml`
entry lists `{path, lang}`: w2v2cli/train/resolve.py).
"""

from __future__ import annotations

import os
from typing import Sequence

from rich.console import Console

from w2v2cli.errors import ConfigError
from w2v2cli.train.config import TrainConfig
from w2v2cli.train.resolve import ResolvedConfig, RunOptions, resolve_config
from w2v2cli.train.tasks import PretrainTask
from w2v2cli.train.trainer import TrainResult, train


def pretrain_config(config: str = "base", overrides: Sequence[str] = (),
                    options: RunOptions | None = None) -> ResolvedConfig:
    """`resolve_config`, which must give a pretraining config (`task.name: pretrain`)."""
    resolved = resolve_config(config, overrides, options)
    if resolved.cfg.task.name != "pretrain":
        raise ConfigError(f"config '{config}' is a {resolved.cfg.task.name} fine-tuning config",
                          hint="use `w2v2 finetune`, or a pretraining preset: tiny, tiny_fbank, tiny_fbank_rq, base, "
                               "base_fbank_rq, large, xlsr")
    return resolved


def run_pretraining(cfg: TrainConfig, out_dir: str | os.PathLike, resume: str | None = None,
                    console: Console | None = None) -> TrainResult:
    """Pretrains with a resolved config (`pretrain_config`); `resume`: "auto" or a checkpoint directory."""
    return train(cfg, PretrainTask(cfg), out_dir, resume=resume, console=console)


def pretrain(train_manifests: Sequence[str | os.PathLike], out_dir: str | os.PathLike, config: str = "base",
             overrides: Sequence[str] = (), valid: Sequence[str | os.PathLike] = (), max_updates: int | None = None,
             resume: str | None = None, seed: int | None = None, console: Console | None = None) -> TrainResult:
    """`pretrain_config` + `run_pretraining` in one call."""
    options = RunOptions(train=tuple(train_manifests), valid=tuple(valid), max_updates=max_updates, seed=seed)
    return run_pretraining(pretrain_config(config, overrides, options).cfg, out_dir, resume=resume, console=console)

"""Pretraining entry point: config resolution + the shared trainer with a `PretrainTask`.

    >>> result = pretrain(["train.tsv"], "exp/pt", config="tiny", overrides=["optim.lr=1e-3"], max_updates=200)
    >>> result.last_checkpoint, result.train_metrics["accuracy"]
    >>> cfg = pretrain_config("tiny", ["optim.lr=1e-3"], ["train.tsv"], max_updates=200)   # what `w2v2 pretrain` does:
    >>> result = run_pretraining(cfg, "exp/pt")                                            # one typed config, then train

`train` lists fairseq manifests; several manifests are sampled per language with p ~ (n_l/N)^alpha. A `.yaml`
entry is read as a list of `{path: ..., lang: ...}` (or a mapping `lang: path`), relative paths being
relative to the YAML file.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from rich.console import Console

from w2v2cli.config import from_dict
from w2v2cli.errors import ConfigError
from w2v2cli.train.config import SourceConfig, TrainConfig, load_train_config
from w2v2cli.train.tasks import PretrainTask
from w2v2cli.train.trainer import TrainResult, train


def read_sources(items: Sequence[str | os.PathLike]) -> list[SourceConfig]:
    """Manifest paths (and YAML lists of them) -> SourceConfig list."""
    import yaml

    out: list[SourceConfig] = []
    for item in items:
        path = Path(item)
        if path.suffix in (".yaml", ".yml"):
            if not path.is_file():
                raise ConfigError(f"manifest list not found: {path}")
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as err:
                raise ConfigError(f"{path}: not valid YAML: {err}") from err
            if isinstance(data, dict):
                data = [{"lang": str(k), "path": v} for k, v in data.items()]
            if not isinstance(data, list) or not data:
                raise ConfigError(f"{path}: expected a list of {{path: FILE.tsv, lang: NAME}} entries")
            for i, entry in enumerate(data):
                entry = {"path": entry} if isinstance(entry, str) else entry
                src = from_dict(SourceConfig, entry, source=str(path), prefix=f"[{i}].")
                if not src.path:
                    raise ConfigError(f"{path}: entry {i} has no 'path'")
                if not Path(src.path).is_absolute():
                    src.path = str(path.parent / src.path)
                out.append(src)
        else:
            out.append(SourceConfig(path=str(path)))
    return out


def resolve_config(config: str = "base", overrides: Sequence[str] = (), train: Sequence[str | os.PathLike] = (),
                   valid: Sequence[str | os.PathLike] = (), max_updates: int | None = None,
                   seed: int | None = None) -> TrainConfig:
    """Preset or FILE.yaml, then --set overrides, then the explicit options (manifests, max updates, seed), each
    applied to the typed config with `dataclasses.replace` (which runs the sections' checks again)."""
    cfg = load_train_config(config, list(overrides))
    if train:
        cfg = replace(cfg, data=replace(cfg.data, train=read_sources(train)))
    if valid:
        cfg = replace(cfg, data=replace(cfg.data, valid=[str(v) for v in valid]))
    if max_updates is not None:
        cfg = replace(cfg, optim=replace(cfg.optim, max_updates=max_updates))
    if seed is not None:
        cfg = replace(cfg, seed=seed)
    return cfg


def pretrain_config(config: str = "base", overrides: Sequence[str] = (), train: Sequence[str | os.PathLike] = (),
                    valid: Sequence[str | os.PathLike] = (), max_updates: int | None = None,
                    seed: int | None = None) -> TrainConfig:
    """`resolve_config`, which must give a pretraining config (`task.name: pretrain`)."""
    cfg = resolve_config(config, overrides, train, valid, max_updates, seed)
    if cfg.task.name != "pretrain":
        raise ConfigError(f"config '{config}' is a {cfg.task.name} fine-tuning config",
                          hint="use `w2v2 finetune`, or a pretraining preset: tiny, base, large, xlsr")
    return cfg


def run_pretraining(cfg: TrainConfig, out_dir: str | os.PathLike, resume: str | None = None,
                    console: Console | None = None) -> TrainResult:
    """Pretrains with a resolved config (`pretrain_config`); `resume`: "auto" or a checkpoint directory."""
    return train(cfg, PretrainTask(cfg), out_dir, resume=resume, console=console)


def pretrain(train_manifests: Sequence[str | os.PathLike], out_dir: str | os.PathLike, config: str = "base",
             overrides: Sequence[str] = (), valid: Sequence[str | os.PathLike] = (), max_updates: int | None = None,
             resume: str | None = None, seed: int | None = None, console: Console | None = None) -> TrainResult:
    """`pretrain_config` + `run_pretraining` in one call."""
    cfg = pretrain_config(config, overrides, train_manifests, valid, max_updates, seed)
    return run_pretraining(cfg, out_dir, resume=resume, console=console)

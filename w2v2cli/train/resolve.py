"""A run's config, resolved once: preset or FILE.yaml, then `--set`, then the typed command-line options.

    >>> resolved = resolve_config("tiny", ["optim.lr=1e-3"], RunOptions(train=("train.tsv",), max_minutes=9.0))
    >>> resolved.cfg.optim.max_minutes, resolved.cfg.optim.max_updates    # 9.0, 0 (no cap: the budget sets it)
    >>> resolved.explicit                                                  # {"optim.lr", "optim.max_minutes", ...}

The options of `w2v2 pretrain` and `w2v2 finetune` that set config keys arrive typed in `RunOptions` and are
applied with `dataclasses.replace` (which runs the sections' checks again) after the `--set` values; the
`--set` strings are parsed once, and the keys the user set (by `--set` or an option) travel with the config as
`ResolvedConfig.explicit`, so that later decisions (e.g. what `--init none` may change) never re-read them.
`--threads` is not a config key: the commands hand it to `w2v2cli.runtime.configure_runtime` directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from w2v2cli.config import Override, from_dict, parse_overrides
from w2v2cli.errors import ConfigError
from w2v2cli.train.config import SourceConfig, TrainConfig, load_train_config


@dataclass(frozen=True)
class RunOptions:
    """The typed command-line options that set config keys; None (or empty) = not given, the config decides."""

    train: tuple[str | os.PathLike, ...] = ()  # data.train: manifests, or YAML lists of them (`read_sources`)
    valid: tuple[str | os.PathLike, ...] = ()  # data.valid
    max_updates: int | None = None  # optim.max_updates
    max_minutes: float | None = None  # optim.max_minutes; without max_updates the budget alone sets the length
    precision: str | None = None  # optim.precision (--dtype)
    seed: int | None = None  # seed
    vocab: str | None = None  # task.vocab (fine-tuning)
    vocab_size: int | None = None  # task.vocab_size (fine-tuning)

    def changes(self) -> dict[str, object]:
        """Dotted key -> value of every option given, in the order they apply."""
        out: dict[str, object] = {}
        if self.train:
            out["data.train"] = read_sources(self.train)
        if self.valid:
            out["data.valid"] = [str(v) for v in self.valid]
        if self.precision is not None:
            out["optim.precision"] = self.precision
        if self.max_minutes:
            out["optim.max_minutes"] = float(self.max_minutes)
            if self.max_updates is None:
                out["optim.max_updates"] = 0  # no cap: the preset's length would otherwise cap the budget
        if self.max_updates is not None:
            out["optim.max_updates"] = self.max_updates
        for key, value in (("seed", self.seed), ("task.vocab", self.vocab), ("task.vocab_size", self.vocab_size)):
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class ResolvedConfig:
    """The typed config of a run and the dotted keys the user set explicitly (by `--set` or an option)."""

    cfg: TrainConfig
    explicit: frozenset[str] = field(default_factory=frozenset)


def resolve_config(config: str = "base", overrides: Sequence[str | Override] = (),
                   options: RunOptions | None = None) -> ResolvedConfig:
    """Preset or FILE.yaml, then the `--set` overrides, then `options`; see the module docstring."""
    parsed = parse_overrides(overrides)
    cfg = load_train_config(config, parsed)
    changes = (options or RunOptions()).changes()
    sections: dict[str, dict[str, object]] = {}
    for key, value in changes.items():
        section, _, name = key.rpartition(".")
        sections.setdefault(section, {})[name] = value
    top = sections.pop("", {})
    cfg = replace(cfg, **top, **{s: replace(getattr(cfg, s), **values) for s, values in sections.items()})
    implied = {"optim.max_updates"} if options is None or options.max_updates is None else set()
    return ResolvedConfig(cfg, frozenset(o.key for o in parsed) | (frozenset(changes) - implied))


def read_sources(items: Sequence[str | os.PathLike]) -> list[SourceConfig]:
    """Manifest paths (and YAML lists of them) -> SourceConfig list. A `.yaml` entry is a list of
    `{path: ..., lang: ...}` (or a mapping `lang: path`), relative paths being relative to the YAML file."""
    import yaml

    out: list[SourceConfig] = []
    for item in items:
        path = Path(item)
        if path.suffix not in (".yaml", ".yml"):
            out.append(SourceConfig(path=str(path)))
            continue
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
    return out

"""Typed configuration: YAML <-> nested dataclasses, with strict keys and `--set` overrides.

    >>> cfg = from_dict(MyConfig, yaml.safe_load(open("run.yaml")), source="run.yaml")
    >>> cfg = apply_overrides(cfg, ["optim.lr=5e-4", "model.mask_prob=0.65"])
    >>> save_yaml(to_dict(cfg), "out/config.yaml")

Unknown keys are an error naming the key, where it came from, and the closest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

import yaml

from w2v2cli.errors import ConfigError
from w2v2cli.textio import atomic_write_text

T = TypeVar("T")


def _closest(key: str, options: list[str]) -> str | None:
    match = difflib.get_close_matches(key, options, n=1, cutoff=0.5)
    return match[0] if match else None


def _unknown_key(key: str, where: str, options: list[str], source: str) -> ConfigError:
    guess = _closest(key, options)
    hint = f"did you mean '{guess}'?" if guess else f"valid keys: {', '.join(sorted(options))}"
    return ConfigError(f"{source}: unknown key '{where}{key}'", hint=hint)


def _convert(tp: Any, value: Any, where: str, source: str) -> Any:
    """Converts a YAML value to the annotated type `tp`, raising ConfigError on mismatch."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where, source)
            except ConfigError as err:
                errors.append(err.message)
        raise ConfigError(f"{source}: bad value for '{where}': {value!r} ({'; '.join(errors)})")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{where}' must be a mapping, got {value!r}")
        return from_dict(tp, value, source=source, prefix=f"{where}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{where}' must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{source}: '{where}' must have {len(args)} items, got {value!r}")
            return tuple(_convert(a, v, f"{where}[{i}]", source) for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_convert(item, v, f"{where}[{i}]", source) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{where}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: '{where}' must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{source}: '{where}' must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "5e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{source}: '{where}' must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{source}: '{where}' must be a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], source: str = "config", prefix: str = "") -> T:
    """Builds dataclass `cls` from a mapping; every key must be a field (recursively)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping for '{prefix.rstrip('.') or 'config'}', got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise _unknown_key(str(key), prefix, list(fields), source)
        kwargs[key] = _convert(hints[key], value, f"{prefix}{key}", source)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: invalid '{prefix.rstrip('.') or cls.__name__}': {err}") from err


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain dict/list/scalars, safe for `yaml.safe_dump`."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


@dataclass(frozen=True)
class Override:
    """One `--set KEY=VALUE`: the text as given, the dotted key's parts and the value parsed as YAML."""

    text: str
    path: tuple[str, ...]
    value: Any

    @property
    def key(self) -> str:
        return ".".join(self.path)


def parse_override(text: str) -> Override:
    """'optim.lr=5e-4' -> Override('optim.lr=5e-4', ('optim', 'lr'), 0.0005). The value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"bad --set '{text}': expected KEY=VALUE, e.g. optim.lr=5e-4")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"bad --set '{text}': empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"bad --set '{text}': value is not valid YAML ({err})") from err
    return Override(text, tuple(key.split(".")), value)


def parse_overrides(texts: Sequence[str | Override]) -> list[Override]:
    """Each `--set` string parsed once (already parsed ones pass through)."""
    return [t if isinstance(t, Override) else parse_override(t) for t in texts]


def merge_overrides(data: dict[str, Any], overrides: Sequence[str | Override]) -> dict[str, Any]:
    """Applies 'a.b.c=value' overrides to a nested plain dict (returns a deep copy)."""
    import copy

    out = copy.deepcopy(data)
    for o in parse_overrides(overrides):
        path, node = o.path, out
        for i, part in enumerate(path[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                if part in node and child is not None:
                    raise ConfigError(f"bad --set '{o.text}': '{'.'.join(path[: i + 1])}' is not a section")
                child = node.setdefault(part, {})
            node = child
        node[path[-1]] = o.value
    return out


def apply_overrides(cfg: T, overrides: Sequence[str | Override], source: str = "--set") -> T:
    """Returns a new dataclass with overrides applied; unknown keys raise ConfigError."""
    if not overrides:
        return cfg
    return from_dict(type(cfg), merge_overrides(to_dict(cfg), overrides), source=source)


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys to values")
    return data


def save_yaml(data: dict[str, Any], path: str | os.PathLike) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

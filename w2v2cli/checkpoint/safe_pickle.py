"""Reading pickled `.pt` files (fairseq checkpoints, `pytorch_model.bin`) without running their code.

    >>> state = load_pickled("wav2vec_small.pt")          # dict: model, args/cfg, optimizer_history, ...

Everything goes through `torch.load(weights_only=True)`: its unpickler builds tensors and plain Python
containers only. fairseq also pickles a few harmless objects, which we allow by exact name and nothing else:

- `argparse.Namespace`: the `args` of checkpoints written before fairseq moved to hydra (2020).
- numpy scalars/arrays: best-loss and meter values in `extra_state`.
- OmegaConf configs: checkpoints saved in the hydra era (late 2020 to the change that stores
  `OmegaConf.to_container(cfg)`) pickle `cfg` as a `DictConfig` tree of nodes and metadata. We never import
  omegaconf: each of its class names is bound to an inert stand-in (`_Inert`) that keeps the pickled state as
  data and has no behaviour, and the type references inside the metadata (`typing.Any`, `builtins.dict`, ...)
  become inert markers too. After loading, every stand-in tree is turned into plain dicts and lists, so
  callers see the same `cfg` as in newer files (plain dicts).

Any other global, such as `os.system` or `builtins.eval` in a malicious file, or a class of fairseq's own,
makes loading fail with a CheckpointError that names it; nothing from the file is executed. A file that is
not a torch pickle at all (text, safetensors, a truncated download) is reported as such.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from w2v2cli.errors import CheckpointError


def _numpy_allow_list() -> list[Any]:
    """numpy's pickling helpers, under both their numpy 2 (`numpy._core`) and numpy 1 (`numpy.core`) names."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    items: list[Any] = [np.ndarray, np.dtype]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        items += [(multiarray.scalar, f"{mod}.scalar"), (multiarray._reconstruct, f"{mod}._reconstruct")]
    # dtype classes appear by name in pickles written by numpy >= 1.25
    for kind in (np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_):
        dtype_cls = type(np.dtype(kind))
        items.append((dtype_cls, f"numpy.dtypes.{dtype_cls.__name__}"))
    return items


# ---------------------------------------------------------------------------------------------- OmegaConf
class _Inert:
    """An object of a class the pickle names, kept as data only: the arguments it was created with and the
    state it was given. It has no other behaviour, so nothing in the file decides what code runs."""

    __slots__ = ("args", "state")
    pickled_name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Inert":
        obj = super().__new__(cls)
        obj.args, obj.state = args, None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE calls the class; nothing to do
        pass

    def __setstate__(self, state: Any) -> None:  # BUILD: keep the state, never apply it as attributes
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {self.pickled_name}>"


class _OmegaDict(_Inert):
    """omegaconf.DictConfig: its state holds `_content`, a dict of key -> node or container."""


class _OmegaList(_Inert):
    """omegaconf.ListConfig: its state holds `_content`, a list of nodes or containers."""


class _OmegaValue(_Inert):
    """An omegaconf value node (AnyNode, StringNode, ...): its state holds the value as `_val`."""


class _OmegaOther(_Inert):
    """omegaconf metadata (Metadata, ContainerMetadata): bookkeeping we never read."""


class _TypeRef(_Inert):
    """A type named inside omegaconf metadata (`typing.Any`, `builtins.dict`, ...); never called for real."""


def _stand_in(base: type, name: str) -> tuple[type, str]:
    return type(f"inert:{name}", (base,), {"__slots__": (), "pickled_name": name}), name


_OMEGA_VALUE_NODES = ["AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode", "BytesNode", "PathNode",
                      "EnumNode", "LiteralNode", "NoneNode", "InterpolationResultNode", "ValueNode"]
# type names that omegaconf writes into its metadata (ref_type, object_type, key_type, element_type)
_TYPE_NAMES = ["typing.Any", "typing.Dict", "typing.List", "typing.Tuple", "typing.Optional", "typing.Union",
               "builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.int", "builtins.float",
               "builtins.bool", "builtins.bytes", "builtins.object", "pathlib.Path", "pathlib.PosixPath"]


def _plain_dict(*args: Any) -> dict:
    """Stands in for `collections.defaultdict(factory)` (omegaconf's resolver cache): a plain empty dict; the
    factory is an inert marker and is never called."""
    return {}


def _omegaconf_allow_list() -> list[tuple[Any, str]]:
    items = [_stand_in(_OmegaDict, "omegaconf.dictconfig.DictConfig"),
             _stand_in(_OmegaList, "omegaconf.listconfig.ListConfig"),
             _stand_in(_OmegaValue, "omegaconf.base.UnionNode")]
    items += [_stand_in(_OmegaValue, f"omegaconf.nodes.{name}") for name in _OMEGA_VALUE_NODES]
    items += [_stand_in(_OmegaOther, f"omegaconf.base.{name}") for name in ("Metadata", "ContainerMetadata")]
    items += [_stand_in(_TypeRef, name) for name in _TYPE_NAMES]
    items.append((_plain_dict, "collections.defaultdict"))
    return items


_OMEGACONF_ALLOWED = _omegaconf_allow_list()  # created once: the unpickler compares classes by identity


def _state_get(obj: _Inert, key: str, default: Any = None) -> Any:
    """`key` of the pickled state (`_content`, `_val`), also under its name without the underscore."""
    state = obj.state[0] if isinstance(obj.state, tuple) and len(obj.state) == 2 else obj.state
    if not isinstance(state, dict):
        return default
    return state[key] if key in state else state.get(key.lstrip("_"), default)


def plain_config(obj: Any, _seen: dict[int, Any] | None = None, _inside: bool = False) -> Any:
    """Replaces every OmegaConf stand-in in `obj` (dicts, lists, tuples, Namespaces) by plain dicts, lists and
    values, as `OmegaConf.to_container(cfg, resolve=True)` would give them; tensors and other values are
    returned as is. An interpolation that is a whole value and names an absolute key (`${task.normalize}`) is
    replaced by that key's value; others stay strings. A missing value (`???`) becomes None."""
    seen = {} if _seen is None else _seen
    if isinstance(obj, (torch.Tensor, str, bytes, int, float, bool, type(None))):
        return obj
    if id(obj) in seen:
        return seen[id(obj)]
    if isinstance(obj, (_OmegaDict, _OmegaList)):
        content = _state_get(obj, "_content")
        container = dict if isinstance(obj, _OmegaDict) else list
        if not isinstance(content, container):
            return _missing(content)
        out: Any = container()
        seen[id(obj)] = out
        if container is dict:
            for key, value in content.items():
                out[key] = plain_config(value, seen, True)
        else:
            out.extend(plain_config(value, seen, True) for value in content)
        if not _inside:  # the root of one config tree: interpolations are relative to it
            _resolve_interpolations(out, out)
        return out
    if isinstance(obj, _OmegaValue):
        return _missing(plain_config(_state_get(obj, "_val"), seen, True))
    if isinstance(obj, _Inert):
        return obj.pickled_name  # a bare type reference outside any metadata
    if isinstance(obj, dict):  # converted in place: a state dict comes back as the same object
        seen[id(obj)] = obj
        for key, value in obj.items():
            obj[key] = plain_config(value, seen, _inside)
        return obj
    if isinstance(obj, list):
        seen[id(obj)] = obj
        obj[:] = [plain_config(v, seen, _inside) for v in obj]
        return obj
    if isinstance(obj, tuple):
        return tuple(plain_config(v, seen, _inside) for v in obj)
    if isinstance(obj, argparse.Namespace):
        seen[id(obj)] = obj
        for key, value in vars(obj).items():
            setattr(obj, key, plain_config(value, seen, _inside))
        return obj
    return obj


_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)\}")


def _resolve_interpolations(node: Any, root: Any, depth: int = 0) -> None:
    """In place: each value that is exactly `${a.b.c}` becomes root[a][b][c] when that exists (chains of up to
    8 interpolations are followed; anything else, including resolver calls, stays as written)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, (dict, list)):
            if depth < 64:
                _resolve_interpolations(value, root, depth + 1)
            continue
        for _ in range(8):
            m = _INTERPOLATION.fullmatch(value) if isinstance(value, str) else None
            if m is None:
                break
            target: Any = root
            for part in m[1].split("."):
                target = target.get(part, _UNSET) if isinstance(target, dict) else _UNSET
            if target is _UNSET or isinstance(target, (dict, list)):
                break
            value = target
        node[key] = value


_UNSET = object()


def _missing(value: Any) -> Any:
    return None if value == "???" else value


# ---------------------------------------------------------------------------------------------- loading
def allowed_globals() -> list[Any]:
    """The explicit allow-list passed to `torch.serialization.safe_globals`."""
    return [argparse.Namespace, *_numpy_allow_list(), *_OMEGACONF_ALLOWED]


def _allowed_names() -> set[str]:
    """Names the restricted unpickler accepts: ours and torch's own (tensor rebuild functions, OrderedDict...)."""
    names = set()
    for g in allowed_globals():
        names.add(g[1] if isinstance(g, tuple) else f"{g.__module__}.{g.__qualname__}")
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        names |= set(_get_allowed_globals())
    except (ImportError, AttributeError):  # private API: without it, torch's own names may be listed too
        pass
    return names


def _file_kind(path: Path) -> str:
    """'zip' (torch's default format), 'legacy' (a bare pickle stream) or why the file is neither."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80" and len(head) > 1 and 0 < head[1] <= pickle.HIGHEST_PROTOCOL:
        return "legacy"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    return "not-pickle"


def _pickle_bytes(path: Path) -> tuple[str, bytes]:
    """The file's kind and the bytes of its pickle(s): data.pkl of a zip, the whole file of a legacy one."""
    kind = _file_kind(path)
    if kind == "zip":
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                return kind, zf.read(names[0]) if names else b""
        except (zipfile.BadZipFile, OSError, KeyError):
            return kind, b""
    return kind, path.read_bytes() if kind == "legacy" else b""


def pickle_globals(path: str | os.PathLike) -> list[str]:
    """Every `module.name` global a torch checkpoint's pickle refers to, found by reading its opcodes (nothing is
    executed). Legacy (non-zip) files hold several pickles in a row before the raw tensor data: all are read."""
    kind, data = _pickle_bytes(Path(path))
    if kind not in ("zip", "legacy"):
        return []
    from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING

    found: list[str] = []
    stream = io.BytesIO(data)
    for _ in range(5 if kind == "legacy" else 1):
        strings: list[str] = []
        try:
            for op, arg, _pos in pickletools.genops(stream):
                if op.name == "GLOBAL":
                    module, name = str(arg).split(" ", 1)
                    module, name = NAME_MAPPING.get((module, name), (IMPORT_MAPPING.get(module, module), name))
                    found.append(f"{module}.{name}")
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
        except Exception:  # the raw storage bytes after the last pickle, or a truncated file
            break
    return list(dict.fromkeys(found))


_NOT_PICKLE = {
    "safetensors": "is a safetensors file, not a pickled torch checkpoint",
    "not-pickle": "is not a torch checkpoint: neither a zip archive nor a pickle (a text or HTML page, or "
                  "another format?)",
}


def _refusal(path: Path, names: list[str]) -> CheckpointError:
    fairseq = [n for n in names if n.startswith("fairseq.")]
    if fairseq:
        return CheckpointError(
            f"refusing to load {path}: the pickle stores objects of fairseq's own classes ({', '.join(fairseq[:6])}), "
            "which only fairseq's code can rebuild; w2v2 does not run code from checkpoints",
            hint="load it once with fairseq and save it with the config as plain data "
            "(OmegaConf.to_container(cfg)); fairseq has done so itself since 2021",
        )
    what_found = (f"references {', '.join(names)}, which is not on the allow-list of plain data types"
                  if names else "uses pickle instructions that the safe loader does not accept")
    return CheckpointError(
        f"refusing to load {path}: the pickle {what_found}; loading it could run code",
        hint="only tensors, plain containers, argparse.Namespace, numpy scalars and OmegaConf configs are read; "
        "if you trust the file, re-save its weights as safetensors in its own framework",
    )


def load_pickled(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """Loads a torch-pickled file with the restricted unpickler; CheckpointError on anything unexpected.

    OmegaConf configs in the file come back as plain dicts and lists (see `plain_config`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist" if not path.exists() else f"{what} {path} is not a file")
    try:
        kind = _file_kind(path)
    except OSError as err:
        raise CheckpointError(f"cannot read {what} {path}: {err.strerror}") from None
    if kind in _NOT_PICKLE:
        hint = ("a model directory with model.safetensors is read by w2v2 directly" if kind == "safetensors"
                else "check that the download finished and that this is the .pt file")
        raise CheckpointError(f"{path} {_NOT_PICKLE[kind]}", hint=hint)
    try:
        with torch.serialization.safe_globals(allowed_globals()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "Weights only load failed" in text or "WeightsUnpickler" in text:
            allowed = _allowed_names()
            names = [n for n in pickle_globals(path) if n not in allowed]
            names = names or sorted(set(re.findall(r"GLOBAL ([\w.]+)", text)) - allowed)
            if names or "GLOBAL" in text or "reduce" in text or "allowlisted" in text:
                raise _refusal(path, names) from None
        first = text.split("Please file an issue")[0].strip().splitlines()
        raise CheckpointError(f"{path} is not a readable torch checkpoint (truncated or corrupted?): "
                              f"{first[-1][:300] if first else 'unpickling failed'}") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, KeyError, TypeError, IndexError) as err:
        first = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint (truncated or corrupted?): {first}",
        ) from None
    return plain_config(state)

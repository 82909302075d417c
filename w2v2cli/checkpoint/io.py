"""Our checkpoint format: a directory with `model.safetensors` and `config.yaml`.

    >>> save_checkpoint("exp/base/ckpt", model, cfg, kind="pretrain", provenance={"step": 1000})
    >>> ckpt = load_checkpoint("exp/base/ckpt", kind="encoder")   # a Wav2Vec2Model from any kind

`config.yaml` holds `model:` (the ModelConfig), `kind:` (pretrain | ctc | encoder), `vocab:` (Vocabulary or
null), `provenance:` (where the weights came from) and `train:` (the resolved training config or null).
Loading reads YAML with `yaml.safe_load` and weights with safetensors: nothing is unpickled. A save writes a
complete new directory beside the target and swaps it in with one rename, so a crash leaves either the old
checkpoint or the new one, never half of one. FSDP runs write sharded checkpoints (`shards.py`: one file per
rank, the same atomic swap via `finish_sharded_checkpoint`); `load_checkpoint` joins their shards in memory and
`consolidate_checkpoint` writes the joined one. The converters (fairseq.py, hf_dir.py) build on this module;
`formats.py` dispatches between them, so nothing here imports a converter.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from w2v2cli.checkpoint.shards import INDEX_FILE, consolidated_state, is_sharded
from w2v2cli.config import from_dict, to_dict
from w2v2cli.errors import CheckpointError, ConfigError
from w2v2cli.model.config import ModelConfig
from w2v2cli.vocab import Vocabulary, check_vocab_size

FORMAT_NAME = "w2v2-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
KINDS = ("pretrain", "ctc", "encoder")
ENCODER_PREFIX = "wav2vec2."


@dataclasses.dataclass
class LoadedCheckpoint:
    """A model with everything needed to use it. `model` is in eval mode on the requested device."""

    model: nn.Module
    cfg: ModelConfig
    kind: str
    vocab: Vocabulary | None
    provenance: dict[str, Any]
    train_config: dict[str, Any] | None
    path: Path


@dataclasses.dataclass
class ImportedModel:
    """Weights converted to our names, with the config, before a model is built (see fairseq.py, hf_dir.py)."""

    cfg: ModelConfig
    kind: str
    state_dict: dict[str, torch.Tensor]
    vocab: Vocabulary | None
    provenance: dict[str, Any]


# ---------------------------------------------------------------------------------------------- saving
def save_checkpoint(
    dir: str | os.PathLike,
    model: nn.Module,
    cfg: ModelConfig,
    kind: str,
    vocab: Vocabulary | None = None,
    provenance: dict[str, Any] | None = None,
    train_config: Any = None,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Writes `dir/` atomically (model.safetensors, config.yaml, extra files); returns its path.

    `model` may also be a plain state dict. `train_config` may be a dataclass or a dict.
    """
    dest = Path(dir)
    state = model if isinstance(model, dict) else _unwrap(model).state_dict()
    meta = _meta(dest, cfg, kind, vocab, provenance, train_config, extra_files)

    def write(tmp: Path) -> None:
        save_weights(state, tmp / WEIGHTS_FILE)
        _write_synced(tmp / CONFIG_FILE, yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).encode("utf-8"))
        for name, data in (extra_files or {}).items():
            _write_synced(tmp / name, data)

    write_dir_atomically(dest, write)
    return dest


def _meta(dest: Path, cfg: ModelConfig, kind: str, vocab: Vocabulary | None, provenance: dict[str, Any] | None,
          train_config: Any, extra_files: dict[str, bytes] | None) -> dict[str, Any]:
    """The content of config.yaml (after checking kind, vocabulary size and the extra file names)."""
    _check_kind(kind)
    if kind == "ctc":
        check_vocab_size(vocab, cfg.vocab_size, f"cannot save {dest}")
    for name in extra_files or {}:
        if name in (WEIGHTS_FILE, CONFIG_FILE, INDEX_FILE) or "/" in name or name.startswith("."):
            raise CheckpointError(f"cannot save {dest}: bad extra file name {name!r}")
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "kind": kind,
        "model": to_dict(cfg),
        "vocab": vocab.to_dict() if vocab is not None else None,
        "provenance": to_dict(provenance or {}),
        "train": to_dict(train_config) if train_config is not None else None,
    }


def sharded_tmp_dir(dest: str | os.PathLike) -> Path:
    """The temporary directory every rank writes its shards into before `finish_sharded_checkpoint` swaps it in
    (the same name on every rank; `.NAME.tmp-*` as every interrupted save's leftovers, which runs remove)."""
    dest = Path(dest)
    return dest.parent / f".{dest.name}.tmp-shards"


def finish_sharded_checkpoint(dest: str | os.PathLike, index: bytes, cfg: ModelConfig, kind: str,
                              vocab: Vocabulary | None = None, provenance: dict[str, Any] | None = None,
                              train_config: Any = None, extra_files: dict[str, bytes] | None = None) -> Path:
    """Rank 0, after every rank wrote its shards (`shards.write_shard`) into `sharded_tmp_dir(dest)`: adds
    shards.json, config.yaml and the extra files, then swaps the directory in atomically, as `save_checkpoint`
    does. A filesystem error is a CheckpointError naming `dest`; the temporary directory is then removed."""
    from safetensors import SafetensorError

    dest = Path(dest)
    tmp = sharded_tmp_dir(dest)
    meta = _meta(dest, cfg, kind, vocab, provenance, train_config, extra_files)
    try:
        _write_synced(tmp / INDEX_FILE, index)
        _write_synced(tmp / CONFIG_FILE, yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).encode("utf-8"))
        for name, data in (extra_files or {}).items():
            _write_synced(tmp / name, data)
        _fsync_dir(tmp)
        _swap_into_place(tmp, dest)
        _fsync_dir(dest.parent)
    except (OSError, SafetensorError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = err.strerror if isinstance(err, OSError) and err.strerror else " ".join(str(err).split())
        raise CheckpointError(f"cannot write {dest}: {reason}" + (" (the previous one is intact)" if
                                                                   dest.exists() else "")) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def consolidate_checkpoint(src: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Writes a sharded checkpoint (FSDP) as our normal one: model.safetensors (the shards joined) and config.yaml
    with the same model config, kind, vocabulary and provenance. Loadable by one process, by DDP and by
    `w2v2 export hf`; the optimizer state stays behind (it resumes only the sharded run)."""
    src = resolve_checkpoint_dir(src)
    if not is_sharded(src):
        raise CheckpointError(f"{src} is not a sharded checkpoint (no {INDEX_FILE})",
                              hint="only checkpoints of runs with distributed.fsdp=true need consolidating")
    meta = read_checkpoint_meta(src)
    cfg = from_dict(ModelConfig, meta["model"], source=f"{src / CONFIG_FILE}: model")
    vocab = Vocabulary.from_dict(meta["vocab"], source=f"{src / CONFIG_FILE}: vocab") if meta.get("vocab") else None
    provenance = {**(meta.get("provenance") or {}), "consolidated_from": str(src)}
    return save_checkpoint(dest, consolidated_state(src), cfg, meta["kind"], vocab=vocab, provenance=provenance,
                           train_config=meta.get("train"))


def _write_synced(path: Path, data: bytes) -> None:
    """Writes and fsyncs: after a power cut the directory rename never points at an empty file."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_weights(state: dict[str, torch.Tensor], path: Path) -> None:
    """state dict -> safetensors (contiguous CPU copies; tensors sharing storage are written separately)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    save_file(tensors, str(path), metadata={"format": "pt"})
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_dir_atomically(dest: Path, write, marker: str = CONFIG_FILE) -> None:
    """Calls `write(tmp_dir)`, then puts `tmp_dir` in place of `dest` in one step.

    On failure the temporary directory is removed and `dest` is untouched; a filesystem error (disk full,
    permission, read-only) is a CheckpointError naming `dest`. An existing `dest` is only
    replaced when it is empty or holds `marker` (i.e. it is a previous output of the same kind), so a
    mistyped path never wipes an unrelated directory.
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise CheckpointError(f"cannot write directory {dest}: a file with that name exists")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / marker).is_file():
        raise CheckpointError(
            f"refusing to replace {dest}: it is not empty and holds no {marker}",
            hint="choose a new output directory",
        )
    from safetensors import SafetensorError

    tmp = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        write(tmp)
        _fsync_dir(tmp)
        _swap_into_place(tmp, dest)
        _fsync_dir(dest.parent)
    except (OSError, SafetensorError) as err:  # disk full, permission, read-only: one line naming the path
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        reason = err.strerror if isinstance(err, OSError) and err.strerror else " ".join(str(err).split())
        raise CheckpointError(f"cannot write {dest}: {reason}" + (" (the previous one is intact)" if
                                                                   dest.exists() else ""),
                              hint=f"free space on or fix access to {dest.parent}, then run again (with "
                                   f"--resume auto when training)") from err
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swaps two paths with Linux renameat2(RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _swap_into_place(tmp: Path, dest: Path) -> None:
    if not dest.exists():
        os.rename(tmp, dest)
        return
    if _exchange(tmp, dest):  # tmp now holds the previous checkpoint
        shutil.rmtree(tmp, ignore_errors=True)
        return
    # fallback: two renames; between them the old checkpoint sits in a `.old-` directory beside dest
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    os.rmdir(old)
    os.rename(dest, old)
    os.rename(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def _unwrap(model: nn.Module) -> nn.Module:
    """DDP / torch.compile wrappers -> the module itself (their state-dict keys carry prefixes)."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise CheckpointError(f"unknown checkpoint kind {kind!r}", hint=f"one of {', '.join(KINDS)}")


# ---------------------------------------------------------------------------------------------- loading
def read_checkpoint_meta(dir: str | os.PathLike) -> dict[str, Any]:
    """Reads and checks `config.yaml` of our checkpoint directory (no weights)."""
    path = resolve_checkpoint_dir(dir)
    cfg_path = path / CONFIG_FILE
    try:
        meta = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    except OSError as err:
        raise CheckpointError(f"cannot read {cfg_path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise CheckpointError(f"{cfg_path} is not valid YAML (corrupted checkpoint?): {err}") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"{cfg_path}: expected a mapping, got {type(meta).__name__}")
    for key in ("kind", "model"):
        if key not in meta:
            raise CheckpointError(f"{cfg_path}: missing key '{key}' (not a w2v2 checkpoint or a partial one)")
    if meta.get("format", FORMAT_NAME) != FORMAT_NAME:
        raise CheckpointError(f"{cfg_path}: format is {meta.get('format')!r}, expected {FORMAT_NAME!r}")
    if int(meta.get("version", 1)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{cfg_path}: checkpoint format version {meta['version']} is newer than this w2v2 understands",
            hint="upgrade w2v2",
        )
    _check_kind(meta["kind"])
    return meta


def resolve_checkpoint_dir(spec: str | os.PathLike) -> Path:
    """CKPT dir (or its model.safetensors / config.yaml) -> the directory; clear errors for other things."""
    path = Path(spec)
    if path.is_file() and path.name in (WEIGHTS_FILE, CONFIG_FILE):
        path = path.parent
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_file():
        hint = "import it first: w2v2 import fairseq FILE.pt OUT" if path.suffix == ".pt" else None
        raise CheckpointError(f"{path} is a file; a w2v2 checkpoint is a directory with {CONFIG_FILE}", hint=hint)
    if not (path / CONFIG_FILE).is_file():
        if (path / "config.json").is_file():
            raise CheckpointError(
                f"{path} is a transformers directory, not a w2v2 checkpoint", hint=f"w2v2 import hf {path} OUT"
            )
        leftovers = sorted(p.name for p in path.parent.glob(f".{path.name}.tmp-*"))
        hint = f"an interrupted save left {leftovers[0]} beside it" if leftovers else None
        raise CheckpointError(f"{path} has no {CONFIG_FILE}: not a w2v2 checkpoint, or an incomplete one", hint=hint)
    if not (path / WEIGHTS_FILE).is_file() and not is_sharded(path):
        raise CheckpointError(f"{path} has no {WEIGHTS_FILE}: incomplete checkpoint")
    return path


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Reads a safetensors file; CheckpointError naming the file if it is truncated or corrupted."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"cannot read weights {path} (truncated or corrupted?): {err}") from None


def load_checkpoint(dir_or_file: str | os.PathLike, kind: str | None = None, device: str = "cpu") -> LoadedCheckpoint:
    """Loads our checkpoint directory. `kind`: None = as saved; "encoder" works from every kind;
    "ctc" needs a CTC checkpoint and "pretrain" a pretraining one."""
    path = resolve_checkpoint_dir(dir_or_file)
    meta = read_checkpoint_meta(path)
    source = str(path / CONFIG_FILE)
    try:
        cfg = from_dict(ModelConfig, meta["model"], source=f"{source}: model")
    except ConfigError as err:
        raise CheckpointError(err.message, hint=err.hint) from None
    vocab = Vocabulary.from_dict(meta["vocab"], source=f"{source}: vocab") if meta.get("vocab") else None
    # a sharded checkpoint (FSDP run) is joined in memory; `w2v2 consolidate` writes the joined one
    state = consolidated_state(path) if is_sharded(path) and not (path / WEIGHTS_FILE).is_file() else \
        load_weights(path / WEIGHTS_FILE, device="cpu")
    loaded = build_loaded(state, cfg, meta["kind"], vocab, kind, device, where=str(path))
    loaded.provenance = dict(meta.get("provenance") or {})
    loaded.train_config = meta.get("train")
    loaded.path = path
    return loaded


def convert_kind(state: dict[str, torch.Tensor], stored: str, wanted: str, where: str) -> dict[str, torch.Tensor]:
    """Selects the weights for `wanted` from a state dict of kind `stored`."""
    _check_kind(wanted)
    if stored == wanted:
        return state
    if wanted == "encoder":
        return {k[len(ENCODER_PREFIX):]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
    if wanted == "ctc":
        raise CheckpointError(
            f"{where} is a {stored} checkpoint, not a CTC (fine-tuned) one",
            hint="fine-tune it first (w2v2 finetune --init ...), or load it with kind='encoder'",
        )
    raise CheckpointError(
        f"{where} is a {stored} checkpoint; the pretraining heads (quantizer, project_q, final_proj) are not in it",
        hint="continue pretraining from a pretraining checkpoint, or load it with kind='encoder'",
    )


def build_loaded(
    state: dict[str, torch.Tensor], cfg: ModelConfig, stored_kind: str, vocab: Vocabulary | None,
    kind: str | None, device: str | torch.device, where: str,
) -> LoadedCheckpoint:
    """Builds the model for `kind` (default: the stored kind) and loads `state` into it strictly."""
    from w2v2cli.model import build_model

    wanted = kind or stored_kind
    state = convert_kind(state, stored_kind, wanted, where)
    if wanted == "ctc":
        if cfg.vocab_size <= 0:
            raise CheckpointError(f"{where}: CTC checkpoint with model.vocab_size = {cfg.vocab_size}")
        check_vocab_size(vocab, cfg.vocab_size, where)
    try:
        model = build_model(cfg, wanted)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{where}: cannot build a {wanted} model from its config: {err}") from err
    load_state_strict(model, state, where)
    model.to(device).eval()
    return LoadedCheckpoint(model, cfg, wanted, vocab, {}, None, Path(where))


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """load_state_dict with every missing, unexpected or wrongly shaped key reported by name."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} weights ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})")
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected weights ({', '.join(unexpected[:4])}{', ...' if len(unexpected) > 4 else ''})"
        )
    if shapes:
        problems.append(f"shape mismatch ({'; '.join(shapes[:4])}{'; ...' if len(shapes) > 4 else ''})")
    if problems:
        raise CheckpointError(f"{where}: weights do not fit the model config: {'; '.join(problems)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


# ---------------------------------------------------------------------------------------------- any source
def detect_format(spec: str | os.PathLike) -> str:
    """'w2v2' (our dir), 'hf' (transformers dir with config.json) or 'fairseq' (a .pt file)."""
    path = Path(spec)
    if path.is_file() and path.name in (WEIGHTS_FILE, CONFIG_FILE):
        path = path.parent
    if path.is_dir():
        if (path / CONFIG_FILE).is_file():
            return "w2v2"
        if (path / "config.json").is_file():
            return "hf"
        raise CheckpointError(
            f"{path}: neither a w2v2 checkpoint ({CONFIG_FILE}) nor a transformers directory (config.json)"
        )
    if path.is_file() and path.suffix.lower() == ".onnx":
        raise CheckpointError(f"{path} is an ONNX export (w2v2 export onnx), not a checkpoint",
                              hint="w2v2 decode, transcribe and align run it; other commands need the checkpoint "
                                   "it was exported from")
    if path.is_file():
        return "fairseq"
    raise CheckpointError(f"checkpoint {path} does not exist")


# ---------------------------------------------------------------------------------------------- summary
def part_of(name: str) -> str:
    """Parameter name -> the model part it belongs to (for `w2v2 info`)."""
    if name.startswith(ENCODER_PREFIX):
        name = name[len(ENCODER_PREFIX):]
    parts = name.split(".")
    if parts[0] == "encoder" and len(parts) > 1:
        return "encoder." + parts[1]
    return parts[0]


PART_ORDER = ["feature_extractor", "feature_projection", "mask_embedding", "encoder.pos_conv", "encoder.norm",
              "encoder.layers", "quantizer", "project_q", "final_proj", "lm_head"]


def parameter_counts(model: nn.Module | dict[str, torch.Tensor]) -> dict[str, int]:
    """Number of parameters per part, in model order (feature_extractor, feature_projection, ...)."""
    items = model.items() if isinstance(model, dict) else _unwrap(model).named_parameters()
    counts: dict[str, int] = {}
    for name, tensor in items:
        part = part_of(name)
        counts[part] = counts.get(part, 0) + tensor.numel()
    rank = {part: i for i, part in enumerate(PART_ORDER)}
    return dict(sorted(counts.items(), key=lambda kv: rank.get(kv[0], len(rank))))

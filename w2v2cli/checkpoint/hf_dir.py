"""transformers model directories: read one into our names, write one from our checkpoint.

    >>> imported = read_hf_dir("wav2vec2-base-960h/")         # config.json + model.safetensors (+ vocab.json)
    >>> export_hf("exp/ft/ckpt", "exp/ft/hf")                  # loads with Wav2Vec2ForCTC/Processor.from_pretrained

Reading accepts `Wav2Vec2ForPreTraining`, `Wav2Vec2Model` and `Wav2Vec2ForCTC` directories with weights in
`model.safetensors` (single or sharded) or `pytorch_model.bin` (read with `torch.load(weights_only=True)`).
The key and config mapping itself lives in `hf.py`. Writing produces config.json, model.safetensors and
preprocessor_config.json, plus vocab.json, tokenizer_config.json and special_tokens_map.json for CTC models.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from w2v2cli.checkpoint.hf import (
    ARCHITECTURES,
    BESTRQ_HINT,
    BESTRQ_NO_COUNTERPART,
    FBANK_HINT,
    FBANK_NO_COUNTERPART,
    config_from_hf,
    config_to_hf,
    hf_kind,
    state_dict_from_hf,
    state_dict_to_hf,
)
from w2v2cli.checkpoint.io import (
    ImportedModel,
    LoadedCheckpoint,
    load_checkpoint,
    load_weights,
    save_weights,
    write_dir_atomically,
)
from w2v2cli.checkpoint.safe_pickle import load_pickled
from w2v2cli.errors import CheckpointError
from w2v2cli.vocab import Vocabulary

KIND_TO_ARCH = {kind: arch for arch, kind in ARCHITECTURES.items()}
SAMPLE_RATE = 16000


def _read_json(path: Path, required: bool = True) -> dict[str, Any] | None:
    if not path.is_file():
        if required:
            raise CheckpointError(f"{path} does not exist")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not readable JSON: {err}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    """All weights of a transformers directory (safetensors preferred, sharded or not; else pytorch_model.bin)."""
    single = directory / "model.safetensors"
    index = directory / "model.safetensors.index.json"
    if single.is_file():
        return load_weights(single)
    if index.is_file():
        weight_map = (_read_json(index) or {}).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{index}: no 'weight_map'")
        out: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            out.update(load_weights(directory / shard))
        missing = [k for k in weight_map if k not in out]
        if missing:
            raise CheckpointError(f"{index}: shards lack {len(missing)} listed weights ({', '.join(missing[:3])})")
        return out
    binary = directory / "pytorch_model.bin"
    if binary.is_file():
        state = load_pickled(binary, what="weights file")
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{binary}: expected a state dict of tensors")
        return state
    raise CheckpointError(
        f"{directory} has no weights (model.safetensors, model.safetensors.index.json or pytorch_model.bin)"
    )


def read_hf_vocab(directory: Path, vocab_size: int) -> Vocabulary:
    """vocab.json (+ the special tokens of tokenizer_config.json) -> Vocabulary with `vocab_size` tokens."""
    vocab_path = directory / "vocab.json"
    if not vocab_path.is_file():
        raise CheckpointError(
            f"{directory} holds a Wav2Vec2ForCTC model but no vocab.json", hint="copy the tokenizer files beside it"
        )
    tok_cfg = _read_json(directory / "tokenizer_config.json", required=False) or {}
    specials = _read_json(directory / "special_tokens_map.json", required=False) or {}

    def special(name: str, default: str | None) -> str | None:
        value = tok_cfg.get(name, specials.get(name, default))
        if isinstance(value, dict):  # AddedToken serialisation
            value = value.get("content", default)
        return value

    try:
        vocab = Vocabulary.from_hf_vocab(
            _read_json(vocab_path), pad_token=special("pad_token", "<pad>") or "<pad>",
            word_delimiter_token=special("word_delimiter_token", "|"), unk_token=special("unk_token", "<unk>"),
        )
    except ValueError as err:
        raise CheckpointError(f"{vocab_path}: {err}") from None
    if len(vocab) != vocab_size:
        raise CheckpointError(f"{vocab_path} has {len(vocab)} tokens but the model has {vocab_size} outputs")
    return vocab


def read_hf_dir(directory: str | os.PathLike) -> ImportedModel:
    """A transformers wav2vec2 directory -> our config, kind, state dict and vocabulary (no model built)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is not a directory (expected a transformers model directory)")
    hf_cfg = _read_json(directory / "config.json")
    preprocessor = _read_json(directory / "preprocessor_config.json", required=False)
    weights = read_hf_weights(directory)
    archs = [a for a in hf_cfg.get("architectures") or [] if a in ARCHITECTURES]
    if hf_cfg.get("architectures") and not archs:
        raise CheckpointError(
            f"{directory}/config.json: architecture {hf_cfg['architectures'][0]} is not supported",
            hint=f"supported: {', '.join(ARCHITECTURES)}",
        )
    kind = ARCHITECTURES[archs[0]] if archs else hf_kind(weights)
    if kind == "ctc" and "Wav2Vec2ForCTC" not in (hf_cfg.get("architectures") or []):
        hf_cfg = dict(hf_cfg, architectures=["Wav2Vec2ForCTC"])  # config_from_hf reads vocab_size for CTC only
    cfg = config_from_hf(hf_cfg, preprocessor)
    state = state_dict_from_hf(weights, cfg, kind)
    vocab = read_hf_vocab(directory, cfg.vocab_size) if kind == "ctc" else None
    provenance = {"source": "transformers", "path": str(directory.resolve()), "architecture": KIND_TO_ARCH[kind]}
    return ImportedModel(cfg=cfg, kind=kind, state_dict=state, vocab=vocab, provenance=provenance)


def hf_files(loaded: LoadedCheckpoint) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(transformers state dict, {file name: JSON text}) for a loaded checkpoint."""
    cfg, kind, vocab = loaded.cfg, loaded.kind, loaded.vocab
    arch = KIND_TO_ARCH[kind]
    if kind == "ctc" and vocab is None:
        raise CheckpointError(f"{loaded.path}: CTC checkpoint without a vocabulary cannot be exported")
    if vocab is not None and vocab.kind != "letters":
        raise CheckpointError(
            f"{loaded.path}: SentencePiece vocabularies have no transformers Wav2Vec2CTCTokenizer equivalent",
            hint="export works for letter vocabularies",
        )
    if kind == "pretrain" and cfg.objective == "bestrq":  # before the front end: the objective is the first reason
        raise CheckpointError(f"{loaded.path}: {BESTRQ_NO_COUNTERPART}", hint=BESTRQ_HINT)
    if cfg.extractor_mode == "fbank":
        raise CheckpointError(f"{loaded.path}: {FBANK_NO_COUNTERPART}", hint=FBANK_HINT)
    state = state_dict_to_hf(loaded.model.state_dict(), cfg)
    config = config_to_hf(cfg, vocab if kind == "ctc" else None, arch)
    dump = lambda data: json.dumps(data, indent=2, ensure_ascii=False) + "\n"  # noqa: E731
    files = {
        "config.json": dump(config),
        "preprocessor_config.json": dump({
            "feature_extractor_type": "Wav2Vec2FeatureExtractor",
            "feature_size": 1,
            "sampling_rate": SAMPLE_RATE,
            "padding_value": 0.0,
            "padding_side": "right",
            "do_normalize": bool(cfg.normalize_audio),
            # group-norm models were trained without padding masks: transformers' advice is not to pass one
            "return_attention_mask": cfg.extractor_mode == "layer_norm",
            "processor_class": "Wav2Vec2Processor",
        }),
    }
    if kind == "ctc":
        mapping, specials = vocab.to_hf_vocab()
        special_map = {k: v for k, v in specials.items() if v is not None and k != "word_delimiter_token"}
        files["vocab.json"] = dump(mapping)
        files["special_tokens_map.json"] = dump(special_map)
        files["tokenizer_config.json"] = dump({
            "tokenizer_class": "Wav2Vec2CTCTokenizer",
            "processor_class": "Wav2Vec2Processor",
            **{k: v for k, v in specials.items()},
            "replace_word_delimiter_char": " ",
            "do_lower_case": False,
            "clean_up_tokenization_spaces": False,
        })
    return state, files


def write_hf_dir(loaded: LoadedCheckpoint, out: str | os.PathLike) -> Path:
    """Writes the transformers directory `out` atomically."""
    out = Path(out)
    state, files = hf_files(loaded)

    def write(tmp: Path) -> None:
        save_weights(state, tmp / "model.safetensors")
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")

    write_dir_atomically(out, write, marker="config.json")
    return out


def export_hf(ckpt: str | os.PathLike, out: str | os.PathLike) -> LoadedCheckpoint:
    """Our checkpoint directory -> a transformers directory; returns the loaded checkpoint."""
    loaded = load_checkpoint(ckpt)
    write_hf_dir(loaded, out)
    return loaded

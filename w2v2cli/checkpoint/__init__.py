"""Checkpoints: our safetensors + YAML directories, and converters for fairseq and transformers files.

    >>> from w2v2cli.checkpoint import save_checkpoint, load_checkpoint, load_model_any
    >>> save_checkpoint("exp/ckpt", model, cfg, kind="ctc", vocab=vocab)
    >>> ckpt = load_model_any("wav2vec_small_960h.pt", dict_path="dict.ltr.txt")
    >>> logits, frames = ckpt.model(waveforms)

Loading our checkpoints never unpickles; fairseq `.pt` and `pytorch_model.bin` files are read with
`torch.load(weights_only=True)` and an explicit allow-list (`safe_pickle`).
"""

from w2v2cli.checkpoint.io import (
    ImportedModel,
    LoadedCheckpoint,
    detect_format,
    load_checkpoint,
    load_weights,
    parameter_counts,
    read_checkpoint_meta,
    save_checkpoint,
    save_weights,
    write_dir_atomically,
)
from w2v2cli.checkpoint.formats import import_checkpoint, load_model_any

__all__ = [
    "ImportedModel", "LoadedCheckpoint", "detect_format", "import_checkpoint", "load_checkpoint", "load_model_any",
    "load_weights", "parameter_counts", "read_checkpoint_meta", "save_checkpoint", "save_weights",
    "write_dir_atomically",
]

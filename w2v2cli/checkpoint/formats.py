"""Any checkpoint source: ours, a transformers directory or a fairseq `.pt`, loaded or imported alike.

    >>> ckpt = load_model_any("wav2vec_small_960h.pt")            # ours, a transformers dir or a fairseq .pt
    >>> import_checkpoint("facebook-wav2vec2-base/", "exp/base", fmt="hf")

Layering inside checkpoint/: io.py (our format) <- fairseq.py, hf_dir.py (converters) <- formats.py (this
dispatcher). Nothing imports upwards, so there is no import circle.
"""

from __future__ import annotations

import os
from pathlib import Path

from w2v2cli.checkpoint.fairseq import read_fairseq
from w2v2cli.checkpoint.hf_dir import read_hf_dir
from w2v2cli.checkpoint.io import LoadedCheckpoint, build_loaded, detect_format, load_checkpoint, save_checkpoint
from w2v2cli.errors import CheckpointError


def load_model_any(
    spec: str | os.PathLike, kind: str | None = None, device: str = "cpu", dict_path: str | os.PathLike | None = None,
) -> LoadedCheckpoint:
    """Loads our checkpoint dir, a transformers dir or a fairseq `.pt` (converted in memory)."""
    fmt = detect_format(spec)
    if fmt == "w2v2":
        return load_checkpoint(spec, kind=kind, device=device)
    imported = read_hf_dir(spec) if fmt == "hf" else read_fairseq(spec, dict_path=dict_path)
    loaded = build_loaded(imported.state_dict, imported.cfg, imported.kind, imported.vocab, kind, device, str(spec))
    loaded.provenance = dict(imported.provenance)
    return loaded


def import_checkpoint(
    source: str | os.PathLike, out: str | os.PathLike, fmt: str, dict_path: str | os.PathLike | None = None,
) -> LoadedCheckpoint:
    """Converts a transformers dir (fmt 'hf') or a fairseq .pt (fmt 'fairseq') into our checkpoint at `out`.

    The converted weights are loaded into our model (strict) before anything is written.
    """
    if fmt == "hf":
        imported = read_hf_dir(source)
    elif fmt == "fairseq":
        imported = read_fairseq(source, dict_path=dict_path)
    else:
        raise CheckpointError(f"unknown import format {fmt!r}", hint="hf or fairseq")
    loaded = build_loaded(imported.state_dict, imported.cfg, imported.kind, imported.vocab, None, "cpu", str(source))
    save_checkpoint(out, loaded.model, loaded.cfg, loaded.kind, vocab=loaded.vocab, provenance=imported.provenance)
    loaded.provenance = dict(imported.provenance)
    loaded.path = Path(out)
    return loaded

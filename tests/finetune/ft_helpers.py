"""Helpers shared by the fine-tuning tests."""

from __future__ import annotations

import shutil
from pathlib import Path

# speed settings for every run in these tests (no DataLoader worker processes, plain progress lines)
FAST = ["data.num_workers=0", "logging.progress=plain", "logging.tensorboard=false", "logging.log_interval=2"]


def copy_subset(src_tsv: Path, dst_tsv: Path, rows: list[int], with_dict: bool = True) -> Path:
    """Rows `rows` of a manifest with its .ltr/.wrd (and dict.ltr.txt) under a new name."""
    dst_tsv.parent.mkdir(parents=True, exist_ok=True)
    root, *entries = src_tsv.read_text(encoding="utf-8").splitlines()
    dst_tsv.write_text("\n".join([root] + [entries[i] for i in rows]) + "\n", encoding="utf-8")
    for ext in ("ltr", "wrd"):
        lines = src_tsv.with_suffix(f".{ext}").read_text(encoding="utf-8").splitlines()
        dst_tsv.with_suffix(f".{ext}").write_text("\n".join(lines[i] for i in rows) + "\n", encoding="utf-8")
    if with_dict:
        shutil.copy(src_tsv.parent / "dict.ltr.txt", dst_tsv.parent / "dict.ltr.txt")
    return dst_tsv

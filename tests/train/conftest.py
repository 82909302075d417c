"""Shared fixtures of the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def few(libri_manifests, tmp_path_factory) -> Path:
    """A manifest of the first 4 training utterances (about 4 x 2-5 s)."""
    lines = Path(libri_manifests["train-clean-100"]).read_text().splitlines()
    path = tmp_path_factory.mktemp("few") / "few.tsv"
    path.write_text("\n".join(lines[:5]) + "\n")
    return path

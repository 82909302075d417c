"""Synthetic corpora laid out exactly like the real ones, shared by the recipe tests (built once per session).

- `ls_full`: a folder holding `LibriSpeech/` with all seven subsets (real espeak-ng / flite speech, 16 kHz FLAC) and
  `librispeech_finetuning/` in Libri-light's limited-supervision layout (`1h/{0..5}/{clean,other}`,
  `9h/{clean,other}`), made of utterances of the synthetic train-clean-100 / train-other-500 (as Libri-light's are
  of LibriSpeech's training audio), with their own `SPK-CHAP.trans.txt`.
- `xlsr_corpus`: a folder holding Common Voice folders `en/ de/ fr/` (48 kHz MP3 + CV tsv files) and MLS folders
  `mls_german/ mls_spanish/` (16 kHz FLAC + transcripts.txt).

Helpers (recipe_env, make_librilight, the toy-scale options) live in recipe_helpers.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recipe_helpers import FULL_SIZES, make_librilight


@pytest.fixture(scope="session")
def ls_full(tmp_path_factory) -> Path:
    from w2v2cli.synth.librispeech import make_librispeech

    root = tmp_path_factory.mktemp("ls-full")
    make_librispeech(root / "LibriSpeech", subsets=FULL_SIZES, seed=7, jobs=2, min_words=3, max_words=8)
    make_librilight(root / "LibriSpeech", root / "librispeech_finetuning")
    return root


@pytest.fixture(scope="session")
def xlsr_corpus(tmp_path_factory) -> Path:
    from w2v2cli.synth.commonvoice import make_commonvoice
    from w2v2cli.synth.mls import make_mls

    root = tmp_path_factory.mktemp("xlsr-corpus")
    make_commonvoice(root / "cv", langs=("en", "de", "fr"), n_speakers=2, utts_per_speaker=3, seed=5, jobs=2,
                     min_words=3, max_words=8)
    make_mls(root / "mls", langs=("de", "es"), n_speakers=2, utts_per_speaker=3, seed=6, jobs=2, min_words=3,
             max_words=8)
    for folder in [*(root / "cv").iterdir(), *(root / "mls").iterdir()]:  # one corpus folder, as --corpus takes
        if folder.is_dir():
            folder.rename(root / folder.name)
    return root

"""The options of a decoding run, each default written once, here: `w2v2 decode` and `w2v2 transcribe` declare
their shared options from `DecodeOptions` (`cli/_options.py`), and the library, the beam search and the recipes
use its defaults.

    >>> cfg = DecodeConfig(decoder="beam", lexicon="exp/lm/lexicon.txt", lm="exp/lm/lm.bin", lm_weight=1.5)
    >>> decode_manifest("exp/ft/best", "data/test.tsv", "exp/decode", cfg)
    >>> BeamSearchDecoder(vocab, DecodeOptions(lexicon="exp/lm/lexicon.txt"))   # reads the beam search's fields
    >>> DecodeOptions().beam_size                                                # 500

`DecodeConfig` (manifests: `w2v2 decode`, `w2v2 align`) and `TranscribeConfig` (files: `w2v2 transcribe`) add
what only their command has. This module imports no torch, so the commands can read the defaults when they
declare their options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from w2v2cli.errors import ConfigError

DECODERS = ("viterbi", "beam")
DTYPES = ("auto", "fp32", "bf16")
BACKENDS = ("auto", "torch", "onnxruntime")  # auto: onnxruntime for a .onnx file (w2v2 export onnx), else torch
AUDIO_EXTENSIONS = ("flac", "wav", "ogg", "opus", "mp3")  # what `w2v2 transcribe` looks for in directories


@dataclass
class DecodeOptions:
    """How to decode: the decoder, its beam search (names follow torchaudio's `ctc_decoder`) and how the model
    runs. The defaults of the beam search are fairseq's usual starting point for a 4-gram."""

    decoder: str = "viterbi"  # viterbi (greedy best path) | beam
    lexicon: str | None = None  # lexicon file (w2v2 lm build); None: lexicon-free search
    lm: str | None = None  # KenLM model (ARPA or binary); None: no language model
    beam_size: int = 500
    beam_size_token: int | None = None  # the N most likely tokens expanded per frame (None: all)
    beam_threshold: float = 50.0  # prune hypotheses this far below the best
    lm_weight: float = 2.0
    word_score: float = -1.0  # added per word (insertion bonus when positive)
    sil_score: float = 0.0
    unk_score: float = -math.inf
    nbest: int = 1
    timestamps: bool = True  # force-align each beam hypothesis for word times and confidences
    batch_seconds: float = 200.0  # padded audio per forward batch
    chunk_seconds: float = 30.0  # files longer than this are decoded in overlapping windows
    chunk_overlap_seconds: float = 2.0  # context added on each side of a window (its frames are dropped)
    device: str = "cpu"
    dtype: str = "fp32"  # fp32 | bf16 | auto (bf16 where the hardware has it: w2v2cli.runtime.resolve_dtype)
    backend: str = "auto"  # what computes the logits: torch | onnxruntime | auto (by the model's suffix)
    threads: int | None = None  # CPU threads of the model, torch's or onnxruntime's (None: one per core)
    progress: bool = True

    def check(self) -> None:
        """ConfigError for inconsistent options (beam options without --decoder beam, ...)."""
        if self.decoder not in DECODERS:
            raise ConfigError(f"--decoder must be 'viterbi' or 'beam', got {self.decoder!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype must be 'auto', 'fp32' or 'bf16', got {self.dtype!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.decoder == "viterbi" and (self.lexicon or self.lm):
            raise ConfigError("--lexicon/--lm are used by the beam decoder", hint="add --decoder beam")
        if self.lm and not self.lexicon:
            raise ConfigError("--lm needs --lexicon (a word LM scores lexicon words)",
                              hint="build both with 'w2v2 lm build TEXT --out DIR'")
        if self.beam_size < 1 or (self.beam_size_token is not None and self.beam_size_token < 1):
            raise ConfigError(f"--beam and --beam-tokens must be >= 1, got {self.beam_size} and "
                              f"{self.beam_size_token}")
        if self.batch_seconds <= 0 or self.chunk_seconds <= 0 or self.chunk_overlap_seconds < 0:
            raise ConfigError("--batch-seconds and --chunk-seconds must be positive, the overlap non-negative")


@dataclass
class DecodeConfig(DecodeOptions):
    """`DecodeOptions` of a manifest run (`w2v2 decode`, `w2v2 align`), plus how many bad audio files it skips."""

    max_bad_files: int = 10  # unreadable / non-finite audio files skipped before the run stops

    def check(self) -> None:
        super().check()
        if self.max_bad_files < 0:
            raise ConfigError(f"--max-bad-files must be >= 0, got {self.max_bad_files}")


@dataclass
class TranscribeConfig(DecodeOptions):
    """`DecodeOptions` plus the file search: extensions (without dots) looked for inside directories."""

    extensions: tuple[str, ...] = AUDIO_EXTENSIONS

"""Decoding CTC emissions: greedy and beam search (lexicon + KenLM), word timestamps, output files.

    >>> from w2v2cli.decode import greedy_decode, BeamSearchDecoder, DecodeOptions, forced_align_words
    >>> hyps = greedy_decode(log_probs, lengths, vocab)
    >>> res = transcribe_files("exp/ft/best", ["recordings/"], TranscribeConfig())   # files, no manifest

The names below are imported when first used, so that `w2v2cli.decode.options` (the decoding options and their
defaults, which the commands read when they declare their options) comes without torch.
"""

from __future__ import annotations

import importlib

_MODULE_OF = {
    "BeamConfig": "ctc", "BeamSearchDecoder": "ctc", "Hypothesis": "ctc", "check_lexicon": "ctc",
    "greedy_decode": "ctc",
    "DecodeConfig": "options", "DecodeOptions": "options", "TranscribeConfig": "options",
    "FRAME_SHIFT": "timestamps", "TokenSpan": "timestamps", "WordSegment": "timestamps",
    "alignment_targets": "timestamps", "forced_align_words": "timestamps", "frame_spans": "timestamps",
    "word_segments": "timestamps",
    "TranscribeResult": "transcribe", "transcribe_files": "transcribe", "write_transcripts": "transcribe",
    "hypothesis_record": "writers", "utterance_ids": "writers", "write_outputs": "writers",
}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)

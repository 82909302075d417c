"""Decoding CTC emissions: greedy and beam search (lexicon + KenLM), word timestamps, output files.

    >>> from w2v2cli.decode import greedy_decode, BeamSearchDecoder, BeamConfig, forced_align_words
    >>> hyps = greedy_decode(log_probs, lengths, vocab)
    >>> res = transcribe_files("exp/ft/best", ["recordings/"], TranscribeConfig())   # files, no manifest
"""

from w2v2cli.decode.ctc import BeamConfig, BeamSearchDecoder, Hypothesis, check_lexicon, greedy_decode
from w2v2cli.decode.timestamps import (
    FRAME_SHIFT,
    TokenSpan,
    WordSegment,
    alignment_targets,
    forced_align_words,
    frame_spans,
    word_segments,
)
from w2v2cli.decode.transcribe import TranscribeConfig, TranscribeResult, transcribe_files, write_transcripts
from w2v2cli.decode.writers import hypothesis_record, utterance_ids, write_outputs

__all__ = [
    "BeamConfig",
    "BeamSearchDecoder",
    "FRAME_SHIFT",
    "Hypothesis",
    "TokenSpan",
    "TranscribeConfig",
    "TranscribeResult",
    "WordSegment",
    "alignment_targets",
    "check_lexicon",
    "forced_align_words",
    "frame_spans",
    "greedy_decode",
    "hypothesis_record",
    "transcribe_files",
    "utterance_ids",
    "word_segments",
    "write_outputs",
    "write_transcripts",
]

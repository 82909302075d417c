"""`w2v2 transcribe`: audio files, directories or a list on stdin -> text, JSON lines, subtitles or CTM.

    w2v2 transcribe exp/ft/best talk.mp3 interviews/                  # path<TAB>transcript lines on stdout
    w2v2 transcribe wav2vec_small_960h.pt clips/ --dict dict.ltr.txt --format jsonl --out clips.jsonl
    find /data -name '*.ogg' | w2v2 transcribe exp/ft/best - --format srt --out subs/
    w2v2 transcribe exp/ft/best talk.flac --decoder beam --lexicon exp/lm/lexicon.txt --lm exp/lm/lm.bin
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from w2v2cli.cli._options import (BatchSeconds, BeamSize, BeamThreshold, BeamTokens, ChunkOverlap, ChunkSeconds,
                                    CtcCheckpoint, Device, Dtype, LanguageModel, Lexicon, LmWeight, Progress, Threads,
                                    WordScore)


def register(app: typer.Typer) -> None:
    @app.command("transcribe")
    def transcribe(
        model: CtcCheckpoint,
        audio: Annotated[list[str], typer.Argument(
            help="Audio files, directories (searched recursively by extension) or '-' for paths on stdin.")],
        fmt: Annotated[str, typer.Option("--format", "-f", help="text (path<TAB>transcript), jsonl (word times "
                                         "and confidences), srt, vtt (subtitles) or ctm.")] = "text",
        out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file (text, jsonl, ctm) or "
                                                    "directory (srt, vtt: one file per audio file); "
                                                    "default: stdout.")] = None,
        dict_path: Annotated[Optional[Path], typer.Option("--dict", help="dict.ltr.txt of a fairseq CTC .pt "
                                                          "(default: beside it).")] = None,
        ext: Annotated[str, typer.Option("--ext", help="Extensions searched for in directories.")]
        = "flac,wav,ogg,opus,mp3",
        decoder: Annotated[str, typer.Option("--decoder", help="viterbi (greedy best path) or beam.")] = "viterbi",
        lexicon: Lexicon = None,
        lm: LanguageModel = None,
        beam: BeamSize = 500,
        beam_tokens: BeamTokens = None,
        beam_threshold: BeamThreshold = 50.0,
        lm_weight: LmWeight = 2.0,
        word_score: WordScore = -1.0,
        batch_seconds: BatchSeconds = 200.0,
        chunk_seconds: ChunkSeconds = 30.0,
        chunk_overlap: ChunkOverlap = 2.0,
        device: Device = "cpu",
        dtype: Dtype = "fp32",
        progress: Progress = True,
        threads: Threads = None,
    ) -> None:
        """Transcribe audio files (any format and sample rate); unreadable files are reported and skipped.

        Example: w2v2 transcribe exp/ft/best recordings/ --format jsonl --out recordings.jsonl

        The exit status is 1 when some files were skipped (the others are still written).
        """
        from w2v2cli.decode.transcribe import (  # torch: import on use
            TranscribeConfig, summary_rows, transcribe_files, write_transcripts,
        )

        from w2v2cli.decode.transcribe import check_output, collect_audio
        from w2v2cli.runtime import configure_runtime

        configure_runtime(threads=threads)

        exts = tuple(e.strip() for e in ext.split(",") if e.strip())
        check_output(fmt, out, 0)
        inputs = [it.path for it in collect_audio(audio, exts, sys.stdin)]  # '-' is read once, here
        check_output(fmt, out, len(inputs))
        err = Console(stderr=True, soft_wrap=True)
        cfg = TranscribeConfig(decoder=decoder, lexicon=str(lexicon) if lexicon else None, lm=str(lm) if lm else None,
                               beam_size=beam, beam_tokens=beam_tokens, beam_threshold=beam_threshold,
                               lm_weight=lm_weight, word_score=word_score,
                               batch_seconds=batch_seconds, chunk_seconds=chunk_seconds,
                               chunk_overlap_seconds=chunk_overlap, device=device, dtype=dtype, progress=progress,
                               extensions=exts)
        res = transcribe_files(model, inputs, cfg, dict_path=dict_path,
                               on_skip=lambda path, why: err.print(f"[yellow]skipped[/] {path}: {why}",
                                                                   highlight=False, markup=True))
        written = write_transcripts(res, fmt, out, sys.stdout)
        table = Table(title=f"transcribe ({decoder})", header_style="bold")
        table.add_column("")
        table.add_column("value", justify="right")
        for name, value in summary_rows(res):
            table.add_row(name, value)
        err.print(table)
        if written:
            err.print(f"wrote {written[0] if len(written) == 1 else f'{len(written)} files in {out}'}")
        if res.skipped:
            if not res.transcribed:
                from w2v2cli.errors import DataError

                raise DataError(f"none of the {len(res.items)} files could be transcribed")
            raise typer.Exit(1)

"""`w2v2 transcribe`: audio files, directories or a list on stdin -> text, JSON lines, subtitles or CTM.

    w2v2 transcribe exp/ft/best talk.mp3 interviews/                  # path<TAB>transcript lines on stdout
    w2v2 transcribe wav2vec_small_960h.pt clips/ --dict dict.ltr.txt --format jsonl --out clips.jsonl
    find /data -name '*.ogg' | w2v2 transcribe exp/ft/best - --format srt --out subs/
    w2v2 transcribe exp/ft/best talk.flac --decoder beam --lexicon exp/lm/lexicon.txt --lm exp/lm/lm.bin

--decoder ... --threads are declared once for it and `w2v2 decode` (`_options.decode_options`).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from w2v2cli.cli._options import CtcCheckpoint, decode_options
from w2v2cli.decode.options import TranscribeConfig


@decode_options
def transcribe_cmd(
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
    = ",".join(TranscribeConfig.extensions),
    *,
    options: TranscribeConfig,
) -> None:
    """Transcribe audio files (any format and sample rate); unreadable files are reported and skipped.

    Example: w2v2 transcribe exp/ft/best recordings/ --format jsonl --out recordings.jsonl

    The exit status is 1 when some files were skipped (the others are still written).
    """
    from w2v2cli.decode.transcribe import check_output, collect_audio  # torch: import on use
    from w2v2cli.decode.transcribe import transcribe_files, write_transcripts

    exts = tuple(e.strip() for e in ext.split(",") if e.strip())
    check_output(fmt, out, 0)
    inputs = [it.path for it in collect_audio(audio, exts, sys.stdin)]  # '-' is read once, here
    check_output(fmt, out, len(inputs))
    err = Console(stderr=True, soft_wrap=True)
    res = transcribe_files(model, inputs, dataclasses.replace(options, extensions=exts), dict_path=dict_path,
                           on_skip=lambda path, why: err.print(f"[yellow]skipped[/] {path}: {why}",
                                                               highlight=False, markup=True))
    written = write_transcripts(res, fmt, out, sys.stdout)
    _summary(err, res, options.decoder, written, out)


def _summary(err: Console, res, decoder: str, written: list[Path], out: Path | None) -> None:
    """The summary table and the files written, on stderr; exit status 1 when some files were skipped."""
    from w2v2cli.decode.transcribe import summary_rows

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


def register(app: typer.Typer) -> None:
    app.command("transcribe")(transcribe_cmd)

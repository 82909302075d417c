"""`w2v2 decode`: transcribe a manifest with a CTC checkpoint (greedy or lexicon + KenLM beam search).

    w2v2 decode exp/ft/best data/test.tsv --out exp/decode
    w2v2 decode exp/ft/best data/test.tsv --out exp/decode_lm --decoder beam \\
        --lexicon exp/lm/lexicon.txt --lm exp/lm/lm.bin --beam 500 --lm-weight 2.0 --word-score -1.0
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from w2v2cli.cli._options import (BatchSeconds, BeamSize, BeamThreshold, BeamTokens, ChunkOverlap, ChunkSeconds,
                                    CtcCheckpoint, Device, Dtype, LanguageModel, Lexicon, LmWeight, Progress, Threads,
                                    WordScore)



def decode_cmd(
    ckpt: CtcCheckpoint,
    manifest: Annotated[Path, typer.Argument(help="Manifest TEST.tsv; TEST.wrd or TEST.ltr beside it gives references.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (hyp.wrd, hyp.trn, ref.trn, hyp.jsonl).")],
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
    max_bad_files: Annotated[int, typer.Option("--max-bad-files", min=0, help="Unreadable or non-finite audio files to skip (empty hypotheses, listed in OUT/bad_audio.tsv) before stopping.")] = 10,
) -> None:
    """Transcribe TEST.tsv and write hyp.wrd, hyp.trn, ref.trn and hyp.jsonl (word times and confidences).

    Example: w2v2 decode exp/ft/best data/test.tsv --out exp/decode --decoder beam --lexicon exp/lm/lexicon.txt --lm exp/lm/lm.bin
    """
    from w2v2cli.decode.run import DecodeConfig, decode_manifest, summary_rows  # torch: import on use
    from w2v2cli.runtime import configure_runtime

    configure_runtime(threads=threads)

    cfg = DecodeConfig(decoder=decoder, lexicon=str(lexicon) if lexicon else None, lm=str(lm) if lm else None,
                       beam_size=beam, beam_tokens=beam_tokens, beam_threshold=beam_threshold,
                       lm_weight=lm_weight, word_score=word_score,
                       batch_seconds=batch_seconds, chunk_seconds=chunk_seconds,
                       chunk_overlap_seconds=chunk_overlap, device=device, dtype=dtype, progress=progress,
                       max_bad_files=max_bad_files)
    res = decode_manifest(ckpt, manifest, out, cfg)
    table = Table(title=f"decode ({decoder})", header_style="bold")
    table.add_column("")
    table.add_column("value", justify="right")
    for name, value in summary_rows(res):
        table.add_row(name, value)
    console = Console()
    console.print(table)
    console.print(f"wrote {', '.join(sorted(res.files))} in {out}")


def register(app: typer.Typer) -> None:
    app.command("decode")(decode_cmd)

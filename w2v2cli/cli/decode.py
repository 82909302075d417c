"""`w2v2 decode`: transcribe a manifest with a CTC checkpoint (greedy or lexicon + KenLM beam search).

    w2v2 decode exp/ft/best data/test.tsv --out exp/decode
    w2v2 decode exp/ft/best data/test.tsv --out exp/decode_lm --decoder beam \\
        --lexicon exp/lm/lexicon.txt --lm exp/lm/lm.bin --lm-weight 1.5

--decoder ... --threads are declared once for it and `w2v2 transcribe` (`_options.decode_options`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from w2v2cli.cli._options import CtcCheckpoint, decode_options
from w2v2cli.decode.options import DecodeConfig


@decode_options
def decode_cmd(
    ckpt: CtcCheckpoint,
    manifest: Annotated[Path, typer.Argument(help="Manifest TEST.tsv; TEST.wrd or TEST.ltr beside it gives references.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (hyp.wrd, hyp.trn, ref.trn, hyp.jsonl).")],
    *,
    options: DecodeConfig,
    max_bad_files: Annotated[int, typer.Option("--max-bad-files", min=0, help="Unreadable or non-finite audio files "
                                               "to skip (empty hypotheses, listed in OUT/bad_audio.tsv) before "
                                               "stopping.")] = DecodeConfig.max_bad_files,
) -> None:
    """Transcribe TEST.tsv and write hyp.wrd, hyp.trn, ref.trn and hyp.jsonl (word times and confidences).

    Example: w2v2 decode exp/ft/best data/test.tsv --out exp/decode --decoder beam --lexicon exp/lm/lexicon.txt --lm exp/lm/lm.bin
    """
    from w2v2cli.decode.run import decode_manifest, summary_rows  # torch: import on use

    res = decode_manifest(ckpt, manifest, out, dataclasses.replace(options, max_bad_files=max_bad_files))
    table = Table(title=f"decode ({options.decoder})", header_style="bold")
    table.add_column("")
    table.add_column("value", justify="right")
    for name, value in summary_rows(res):
        table.add_row(name, value)
    console = Console()
    console.print(table)
    console.print(f"wrote {', '.join(sorted(res.files))} in {out}")


def register(app: typer.Typer) -> None:
    app.command("decode")(decode_cmd)

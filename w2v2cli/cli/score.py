"""`w2v2 score`: WER/CER with sclite's alignment, per-speaker table, confusions and a bootstrap interval.

    w2v2 score exp/decode/ref.trn exp/decode/hyp.trn --report exp/decode/score
    w2v2 score test.wrd hyp.wrd --cer --lowercase --remove-punctuation
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from w2v2cli.score import ScoreConfig, ScoreResult, format_percent, most_common, score_files, write_report


def _pct(count: int, total: int) -> str:
    return format_percent(count, total, undefined="undefined")


def _summary_table(word: ScoreResult, char: ScoreResult) -> Table:
    table = Table(title="score", show_header=True, header_style="bold")
    for col in ("unit", "utts", "ref", "err %", "95% CI", "sub", "del", "ins", "sent. err %"):
        table.add_column(col, justify="right" if col != "unit" else "left")
    for res, name in ((word, "WER"), (char, "CER")):
        c = res.total
        lo_hi = res.ci95_percent()
        ci = f"{lo_hi[0]:.2f}-{lo_hi[1]:.2f}" if lo_hi else "-"
        table.add_row(name, str(c.sentences), str(c.ref_tokens), _pct(c.errors, c.ref_tokens), ci,
                      str(c.substitutions), str(c.deletions), str(c.insertions),
                      _pct(c.sentence_errors, c.sentences))
    return table


def _speaker_table(res: ScoreResult, limit: int = 20) -> Table:
    table = Table(title=f"per speaker ({res.unit}s)", header_style="bold")
    for col in ("speaker", "utts", "ref", "sub", "del", "ins", "err %"):
        table.add_column(col, justify="right" if col != "speaker" else "left")
    for spk, c in list(res.speakers.items())[:limit]:
        table.add_row(spk, str(c.sentences), str(c.ref_tokens), str(c.substitutions), str(c.deletions),
                      str(c.insertions), _pct(c.errors, c.ref_tokens))
    return table


def _confusion_table(res: ScoreResult, limit: int = 10) -> Table:
    table = Table(title=f"most frequent errors ({res.unit}s)", header_style="bold")
    for col in ("ref", "hyp", "count"):
        table.add_column(col, justify="right" if col == "count" else "left")
    rows = [(r, h, n) for (r, h), n in most_common(res.confusions)]
    rows += [(r, "*", n) for r, n in most_common(res.deletions)]
    rows += [("*", h, n) for h, n in most_common(res.insertions)]
    for r, h, n in sorted(rows, key=lambda x: (-x[2], x[0], x[1]))[:limit]:
        table.add_row(r, h, str(n))
    return table


def score_cmd(
    ref: Annotated[Path, typer.Argument(help="Reference transcripts: .trn ('words (utt-id)'), .wrd, .ltr or plain text.")],
    hyp: Annotated[Path, typer.Argument(help="Hypothesis transcripts, same format rules as REF.")],
    cer: Annotated[bool, typer.Option("--cer", help="Show the per-speaker table and confusions in characters (CER) instead of words.")] = False,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write pralign.*.txt, speakers.*.tsv, confusions.*.tsv and summary.json here.")] = None,
    lowercase: Annotated[bool, typer.Option("--lowercase", help="Lower-case both sides before scoring (off: exact, like sclite -s).")] = False,
    remove_punctuation: Annotated[bool, typer.Option("--remove-punctuation", help="Remove Unicode punctuation from both sides before scoring.")] = False,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples of utterances for the 95% interval (0: none).")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
) -> None:
    """Score HYP against REF with sclite's alignment rules.

    Example: w2v2 score exp/decode/ref.trn exp/decode/hyp.trn --report exp/decode/score
    """
    cfg = ScoreConfig(lowercase=lowercase, remove_punctuation=remove_punctuation, bootstrap=bootstrap, seed=seed)
    result = score_files(ref, hyp, cfg)
    console = Console()
    console.print(_summary_table(result.word, result.char))
    detail = result.char if cer else result.word
    if detail.speakers:
        console.print(_speaker_table(detail))
    if detail.confusions or detail.insertions or detail.deletions:
        console.print(_confusion_table(detail))
    if report is not None:
        paths = write_report(result, report)
        console.print(f"report: {len(paths)} files in {report}")


def register(app: typer.Typer) -> None:
    app.command("score")(score_cmd)

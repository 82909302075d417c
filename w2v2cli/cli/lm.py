"""`w2v2 lm build`: a KenLM n-gram model (ARPA + binary) and a letter lexicon from a text corpus.

    w2v2 lm build data/lm_corpus.txt --order 4 --out exp/lm --vocab data/dict.ltr.txt
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from w2v2cli.errors import CheckpointError, ConfigError
from w2v2cli.lm import LMConfig, build_lm

lm_app = typer.Typer(help="Language models for beam search decoding.", no_args_is_help=True)

FAIRSEQ_CONTROL = {"<s>", "<pad>", "</s>", "<unk>"}


def vocabulary_letters(spec: Path) -> tuple[list[str], str]:
    """Letters (and the word separator) of a fairseq `dict.ltr.txt` or of a checkpoint directory's vocab."""
    from w2v2cli.vocab import Vocabulary

    if spec.is_dir():
        from w2v2cli.checkpoint.io import CONFIG_FILE, read_checkpoint_meta

        try:
            meta = read_checkpoint_meta(spec)  # config.yaml only, checked by the checkpoint library
        except CheckpointError as err:  # a bad --vocab value: a usage error, like the other --vocab errors
            raise ConfigError(f"--vocab: {err.message}", hint=err.hint) from None
        cfg_path = spec / CONFIG_FILE
        if not meta.get("vocab"):
            raise ConfigError(f"{cfg_path}: the checkpoint has no vocabulary (is it a CTC checkpoint?)")
        vocab = Vocabulary.from_dict(meta["vocab"], source=str(cfg_path))
    else:
        vocab = Vocabulary.from_fairseq_dict(spec)
    if vocab.kind != "letters" or not vocab.word_sep:
        raise ConfigError(f"{spec}: a lexicon needs a letter vocabulary with a word separator")
    silent = FAIRSEQ_CONTROL | {vocab.tokens[vocab.blank], vocab.word_sep}
    return [t for t in vocab.tokens if t not in silent], vocab.word_sep


@lm_app.command("build")
def build(
    text: Annotated[Path, typer.Argument(help="Text corpus: one sentence per line, in the model's letter case.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory for lm.arpa, lm.bin, lexicon.txt, lm.yaml.")],
    order: Annotated[int, typer.Option("--order", min=1, help="N-gram order.")] = 4,
    vocab: Annotated[Optional[Path], typer.Option("--vocab", help="dict.ltr.txt or a CTC checkpoint: words spelled with other letters stay out of the lexicon.")] = None,
    prune: Annotated[Optional[str], typer.Option("--prune", help="lmplz count thresholds per order, e.g. '0 0 1 1'.")] = None,
    memory: Annotated[str, typer.Option("--memory", help="lmplz sorting memory (-S), e.g. 2G or 20%.")] = "20%",
    binary_type: Annotated[str, typer.Option("--binary-type", help="KenLM binary structure: trie or probing.")] = "trie",
) -> None:
    """Build a KenLM model and lexicon for `w2v2 decode --decoder beam`.

    Example: w2v2 lm build data/lm_corpus.txt --order 4 --out exp/lm --vocab data/dict.ltr.txt
    """
    letters, sep = (None, "|") if vocab is None else vocabulary_letters(vocab)
    try:
        thresholds = [int(x) for x in prune.split()] if prune else []
    except ValueError:
        raise ConfigError(f"--prune takes integers separated by spaces, got {prune!r}") from None
    cfg = LMConfig(order=order, memory=memory, prune=thresholds, binary_type=binary_type, letters=letters,
                   word_sep=sep)
    res = build_lm(text, out, cfg)
    table = Table(title=f"KenLM {order}-gram", header_style="bold")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("sentences", str(res.sentences))
    table.add_row("tokens", str(res.tokens))
    table.add_row("lexicon words", str(res.words))
    if res.skipped_words:
        table.add_row("left out (letters)", f"{len(res.skipped_words)} (e.g. {res.skipped_words[0]})")
    for n, count in sorted(res.ngrams.items()):
        table.add_row(f"{n}-grams", str(count))
    console = Console()
    console.print(table)
    console.print(f"wrote {res.arpa}, {res.binary}, {res.lexicon}")


def register(app: typer.Typer) -> None:
    app.add_typer(lm_app, name="lm")

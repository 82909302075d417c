"""`w2v2 synth`: synthetic speech corpora (espeak-ng + flite, + festival) in LibriSpeech, Common Voice or MLS layout.

    w2v2 synth librispeech corpus/LibriSpeech --speakers 6 --utts 20 --seed 0
    w2v2 synth librispeech corpus/LibriSpeech --hours 1.0 --jobs 2
    w2v2 synth librispeech corpus/LibriSpeech --hours 2.0 --speakers 120 --festival-hours 0.5
    w2v2 synth commonvoice corpus/cv --langs en,de,fr --speakers 3 --utts 10
    w2v2 synth mls corpus/mls --langs de,fr,es --hours 0.2
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from w2v2cli.errors import ConfigError
from w2v2cli.synth.commonvoice import make_commonvoice
from w2v2cli.synth.librispeech import make_librispeech
from w2v2cli.synth.mls import make_mls

KINDS = ("librispeech", "commonvoice", "mls")


def synth_cmd(
    kind: Annotated[str, typer.Argument(help="Layout: librispeech, commonvoice or mls.")],
    out_dir: Annotated[Path, typer.Argument(help="Output directory (plays the role of LibriSpeech/, cv-corpus-N/ or the MLS download folder).")],
    speakers: Annotated[int, typer.Option("--speakers", min=1, help="Speakers in each training subset (dev/test get a third).")] = 4,
    utts: Annotated[int, typer.Option("--utts", min=1, help="Utterances per training speaker (dev/test get half).")] = 10,
    hours: Annotated[Optional[float], typer.Option("--hours", min=0.0, help="Size training subsets by estimated hours instead of --utts (per language).")] = None,
    langs: Annotated[str, typer.Option("--langs", help="commonvoice/mls: comma-separated languages (en, de, fr, es).")] = "en,de,fr",
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed gives the same corpus, bit for bit.")] = 0,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Parallel synthesis pipelines.")] = 2,
    engines: Annotated[str, typer.Option("--engines", help="Comma-separated engines: espeak, flite (flite speaks English only).")] = "espeak,flite",
    lm_sentences: Annotated[int, typer.Option("--lm-sentences", min=0, help="librispeech: also write librispeech-lm-norm.txt with this many text-only training sentences (LM text).")] = 0,
    open_vocab_hours: Annotated[float, typer.Option("--open-vocab-hours", min=0.0, help="librispeech: also about this many hours per training subset of open-vocabulary sentences (frequent English words in random order, spoken by the training speakers): an acoustic model hears thousands of words, not only the grammar's. Dev/test and LM text are unchanged.")] = 0.0,
    festival_hours: Annotated[float, typer.Option("--festival-hours", min=0.0, help="librispeech: also about this many hours per training subset read by extra training speakers of a third synthesiser, festival (voices kal, ked, slt; apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts). Dev/test and LM text are unchanged.")] = 0.0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing corpus made with other settings.")] = False,
) -> None:
    """Synthesise a small speech corpus laid out like a real one.

    Example: w2v2 synth librispeech corpus/LibriSpeech --hours 1.0 --seed 42 --jobs 2
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown corpus layout {kind!r}", hint=f"choose one of: {', '.join(KINDS)}")
    lang_list = tuple(l.strip() for l in langs.split(",") if l.strip())
    engine_list = tuple(e.strip() for e in engines.split(",") if e.strip())
    for e in engine_list:
        if e not in ("espeak", "flite"):
            raise ConfigError(f"unknown synthesis engine {e!r}", hint="use espeak and/or flite")
    for opt, value in (("--open-vocab-hours", open_vocab_hours), ("--festival-hours", festival_hours)):
        if value and kind != "librispeech":
            raise ConfigError(f"{opt} is for the librispeech layout, not {kind}",
                              hint=f"drop {opt}, or synthesise a librispeech corpus")
    common = dict(n_speakers=speakers, utts_per_speaker=utts, seed=seed, hours=hours, jobs=jobs, force=force,
                  progress=True)
    if kind == "librispeech":
        corpus = make_librispeech(out_dir, engines=engine_list, lm_sentences=lm_sentences,
                                 open_vocab_hours=open_vocab_hours, festival_hours=festival_hours, **common)
    elif kind == "commonvoice":
        corpus = make_commonvoice(out_dir, langs=lang_list, engines=engine_list, **common)
    else:
        corpus = make_mls(out_dir, langs=lang_list, **common)
    table = Table(title=f"{kind} corpus in {corpus.root}", header_style="bold")
    for col in ("language", "subset", "speakers", "utterances", "hours"):
        table.add_column(col, justify="left" if col in ("language", "subset") else "right")
    groups = Counter((u.lang, u.subset) for u in corpus.utterances)
    for (lang, subset), n in groups.items():
        us = corpus.subset(subset, lang)
        table.add_row(lang, subset, str(len({u.speaker for u in us})), str(n),
                      f"{sum(u.num_samples / u.sample_rate for u in us) / 3600:.3f}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("synth")(synth_cmd)

"""`w2v2 manifest`: fairseq manifests (.tsv, and .wrd/.ltr/dict.ltr.txt for labelled corpora).

    w2v2 manifest /data/audio --dest data/unlab --ext flac --valid-percent 0.01 --jobs 8
    w2v2 manifest LibriSpeech --dest data --corpus librispeech --jobs 8
    w2v2 manifest cv-corpus-17.0/de --dest data/de --corpus commonvoice --resample-to 16000 --jobs 8
    w2v2 manifest mls_german --dest data/mls_de --corpus mls
    w2v2 manifest librispeech_finetuning --dest data/librilight --corpus librilight   # train-10m/-1h/-10h
    w2v2 manifest cv-corpus-17.0/br --dest data/br --corpus commonvoice --resample-to 16000 --dict-all-splits
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from w2v2cli.data.corpora import CORPORA
from w2v2cli.data.prepare import ManifestConfig, build_manifests


def manifest_cmd(
    audio_dir: Annotated[Path, typer.Argument(help="Audio folder: any tree of audio files, LibriSpeech/ (or one subset), a Common Voice language folder, mls_LANGUAGE/, or Libri-light's librispeech_finetuning/.")],
    dest: Annotated[Path, typer.Option("--dest", help="Output directory for the .tsv (and .wrd/.ltr/dict.ltr.txt) files.")],
    corpus: Annotated[str, typer.Option("--corpus", help=f"Layout of AUDIO_DIR: {', '.join(CORPORA)}. All but 'folder' also write labels.")] = "folder",
    ext: Annotated[str, typer.Option("--ext", help="Audio file extension to look for (folder, librispeech, mls).")] = "flac",
    valid_percent: Annotated[float, typer.Option("--valid-percent", help="folder: fraction (0..1) of files drawn into valid.tsv.")] = 0.01,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the train/valid draw.")] = 42,
    path_must_contain: Annotated[Optional[str], typer.Option("--path-must-contain", help="Keep only files whose path contains this string.")] = None,
    resample_to: Annotated[Optional[int], typer.Option("--resample-to", help="Convert audio at other rates or in MP3/Opus into 16-bit FLAC at this rate under DEST/audio, once.")] = None,
    lang: Annotated[Optional[str], typer.Option("--lang", help="Language for text normalisation (default: en for LibriSpeech, the CV locale, the MLS folder name).")] = None,
    split: Annotated[Optional[list[str]], typer.Option("--split", help="Only these subsets/splits (repeatable), e.g. --split train --split dev.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Parallel header reads and conversions.")] = 1,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave bad files out and list them in DEST/rejected.tsv instead of stopping.")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Decode every file in full (in --jobs processes) to catch NaN/inf samples and damaged frames; by default only headers and the last frames are read.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if DEST already holds complete manifests.")] = False,
    dict_all_splits: Annotated[bool, typer.Option("--dict-all-splits", help="dict.ltr.txt also lists, with count 0, the letters that only dev/test transcripts use, so that validation labels encode (small corpora); default: training letters only, as fairseq.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """Write fairseq-format manifests for AUDIO_DIR into DEST.

    Example: w2v2 manifest LibriSpeech --dest data --corpus librispeech --jobs 8
    """
    cfg = ManifestConfig(audio_dir=audio_dir, dest=dest, corpus=corpus, ext=ext, valid_percent=valid_percent,
                         seed=seed, path_must_contain=path_must_contain, resample_to=resample_to, lang=lang,
                         splits=tuple(split or ()), jobs=jobs, skip_bad=skip_bad, verify=verify, force=force, progress=progress,
                         dict_all_splits=dict_all_splits)
    result = build_manifests(cfg)
    console = Console()
    if result.reused:
        console.print(f"[green]{result.dest} is already complete[/] (nothing to do; --force rebuilds)")
    table = Table(title=f"manifests in {result.dest}", header_style="bold")
    for col in ("manifest", "files", "hours"):
        table.add_column(col, justify="left" if col == "manifest" else "right")
    for name, path in result.manifests.items():
        table.add_row(path.name, str(result.num_files[name]), f"{result.hours[name]:.3f}")
    console.print(table)
    if result.resampled:
        console.print(f"converted {result.resampled} files to {resample_to} Hz FLAC under {result.dest / 'audio'}")
    if result.rejected:
        console.print(f"[yellow]rejected {len(result.rejected)} bad inputs[/], listed in {result.dest / 'rejected.tsv'}")
    if result.files_per_second:
        console.print(f"header reads: {result.files_per_second:,.0f} files/s")


def register(app: typer.Typer) -> None:
    app.command("manifest")(manifest_cmd)

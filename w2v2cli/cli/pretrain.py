"""`w2v2 pretrain`: self-supervised wav2vec 2.0 pretraining.

    w2v2 pretrain data/train.tsv --valid data/dev.tsv --config tiny --out exp/pt --max-updates 600
    w2v2 pretrain de/train.tsv fr/train.tsv --config xlsr --set data.sampling_alpha=0.5 --out exp/xlsr
    torchrun --nproc_per_node 8 -m w2v2cli pretrain train.tsv --config base --set optim.update_freq=8 --resume auto
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from w2v2cli.cli._options import MaxMinutes, MaxUpdates, Resume, RunDir, Threads, TrainDtype
from w2v2cli.cli._train_summary import print_train_summary


def pretrain_cmd(
    train: Annotated[list[Path], typer.Argument(help="Training manifest(s) (.tsv) or shard directories (w2v2 "
                                                     "shard); repeat for multilingual pretraining, or a .yaml list "
                                                     "of {path, lang}.")],
    valid: Annotated[Optional[list[Path]], typer.Option("--valid", help="Validation manifest (repeatable).")] = None,
    config: Annotated[str, typer.Option("--config", "-c", help="Preset (tiny, tiny_fbank, tiny_fbank_rq, base, "
                                                               "base_fbank_rq, large, xlsr) or FILE.yaml; see `w2v2 "
                                                               "config show NAME`.")] = "base",
    out: RunDir = Path("exp/pretrain"),
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key: KEY=VALUE "
                                                                    "(e.g. optim.lr=5e-4); repeatable.")] = None,
    max_updates: MaxUpdates = None,
    max_minutes: MaxMinutes = None,
    resume: Resume = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed (data order, init, masks).")] = None,
    threads: Threads = None,
    dtype: TrainDtype = None,
) -> None:
    """Pretrain a wav2vec 2.0 model on unlabelled audio.

    Example: w2v2 pretrain data/train.tsv --valid data/dev.tsv --config tiny --out exp/pt --resume auto
    """
    from w2v2cli.runtime import configure_runtime
    from w2v2cli.train.pretrain import pretrain_config, run_pretraining
    from w2v2cli.train.resolve import RunOptions

    configure_runtime(threads=threads)
    console = Console(stderr=True)
    options = RunOptions(train=tuple(train), valid=tuple(valid or ()), max_updates=max_updates,
                         max_minutes=max_minutes, precision=dtype, seed=seed)
    result = run_pretraining(pretrain_config(config, set_ or [], options).cfg, out, resume=resume, console=console)
    m, v = result.train_metrics, result.valid_metrics
    rows = [(f"train {key}", f"{m[key]:.4g}")
            for key in ("loss", "accuracy", "code_perplexity", "prob_perplexity", "audio_s_per_s") if key in m]
    rows += [(f"valid {key}", f"{v[key]:.4g}") for key in ("loss", "accuracy") if key in (v or {})]
    print_train_summary("pretraining", result, out, rows, "best", Console(), console)

def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain_cmd)

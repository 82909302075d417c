"""`w2v2 finetune`: CTC fine-tuning from our, fairseq or transformers checkpoints (or from scratch).

    w2v2 finetune data/train-10h.tsv --valid data/dev-clean.tsv --init exp/pt/checkpoint_last --config base_10h
    w2v2 finetune data/train.tsv --valid data/dev.tsv --init wav2vec_small.pt --config base_1h --out exp/ft
    w2v2 finetune data/train.tsv --valid data/dev.tsv --init none --config tiny --vocab spm --vocab-size 64
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from w2v2cli.cli._options import MaxMinutes, MaxUpdates, Resume, RunDir, Threads, TrainDtype
from w2v2cli.cli._train_summary import print_train_summary


def finetune_cmd(
    train: Annotated[list[Path], typer.Argument(help="Training manifest(s) (.tsv) with labels beside them "
                                                     "(X.ltr or X.wrd, see task.labels), or shard directories "
                                                     "(w2v2 shard) that carry them.")],
    init: Annotated[str, typer.Option("--init", help="Pretrained model: our checkpoint directory, a transformers "
                                                     "directory, a fairseq .pt, or 'none' to train from scratch.")],
    valid: Annotated[Optional[list[Path]], typer.Option("--valid", help="Validation manifest with labels "
                                                                        "(repeatable); selects checkpoint_best "
                                                                        "by WER.")] = None,
    config: Annotated[str, typer.Option("--config", "-c", help="Fine-tuning preset (tiny_ctc, tiny_fbank_ctc, "
                                                               "base_10m ... base_960h, large_10m ... large_960h, "
                                                               "xlsr_cv; 'tiny' means tiny_ctc, 'tiny_fbank' "
                                                               "tiny_fbank_ctc; w2v2 config list) or FILE.yaml.")] = "base_10h",
    vocab: Annotated[Optional[str], typer.Option("--vocab", help="Output units: 'letters' (dict.ltr.txt beside "
                                                                 "the manifest, else from the labels) or 'spm' "
                                                                 "(SentencePiece on the training transcripts).")]
    = None,
    vocab_size: Annotated[Optional[int], typer.Option("--vocab-size", min=2, help="SentencePiece vocabulary size "
                                                                                  "(with --vocab spm), blank "
                                                                                  "included.")] = None,
    spm_type: Annotated[str, typer.Option("--spm-type", help="SentencePiece model: unigram or bpe.")] = "unigram",
    out: RunDir = Path("exp/finetune"),
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key: KEY=VALUE "
                                                                    "(e.g. optim.lr=5e-5); repeatable.")] = None,
    max_updates: MaxUpdates = None,
    max_minutes: MaxMinutes = None,
    resume: Resume = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed (data order, head init, masks).")]
    = None,
    threads: Threads = None,
    dtype: TrainDtype = None,
) -> None:
    """Fine-tune a wav2vec 2.0 model with CTC on labelled audio.

    Example: w2v2 finetune data/train-1h.tsv --valid data/dev-clean.tsv --init exp/pt/checkpoint_last
    --config base_1h --out exp/ft --resume auto
    """
    from w2v2cli.runtime import configure_runtime
    from w2v2cli.train.ctc_task import ALL_BLANK_EMPTY_SHARE
    from w2v2cli.train.finetune import finetune_config, run_finetuning
    from w2v2cli.train.resolve import RunOptions

    configure_runtime(threads=threads)
    console = Console(stderr=True)
    options = RunOptions(train=tuple(train), valid=tuple(valid or ()), max_updates=max_updates,
                         max_minutes=max_minutes, precision=dtype, seed=seed, vocab=vocab, vocab_size=vocab_size)
    resolved = finetune_config(config, set_ or [], options, console)
    result = run_finetuning(resolved, out, init, resume=resume, spm_type=spm_type, console=console)
    rows = []
    if "loss" in result.train_metrics:
        rows.append(("train loss", f"{result.train_metrics['loss']:.4g}"))
    v = result.valid_metrics
    if v:
        rows += [("valid loss", f"{v['loss']:.4g}"), ("valid WER", f"{100 * v['wer']:.2f} %"),
                 ("valid CER", f"{100 * v['cer']:.2f} %")]
        if v.get("empty_frac", 0) >= ALL_BLANK_EMPTY_SHARE:
            rows.append(("[yellow]all blank[/]", f"{100 * v['empty_frac']:.0f} % empty hypotheses (see the warning)"))
    print_train_summary("fine-tuning", result, out, rows, "best (by WER)", Console(), console)

def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_cmd)

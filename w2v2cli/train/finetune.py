"""Fine-tuning entry point: CTC on a little labelled data, with the shared trainer and a `CTCTask`.

    >>> result = finetune(["data/train-10m.tsv"], "exp/ft", init="exp/pt/checkpoint_last", config="base_10m",
    ...                   valid=["data/dev-clean.tsv"], max_updates=13_000)
    >>> result.valid_metrics["wer"], result.best_checkpoint          # 0.21, exp/ft/checkpoint_best
    >>> resolved = finetune_config("base_10m", [], RunOptions(train=("data/train-10m.tsv",), vocab="spm"))
    >>> result = run_finetuning(resolved, "exp/ft", init="exp/pt/checkpoint_last")    # what `w2v2 finetune` does

What happens, in the order of the paper's fine-tuning recipe (wav2vec 2.0 paper, appendix):

* Labels lie beside each manifest (`X.ltr` or `X.wrd`: `task.labels`, else the other one); label line i belongs to manifest entry i
  (file line i + 1, after the root line). A count mismatch is a ManifestError naming the first unpaired line; a
  symbol outside the vocabulary is a DataError naming `FILE:LINE` and the symbol.
* Vocabulary (`task.vocab`): `letters` - fairseq's letters with `|` between words, from `dict.ltr.txt` beside the
  first training manifest, else the `--init` model's own letter vocabulary, else counted from the training labels;
  `spm` - a SentencePiece unigram (or BPE) model of `task.vocab_size` pieces trained on the training transcripts.
  Index 0 is the CTC blank. The vocabulary is saved in every checkpoint (`config.yaml: vocab`).
* Model, training and validation: `CTCTask` (w2v2cli/train/ctc_task.py) in the shared loop
  (w2v2cli/train/trainer.py). The architecture comes from `--init` (via `load_model_any`); the fine-tuning preset
  supplies regularisation and masking (`REG_FIELDS`); `--init none` trains the preset's architecture from scratch,
  every part of it (`from_scratch_config`).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from rich.console import Console

from w2v2cli.config import from_dict
from w2v2cli.data.labels import build_vocab, letter_dict_path
from w2v2cli.errors import CheckpointError, ConfigError, DataError
from w2v2cli.model.config import ModelConfig
from w2v2cli.train.config import TrainConfig
from w2v2cli.train.ctc_task import CTCTask, InitWeights, load_init
from w2v2cli.train.resolve import ResolvedConfig, RunOptions, resolve_config
from w2v2cli.train.run_dir import find_resume_checkpoint
from w2v2cli.train.trainer import TrainResult, train
from w2v2cli.vocab import Vocabulary

#: ModelConfig fields taken from the fine-tuning preset (and --set); everything else comes from --init.
REG_FIELDS = ("feature_grad_mult", "dropout", "attention_dropout", "activation_dropout", "dropout_input",
              "dropout_features", "layerdrop", "final_dropout", "mask_prob", "mask_length", "mask_min_masks",
              "mask_channel_prob", "mask_channel_length", "fbank_warp",
              "fbank_freq_masks", "fbank_freq_mask_width")

#: A pretraining preset given to `finetune` means its fine-tuning counterpart.
FINETUNE_COUNTERPART = {"tiny": "tiny_ctc", "tiny_fbank": "tiny_fbank_ctc", "tiny_fbank_rq": "tiny_fbank_ctc",
                       "tiny_fbank_km": "tiny_fbank_ctc"}
_NO_COUNTERPART = {"base": "base_10m, base_1h, base_10h, base_100h or base_960h",
                   "large": "large_10m, large_1h, large_10h, large_100h or large_960h",
                   "xlsr": "xlsr_cv (Common Voice), or large_10m ... large_960h"}

#: What a run was initialised from (written by rank 0 at the start, read back on resume).
INIT_RECORD = "init.yaml"


# ---------------------------------------------------------------------------------------------- config
def finetune_config_name(spec: str, console: Console | None = None) -> str:
    """`tiny` -> `tiny_ctc` (with a note); other pretraining presets are a ConfigError naming the choices."""
    if spec in FINETUNE_COUNTERPART:
        target = FINETUNE_COUNTERPART[spec]
        if console is not None:
            console.print(f"--config {spec}: using its fine-tuning preset '{target}'", highlight=False)
        return target
    if spec in _NO_COUNTERPART:
        raise ConfigError(f"'{spec}' is a pretraining preset and has no single fine-tuning counterpart",
                          hint=f"fine-tuning presets: {_NO_COUNTERPART[spec]}")
    return spec


def finetune_model_config(arch: ModelConfig, preset: ModelConfig, vocab_size: int) -> ModelConfig:
    """The architecture of `arch` (the init model) with the regularisation/masking of `preset` and `vocab_size`; the
    pretraining objective does not carry over (a CTC model has none: the default)."""
    return replace(arch, vocab_size=vocab_size, objective=ModelConfig.objective,
                   **{name: getattr(preset, name) for name in REG_FIELDS})


# ---------------------------------------------------------------------------------------------- entry points
def finetune_config(config: str = "base_10h", overrides: Sequence[str] = (), options: RunOptions | None = None,
                    console: Console | None = None) -> ResolvedConfig:
    """The typed fine-tuning config: preset (`tiny` means `tiny_ctc`) or FILE.yaml, --set overrides, then the
    options (`w2v2cli.train.resolve`); it must be a CTC config with training data."""
    name = finetune_config_name(config, console or Console(stderr=True))
    resolved = resolve_config(name, overrides, options)
    cfg = resolved.cfg
    if cfg.task.name != "ctc":
        raise ConfigError(f"config '{config}' is a {cfg.task.name} config, not a fine-tuning one",
                          hint="fine-tuning presets: tiny_ctc, base_10m ... base_960h, large_10m ... large_960h, "
                                               "xlsr_cv (w2v2 config list)")
    if not cfg.data.train:
        raise DataError("no training manifest given", hint="w2v2 finetune TRAIN.tsv --valid VALID.tsv --init CKPT")
    return resolved


def finetune_task(resolved: ResolvedConfig, out_dir: str | os.PathLike, init: str | None, resume: str | None = None,
                  spm_type: str = "unigram", console: Console | None = None) -> tuple[TrainConfig, CTCTask]:
    """The run's config and task from a `finetune_config`: the architecture from `init` (or the run's own checkpoint
    when resuming, or the config with `init` None/"none"), the vocabulary, the preset's regularisation. Keys the
    user set (`resolved.explicit`) are kept by `--init none` (`from_scratch_config`), and model.* keys that `init`
    overrides are reported as ignored."""
    console = console or Console(stderr=True)
    cfg, explicit = resolved.cfg, resolved.explicit
    init_spec = None if init is None or str(init).lower() == "none" else str(init)
    if init_spec is None:
        cfg = from_scratch_config(cfg, explicit, console)
    resume_path = find_resume_checkpoint(Path(out_dir), resume)
    init_w: InitWeights | None = None
    init_kind: str | None = None
    if resume_path is not None:  # the run's own checkpoint fixes the architecture and the vocabulary
        arch, the_vocab, source, init_kind = _resumed_run(resume_path, Path(out_dir), init_spec)
    else:
        if init_spec is not None:
            init_w = _read_init(init_spec, cfg, explicit, console)
        arch = init_w.cfg if init_w is not None else cfg.model
        the_vocab, source = build_vocab([s.path for s in cfg.data.train], cfg.task.vocab, cfg.task.labels,
                                        cfg.task.vocab_size, spm_type, init_w.vocab if init_w is not None else None)
    model_cfg = finetune_model_config(arch, cfg.model, len(the_vocab))
    if cfg.task.reinit_layers >= model_cfg.encoder_layers and "task.reinit_layers" not in explicit:
        # the preset's count is meant for deeper models: never re-initialise a whole transformer unasked (also
        # when resuming such a run, whose architecture then comes from its own checkpoint)
        if init_w is not None:
            console.print(f"note: task.reinit_layers = {cfg.task.reinit_layers} of the preset not applied: --init "
                          f"{init_spec} has {model_cfg.encoder_layers} transformer layers", highlight=False)
        cfg = replace(cfg, task=replace(cfg.task, reinit_layers=0))
    cfg = replace(cfg, model=model_cfg)
    return cfg, CTCTask(cfg, the_vocab, init=init_w, vocab_source=source, init_kind=init_kind)


def _resumed_run(path: Path, out_dir: Path, init_spec: str | None) -> tuple[ModelConfig, Vocabulary, str, str | None]:
    """Architecture, vocabulary, its source and the init's kind (from DIR/init.yaml) of a run resumed from `path`;
    the checkpoint's weights replace the init's."""
    from w2v2cli.checkpoint.io import read_checkpoint_meta
    from w2v2cli.config import load_yaml

    meta = read_checkpoint_meta(path)
    if not meta.get("vocab"):
        raise CheckpointError(f"cannot resume fine-tuning from {path}: it has no vocabulary")
    arch = from_dict(ModelConfig, meta["model"], source=f"{path}/config.yaml: model")
    vocab = Vocabulary.from_dict(meta["vocab"], source=f"{path}/config.yaml: vocab")
    record = out_dir / INIT_RECORD
    kind = load_yaml(record).get("kind") if init_spec is not None and record.is_file() else None
    return arch, vocab, str(path), kind


def _read_init(init_spec: str, cfg: TrainConfig, explicit: frozenset[str], console: Console) -> InitWeights:
    """The `--init` weights (a dict.ltr.txt beside the first manifest, or inside a shard directory, names a fairseq
    model's letters); notes the --set model.* keys the init's architecture overrides."""
    dict_path = letter_dict_path(cfg.data.train[0].path)
    init_w = load_init(init_spec, dict_path if dict_path.is_file() else None)
    ignored = sorted({k for k in explicit if k.startswith("model.")} -
                     {f"model.{f}" for f in REG_FIELDS + ("vocab_size",)})
    if ignored:
        console.print(f"[yellow]note:[/] {', '.join(ignored)} from --set ignored: the architecture comes "
                      f"from --init {init_spec}", highlight=False)
    return init_w


def resolve_finetune(train_manifests: Sequence[str | os.PathLike], out_dir: str | os.PathLike, init: str | None,
                     config: str = "base_10h", overrides: Sequence[str] = (),
                     valid: Sequence[str | os.PathLike] = (), max_updates: int | None = None,
                     resume: str | None = None, seed: int | None = None, vocab: str | None = None,
                     vocab_size: int | None = None, spm_type: str = "unigram",
                     console: Console | None = None) -> tuple[TrainConfig, CTCTask]:
    """The resolved training config and the task, without training (`finetune_config` + `finetune_task`)."""
    console = console or Console(stderr=True)
    options = RunOptions(train=tuple(train_manifests), valid=tuple(valid), max_updates=max_updates, seed=seed,
                         vocab=vocab, vocab_size=vocab_size)
    return finetune_task(finetune_config(config, overrides, options, console), out_dir, init, resume, spm_type,
                         console)


def from_scratch_config(cfg: TrainConfig, explicit: frozenset[str], console: Console) -> TrainConfig:
    """`--init none`: the fine-tuning presets freeze the feature encoder (feature_grad_mult 0) and, for the first
    `freeze_finetune_updates`, the transformer, because a pretrained model should keep what it learned. Without
    pretraining those parts are random, and freezing them would train on fixed random features: the baseline that
    shows what pretraining buys must train the whole model. Keys the user set (`explicit`) are kept."""
    changes = []
    if cfg.model.feature_grad_mult == 0 and "model.feature_grad_mult" not in explicit:
        cfg = replace(cfg, model=replace(cfg.model, feature_grad_mult=1.0))
        changes.append("model.feature_grad_mult=1.0")
    if cfg.task.freeze_finetune_updates and "task.freeze_finetune_updates" not in explicit:
        cfg = replace(cfg, task=replace(cfg.task, freeze_finetune_updates=0))
        changes.append("task.freeze_finetune_updates=0")
    if changes:
        console.print(f"--init none: training every part of the model ({', '.join(changes)})", highlight=False)
    return cfg


def run_finetuning(resolved: ResolvedConfig, out_dir: str | os.PathLike, init: str | None, resume: str | None = None,
                   spm_type: str = "unigram", console: Console | None = None) -> TrainResult:
    """Fine-tunes with CTC from a `finetune_config` (see the module docstring and `finetune_task`). `init`:
    checkpoint spec or None/"none" (from scratch); `resume`: "auto" or a checkpoint directory."""
    console = console or Console(stderr=True)
    cfg, task = finetune_task(resolved, out_dir, init, resume, spm_type, console)
    out = Path(out_dir)
    if task.init is not None and int(os.environ.get("RANK", "0")) == 0:
        _record_init(cfg, task, out, console)
    if not cfg.data.valid:
        console.print("[yellow]note:[/] no --valid manifest: no WER, no checkpoint_best, no early stopping",
                      highlight=False)
    return train(cfg, task, out, resume=resume, console=console)


def _record_init(cfg: TrainConfig, task: CTCTask, out: Path, console: Console) -> None:
    """DIR/init.yaml (what the run started from) and the notes on what was taken from the init and how."""
    from w2v2cli.config import save_yaml

    out.mkdir(parents=True, exist_ok=True)
    top = task.reinit_prefixes(cfg)
    save_yaml({"init": task.init.spec, "kind": task.init.kind, "provenance": task.init.provenance,
               "vocab_source": task.vocab_source, "reinit_layers": len(top),
               "pretrained_lr_scale": cfg.task.pretrained_lr_scale}, out / INIT_RECORD)
    if top:
        console.print(f"re-initialised the top {len(top)} of {cfg.model.encoder_layers} transformer layers of "
                      f"the pretrained model (task.reinit_layers)", highlight=False)
    elif cfg.task.reinit_layers:
        console.print(f"note: task.reinit_layers = {cfg.task.reinit_layers} ignored: --init is a fine-tuned "
                      "(CTC) model, all its layers are kept", highlight=False)
    if cfg.task.pretrained_lr_scale != 1.0:
        console.print(f"the weights from --init train at {cfg.task.pretrained_lr_scale:g} x the scheduled lr "
                      "(task.pretrained_lr_scale); the output layer"
                      + (" and the re-initialised layers" if top else "") + " at the full lr", highlight=False)


def finetune(train_manifests: Sequence[str | os.PathLike], out_dir: str | os.PathLike, init: str | None,
             config: str = "base_10h", overrides: Sequence[str] = (), valid: Sequence[str | os.PathLike] = (),
             max_updates: int | None = None, resume: str | None = None, seed: int | None = None,
             vocab: str | None = None, vocab_size: int | None = None, spm_type: str = "unigram",
             console: Console | None = None) -> TrainResult:
    """`finetune_config` + `run_finetuning` in one call; `vocab`/`vocab_size` set task.vocab/task.vocab_size."""
    console = console or Console(stderr=True)
    options = RunOptions(train=tuple(train_manifests), valid=tuple(valid), max_updates=max_updates, seed=seed,
                         vocab=vocab, vocab_size=vocab_size)
    return run_finetuning(finetune_config(config, overrides, options, console), out_dir, init, resume, spm_type,
                          console)

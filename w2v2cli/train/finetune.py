"""Fine-tuning entry point: CTC on a little labelled data, with the shared trainer and a `CTCTask`.

    >>> result = finetune(["data/train-10m.tsv"], "exp/ft", init="exp/pt/checkpoint_last", config="base_10m",
    ...                   valid=["data/dev-clean.tsv"], max_updates=13_000)
    >>> result.valid_metrics["wer"], result.best_checkpoint          # 0.21, exp/ft/checkpoint_best
    >>> evaluate_ctc("exp/ft/checkpoint_best", ["data/test-clean.tsv"])["wer"]
    >>> cfg = finetune_config("base_10m", train=["data/train-10m.tsv"], vocab="spm", vocab_size=64)  # typed, once
    >>> result = run_finetuning(cfg, "exp/ft", init="exp/pt/checkpoint_last")                    # `w2v2 finetune`

What happens, in the order of the paper's fine-tuning recipe (wav2vec 2.0 paper, appendix):

* Labels lie beside each manifest (`X.ltr` or `X.wrd`: `task.labels`, else the other one); label line i belongs to manifest entry i
  (file line i + 1, after the root line). A count mismatch is a ManifestError naming the first unpaired line; a
  symbol outside the vocabulary is a DataError naming `FILE:LINE` and the symbol.
* Vocabulary (`task.vocab`): `letters` - fairseq's letters with `|` between words, from `dict.ltr.txt` beside the
  first training manifest, else the `--init` model's own letter vocabulary, else counted from the training labels;
  `spm` - a SentencePiece unigram (or BPE) model of `task.vocab_size` pieces trained on the training transcripts.
  Index 0 is the CTC blank. The vocabulary is saved in every checkpoint (`config.yaml: vocab`).
* Model: the architecture comes from `--init` (our pretraining or CTC checkpoint, a transformers directory or a
  fairseq `.pt`, via `load_model_any`); the fine-tuning preset supplies regularisation and masking (`REG_FIELDS`:
  dropouts, layerdrop, time/channel masks, feature_grad_mult 0 = frozen feature encoder) and `vocab_size` is
  `len(vocab)`. The encoder weights are copied into a fresh CTC model whose output layer is new (kept only when
  the init is a CTC model with the same vocabulary). `task.reinit_layers` > 0 re-initialises that many top
  transformer layers of a pretrained (not a CTC) init. `--init none` trains the preset's architecture from scratch.
* Training: the shared loop (`w2v2cli.train.trainer.train`). For the first `task.freeze_finetune_updates` updates
  the whole wav2vec2 encoder is frozen and only the output layer learns; CTC loss summed over frames with
  `zero_infinity`, normalised by the number of target tokens; tri-stage learning rate from the preset, times
  `task.pretrained_lr_scale` for the weights that came from the --init.
* Validation (every `checkpoint.validate_interval_updates`): CTC loss per token, greedy decoding, WER and CER as
  fractions (0.25 = 25 %, counted with w2v2cli.score, sclite's alignment); `checkpoint_best` by `wer`.
  A model that emits (almost) only blanks is reported with the likely causes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import torch
from rich.console import Console
from torch import nn

from w2v2cli.config import from_dict
from w2v2cli.data.collate import Batch
from w2v2cli.data.labels import build_vocab, encode_labels
from w2v2cli.data.manifest import Manifest
from w2v2cli.errors import CheckpointError, ConfigError, DataError
from w2v2cli.model.config import ModelConfig
from w2v2cli.model.losses import ctc_loss, min_ctc_frames
from w2v2cli.train.config import TrainConfig
from w2v2cli.train.trainer import TrainResult, find_resume_checkpoint, train
from w2v2cli.vocab import Vocabulary, check_vocab_size

#: ModelConfig fields taken from the fine-tuning preset (and --set); everything else comes from --init.
REG_FIELDS = ("feature_grad_mult", "dropout", "attention_dropout", "activation_dropout", "dropout_input",
              "dropout_features", "layerdrop", "final_dropout", "mask_prob", "mask_length", "mask_min_masks",
              "mask_channel_prob", "mask_channel_length", "fbank_warp",
              "fbank_freq_masks", "fbank_freq_mask_width")

#: A pretraining preset given to `finetune` means its fine-tuning counterpart.
FINETUNE_COUNTERPART = {"tiny": "tiny_ctc", "tiny_fbank": "tiny_fbank_ctc"}
_NO_COUNTERPART = {"base": "base_10m, base_1h, base_10h, base_100h or base_960h",
                   "large": "large_10m, large_1h, large_10h, large_100h or large_960h",
                   "xlsr": "xlsr_cv (Common Voice), or large_10m ... large_960h"}

#: What a run was initialised from (written by rank 0 at the start, read back on resume).
INIT_RECORD = "init.yaml"
#: A validation where at least this share of hypotheses is empty is reported as "all blank".
ALL_BLANK_EMPTY_SHARE = 0.9


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
    """The architecture of `arch` (the init model) with the regularisation/masking of `preset` and `vocab_size`."""
    return replace(arch, vocab_size=vocab_size, **{name: getattr(preset, name) for name in REG_FIELDS})


# ---------------------------------------------------------------------------------------------- init weights
@dataclass
class InitWeights:
    """What `--init` contributes: the encoder weights, their model config, and (CTC inits) head and vocabulary."""

    spec: str
    cfg: ModelConfig
    kind: str
    encoder_state: dict[str, torch.Tensor]
    head_state: dict[str, torch.Tensor] | None
    vocab: Vocabulary | None
    provenance: dict[str, Any]


def load_init(spec: str | os.PathLike, dict_path: str | os.PathLike | None = None) -> InitWeights:
    """Reads our checkpoint dir, a transformers dir or a fairseq `.pt` and keeps what fine-tuning needs."""
    from w2v2cli.checkpoint.formats import detect_format, load_model_any

    fmt = detect_format(spec)
    loaded = load_model_any(spec, dict_path=dict_path if fmt == "fairseq" else None)
    model = loaded.model
    encoder = model.wav2vec2 if hasattr(model, "wav2vec2") else model
    head = model.lm_head.state_dict() if loaded.kind == "ctc" and hasattr(model, "lm_head") else None
    return InitWeights(str(spec), loaded.cfg, loaded.kind,
                       {k: v.detach().clone() for k, v in encoder.state_dict().items()},
                       {k: v.detach().clone() for k, v in head.items()} if head else None,
                       loaded.vocab, dict(loaded.provenance or {}))


# ---------------------------------------------------------------------------------------------- the task
class CTCTask:
    """CTC fine-tuning (fits `w2v2cli.train.tasks.Task`); see the module docstring.

    init: weights from `load_init` (None: random). Warnings go through the trainer's run logger
    (`data_warnings`, `valid_health`).
    """

    kind = "ctc"
    sum_metrics = ("ntokens", "nsentences")

    def __init__(self, cfg: TrainConfig, vocab: Vocabulary, init: InitWeights | None = None, vocab_source: str = "",
                 init_kind: str | None = None):
        check_vocab_size(vocab, cfg.model.vocab_size, f"model.vocab_size {cfg.model.vocab_size}", ConfigError)
        self.cfg = cfg
        self.vocab = vocab
        self.vocab_source = vocab_source
        self.init = init
        # what the run started from ("pretrain", "ctc", None: scratch); when resuming, `init` is None (the weights
        # come from the run's checkpoint) and this comes from the run's init.yaml
        self.init_kind = init.kind if init is not None else init_kind
        self.freeze_updates = cfg.task.freeze_finetune_updates
        self.total_updates = cfg.optim.max_updates  # the run's length (the trainer sets a time budget's plan)
        self.infeasible: dict[str, int] = {}  # manifest -> utterances whose labels need more frames than they have
        self._data_warnings: list[str] = []
        self._frozen: bool | None = None

    # -- model and data -------------------------------------------------------------------------------------
    def build_model(self, cfg: TrainConfig) -> nn.Module:
        from w2v2cli.checkpoint.io import load_state_strict
        from w2v2cli.model import build_model

        model = build_model(cfg.model, "ctc")
        if self.init is not None:
            state = self.init.encoder_state
            top = self.reinit_prefixes(cfg)
            if top:  # those layers keep the fresh model's random initialisation
                fresh = model.wav2vec2.state_dict()
                state = {k: (fresh[k] if k.startswith(top) else v) for k, v in state.items()}
            load_state_strict(model.wav2vec2, state, f"--init {self.init.spec}")
            if self.init.head_state is not None and self.init.vocab is not None and self.init.vocab == self.vocab:
                model.lm_head.load_state_dict(self.init.head_state)  # same outputs: keep the trained head
        return model

    def reinit_prefixes(self, cfg: TrainConfig) -> tuple[str, ...]:
        """State-dict prefixes of the top `task.reinit_layers` transformer layers to re-initialise: only for a
        pretrained init (a CTC init has already been fine-tuned; its top layers are what it learned)."""
        n = cfg.task.reinit_layers
        if not n or self.init_kind in (None, "ctc"):
            return ()
        layers = cfg.model.encoder_layers
        return tuple(f"encoder.layers.{i}." for i in range(layers - n, layers))

    def lr_scales(self, model: nn.Module) -> dict[str, float]:
        """`task.pretrained_lr_scale` for the encoder weights that came from the --init (the output layer and
        the re-initialised layers train at the full lr)."""
        scale = self.cfg.task.pretrained_lr_scale
        if self.init_kind is None or scale == 1.0:
            return {}
        fresh = tuple(f"wav2vec2.{p}" for p in self.reinit_prefixes(self.cfg))
        return {name: scale for name, _ in model.named_parameters()
                if name.startswith("wav2vec2.") and not name.startswith(fresh)}  # startswith(()) is False

    def targets(self, manifest: Path, parsed: Manifest | None = None) -> list[list[int]]:
        """Label ids per entry of `manifest`; `parsed`: the manifest as the trainer read it (None: read here)."""
        from w2v2cli.data.manifest import read_manifest

        ids = encode_labels(manifest, self.vocab, self.cfg.task.labels)
        entries = (parsed if parsed is not None else read_manifest(manifest)).entries
        bad = sum(1 for e, t in zip(entries, ids) if min_ctc_frames(t) > self.cfg.model.num_frames(e.num_samples))
        if bad:
            self.infeasible[str(manifest)] = bad
            self._data_warnings.append(f"{bad} of {len(ids)} utterances in {manifest} have labels longer than their audio "
                             f"has frames ({self.cfg.model.hop} samples per frame): CTC cannot align them"
                             + (" and zero_infinity drops their loss" if self.cfg.task.zero_infinity else
                                " and their loss is infinite (set task.zero_infinity=true)"))
        return ids

    def begin_update(self, model: nn.Module, update: int) -> None:
        # Frozen: the encoder gets no gradient at all (requires_grad off, so no graph is built for it); the
        # optimizer skips parameters without gradients, so only the output layer moves.
        frozen = update < self.freeze_updates
        if frozen != self._frozen:
            for p in model.wav2vec2.parameters():
                p.requires_grad_(not frozen)
            self._frozen = frozen

    # -- loss -----------------------------------------------------------------------------------------------
    def _ctc(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if batch.targets is None or batch.target_lengths is None:
            raise DataError("a fine-tuning batch has no targets", hint="labels are read beside each manifest")
        logits, frames = model(batch.waveforms, batch.lengths)
        loss, lprobs = ctc_loss(logits, frames, batch.targets, batch.target_lengths, blank=self.vocab.blank,
                                zero_infinity=self.cfg.task.zero_infinity)
        return loss, lprobs, frames

    def compute_loss(self, model: nn.Module, batch: Batch, update: int) -> tuple[torch.Tensor, int, dict[str, float]]:
        loss, lprobs, frames = self._ctc(model, batch)
        ntokens = int(batch.target_lengths.sum())
        with torch.no_grad():
            valid = torch.arange(lprobs.shape[1], device=frames.device)[None, :] < frames[:, None]
            blank = (lprobs.argmax(-1) == self.vocab.blank) & valid
            blank_frac = float(blank.sum()) / max(float(valid.sum()), 1.0)
        return loss, ntokens, {"ntokens": ntokens, "nsentences": len(batch), "blank_frac": blank_frac}

    # -- validation -----------------------------------------------------------------------------------------
    def valid_step(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        from w2v2cli.decode import greedy_decode
        from w2v2cli.score import score_utterance

        loss, lprobs, frames = self._ctc(model, batch)
        hyps = greedy_decode(lprobs, frames, self.vocab)
        sums = {"loss_sum": float(loss), "ntokens": float(batch.target_lengths.sum()), "word_errors": 0.0,
                "words": 0.0, "char_errors": 0.0, "chars": 0.0, "nsentences": float(len(batch)),
                "empty": 0.0}
        for b, hyp in enumerate(hyps):
            ref = self.vocab.decode(batch.targets[b, : int(batch.target_lengths[b])].tolist())
            w = score_utterance("u", ref, hyp.text, "word").counts
            c = score_utterance("u", ref, hyp.text, "char").counts
            sums["word_errors"] += w.errors
            sums["words"] += w.ref_tokens
            sums["char_errors"] += c.errors
            sums["chars"] += c.ref_tokens
            sums["empty"] += float(not hyp.text.strip())
        valid = torch.arange(lprobs.shape[1], device=frames.device)[None, :] < frames[:, None]
        sums["frames"] = float(valid.sum())
        sums["blank_frames"] = float(((lprobs.argmax(-1) == self.vocab.blank) & valid).sum())
        sums["blank_prob_sum"] = float(lprobs[..., self.vocab.blank].exp()[valid].sum())
        return sums

    def valid_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        frames = max(sums.get("frames", 0.0), 1.0)
        n = max(sums.get("nsentences", 0.0), 1.0)
        m = {"loss": sums["loss_sum"] / max(sums["ntokens"], 1.0),
             "wer": sums["word_errors"] / max(sums["words"], 1.0),
             "cer": sums["char_errors"] / max(sums["chars"], 1.0),
             "blank_frac": sums["blank_frames"] / frames,
             "blank_prob": sums["blank_prob_sum"] / frames,
             "empty_frac": sums["empty"] / n,
             "nsentences": sums["nsentences"]}
        return m

    def valid_health(self, metrics: dict[str, float], update: int) -> list[tuple[str, str]]:
        """The all-blank failure: (almost) every validation hypothesis empty, with the likely causes."""
        if metrics.get("empty_frac", 0.0) < ALL_BLANK_EMPTY_SHARE:
            return []
        cfg = self.cfg
        causes = []
        if update <= self.freeze_updates:
            causes.append(f"frozen too long: the transformer is still frozen (update {update} <= "
                          f"task.freeze_finetune_updates {self.freeze_updates}), only the output layer has learned")
        elif self.freeze_updates >= self.total_updates // 2:
            causes.append(f"frozen too long: task.freeze_finetune_updates = {self.freeze_updates} of "
                          f"{self.total_updates} updates leaves little time to train the transformer")
        causes.append(f"too few updates: CTC models emit only blanks for a while before letters appear "
                      f"({update} updates so far; raise optim.max_updates)")
        causes.append(f"learning rate: optim.lr = {cfg.optim.lr:g} may be too low to leave the blank phase in "
                      "time, or so high that the model collapsed onto the blank")
        causes.append(f"vocabulary mismatch: labels spelled with other symbols or case than the vocabulary "
                      f"({len(self.vocab)} tokens{' from ' + self.vocab_source if self.vocab_source else ''})")
        causes.append(f"normalisation mismatch: data.normalize = {cfg.data.normalize} with model.normalize_audio = "
                      f"{cfg.model.normalize_audio}; the pretrained model expects the input it was pretrained on")
        text = (f"validation at update {update}: {metrics['empty_frac']:.0%} of the hypotheses are empty and the "
                f"mean blank posterior is {metrics.get('blank_prob', float('nan')):.3f}: the model emits only "
                "blanks. Likely causes:\n  - " + "\n  - ".join(causes))
        return [("all_blank", text)]

    def health(self, metrics: dict[str, float], update: int) -> list[tuple[str, str]]:
        blank = metrics.get("blank_frac")
        late = update >= max(2 * self.freeze_updates, self.total_updates // 2)
        if blank is not None and late and blank > 0.995:
            return [("all_blank", f"training output is {blank:.1%} blank at update {update}: the model is stuck in "
                                  "the all-blank phase (lr, freeze_finetune_updates, labels?)")]
        return []

    def find_unused_parameters(self) -> bool:
        return self.cfg.model.layerdrop > 0 or self.freeze_updates > 0

    def log_metrics(self, update: int) -> dict[str, float]:
        return {}

    def data_warnings(self) -> list[str]:
        return list(self._data_warnings)


# ---------------------------------------------------------------------------------------------- entry points
def finetune_config(config: str = "base_10h", overrides: Sequence[str] = (),
                    train: Sequence[str | os.PathLike] = (), valid: Sequence[str | os.PathLike] = (),
                    max_updates: int | None = None, seed: int | None = None, vocab: str | None = None,
                    vocab_size: int | None = None, console: Console | None = None) -> TrainConfig:
    """The typed fine-tuning config: preset (`tiny` means `tiny_ctc`) or FILE.yaml, --set overrides, then the
    explicit options; `vocab` / `vocab_size` replace task.vocab / task.vocab_size."""
    from w2v2cli.train.pretrain import resolve_config

    name = finetune_config_name(config, console or Console(stderr=True))
    cfg = resolve_config(name, overrides, train, valid, max_updates, seed)
    if vocab is not None:
        cfg = replace(cfg, task=replace(cfg.task, vocab=vocab))
    if vocab_size is not None:
        cfg = replace(cfg, task=replace(cfg.task, vocab_size=vocab_size))
    if cfg.task.name != "ctc":
        raise ConfigError(f"config '{config}' is a {cfg.task.name} config, not a fine-tuning one",
                          hint="fine-tuning presets: tiny_ctc, base_10m ... base_960h, large_10m ... large_960h, "
                                               "xlsr_cv (w2v2 config list)")
    if not cfg.data.train:
        raise DataError("no training manifest given", hint="w2v2 finetune TRAIN.tsv --valid VALID.tsv --init CKPT")
    return cfg


def finetune_task(cfg: TrainConfig, out_dir: str | os.PathLike, init: str | None, resume: str | None = None,
                  spm_type: str = "unigram", overrides: Sequence[str] = (),
                  console: Console | None = None) -> tuple[TrainConfig, CTCTask]:
    """The run's config and task from a `finetune_config`: the architecture from `init` (or the run's own checkpoint
    when resuming, or the config with `init` None/"none"), the vocabulary, the preset's regularisation.
    `overrides` are the --set strings the config was built with: keys set there are kept by `--init none`
    (`from_scratch_config`), and model.* keys that `init` overrides are reported as ignored."""
    from w2v2cli.checkpoint.io import read_checkpoint_meta
    from w2v2cli.config import load_yaml

    console = console or Console(stderr=True)
    manifests = [s.path for s in cfg.data.train]
    init_spec = None if init is None or str(init).lower() == "none" else str(init)
    if init_spec is None:
        cfg = from_scratch_config(cfg, overrides, console)
    resume_path = find_resume_checkpoint(Path(out_dir), resume)
    init_w: InitWeights | None = None
    init_kind: str | None = None
    if resume_path is not None:
        # the run's own checkpoint fixes the architecture and the vocabulary; its weights replace the init's
        meta = read_checkpoint_meta(resume_path)
        if not meta.get("vocab"):
            raise CheckpointError(f"cannot resume fine-tuning from {resume_path}: it has no vocabulary")
        arch = from_dict(ModelConfig, meta["model"], source=f"{resume_path}/config.yaml: model")
        the_vocab = Vocabulary.from_dict(meta["vocab"], source=f"{resume_path}/config.yaml: vocab")
        source = f"{resume_path}"
        init_yaml = Path(out_dir) / INIT_RECORD
        if init_spec is not None and init_yaml.is_file():
            init_kind = load_yaml(init_yaml).get("kind")
    else:
        if init_spec is not None:
            dict_path = Path(manifests[0]).parent / "dict.ltr.txt"
            init_w = load_init(init_spec, dict_path if dict_path.is_file() else None)
            arch = init_w.cfg
            ignored = sorted({s.split("=", 1)[0] for s in overrides if s.startswith("model.")} -
                             {f"model.{f}" for f in REG_FIELDS + ("vocab_size",)})
            if ignored:
                console.print(f"[yellow]note:[/] {', '.join(ignored)} from --set ignored: the architecture comes "
                              f"from --init {init_spec}", highlight=False)
        else:
            arch = cfg.model
        the_vocab, source = build_vocab(manifests, cfg.task.vocab, cfg.task.labels, cfg.task.vocab_size, spm_type,
                                        init_w.vocab if init_w is not None else None)
    model_cfg = finetune_model_config(arch, cfg.model, len(the_vocab))
    explicit = _override_keys(overrides)
    if cfg.task.reinit_layers >= model_cfg.encoder_layers and "task.reinit_layers" not in explicit:
        # the preset's count is meant for deeper models: never re-initialise a whole transformer unasked (also
        # when resuming such a run, whose architecture then comes from its own checkpoint)
        if init_w is not None:
            console.print(f"note: task.reinit_layers = {cfg.task.reinit_layers} of the preset not applied: --init "
                          f"{init_spec} has {model_cfg.encoder_layers} transformer layers", highlight=False)
        cfg = replace(cfg, task=replace(cfg.task, reinit_layers=0))
    cfg = replace(cfg, model=model_cfg)
    task = CTCTask(cfg, the_vocab, init=init_w, vocab_source=source, init_kind=init_kind)
    return cfg, task


def resolve_finetune(train_manifests: Sequence[str | os.PathLike], out_dir: str | os.PathLike, init: str | None,
                     config: str = "base_10h", overrides: Sequence[str] = (),
                     valid: Sequence[str | os.PathLike] = (), max_updates: int | None = None,
                     resume: str | None = None, seed: int | None = None, vocab: str | None = None,
                     vocab_size: int | None = None, spm_type: str = "unigram",
                     console: Console | None = None) -> tuple[TrainConfig, CTCTask]:
    """The resolved training config and the task, without training (`finetune_config` + `finetune_task`)."""
    console = console or Console(stderr=True)
    cfg = finetune_config(config, overrides, train_manifests, valid, max_updates, seed, vocab, vocab_size, console)
    return finetune_task(cfg, out_dir, init, resume, spm_type, overrides, console)


def _override_keys(overrides: Sequence[str]) -> set[str]:
    """The dotted keys that --set strings ('k=v') name: what the user set explicitly, not the preset."""
    return {text.split("=", 1)[0].strip() for text in overrides}


def from_scratch_config(cfg: TrainConfig, overrides: Sequence[str], console: Console) -> TrainConfig:
    """`--init none`: the fine-tuning presets freeze the feature encoder (feature_grad_mult 0) and, for the first
    `freeze_finetune_updates`, the transformer, because a pretrained model should keep what it learned. Without
    pretraining those parts are random, and freezing them would train on fixed random features: the baseline that
    shows what pretraining buys must train the whole model. Explicit --set values are kept."""
    explicit = _override_keys(overrides)
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


def run_finetuning(cfg: TrainConfig, out_dir: str | os.PathLike, init: str | None, resume: str | None = None,
                   spm_type: str = "unigram", overrides: Sequence[str] = (),
                   console: Console | None = None) -> TrainResult:
    """Fine-tunes with CTC from a `finetune_config` (see the module docstring and `finetune_task`). `init`:
    checkpoint spec or None/"none" (from scratch); `resume`: "auto" or a checkpoint directory."""
    from w2v2cli.config import save_yaml

    console = console or Console(stderr=True)
    cfg, task = finetune_task(cfg, out_dir, init, resume, spm_type, overrides, console)
    out = Path(out_dir)
    if task.init is not None and int(os.environ.get("RANK", "0")) == 0:
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
    if not cfg.data.valid:
        console.print("[yellow]note:[/] no --valid manifest: no WER, no checkpoint_best, no early stopping",
                      highlight=False)
    return train(cfg, task, out, resume=resume, console=console)


def finetune(train_manifests: Sequence[str | os.PathLike], out_dir: str | os.PathLike, init: str | None,
             config: str = "base_10h", overrides: Sequence[str] = (), valid: Sequence[str | os.PathLike] = (),
             max_updates: int | None = None, resume: str | None = None, seed: int | None = None,
             vocab: str | None = None, vocab_size: int | None = None, spm_type: str = "unigram",
             console: Console | None = None) -> TrainResult:
    """`finetune_config` + `run_finetuning` in one call; `vocab`/`vocab_size` set task.vocab/task.vocab_size."""
    console = console or Console(stderr=True)
    cfg = finetune_config(config, overrides, train_manifests, valid, max_updates, seed, vocab, vocab_size, console)
    return run_finetuning(cfg, out_dir, init, resume, spm_type, overrides, console)


def evaluate_ctc(checkpoint: str | os.PathLike, manifests: Sequence[str | os.PathLike], labels: str = "ltr",
                 max_tokens: int = 1_600_000, device: str = "cpu", console: Console | None = None) -> dict[str, float]:
    """Greedy-decoding loss, WER, CER (fractions) and blank statistics of a CTC checkpoint on labelled manifests,
    through the trainer's validation path (`w2v2cli.train.evaluate`)."""
    from w2v2cli.checkpoint.io import load_checkpoint
    from w2v2cli.data.dataset import AudioDataset, make_loader
    from w2v2cli.data.sampler import BucketBatchSampler
    from w2v2cli.train.config import LoggingConfig, TaskConfig
    from w2v2cli.train.evaluate import evaluate
    from w2v2cli.train.logging import RunLogger

    ckpt = load_checkpoint(checkpoint, kind="ctc", device=device)
    if ckpt.vocab is None:
        raise CheckpointError(f"{checkpoint} has no vocabulary", hint="fine-tuned checkpoints carry one")
    task = CTCTask(TrainConfig(model=ckpt.cfg, task=TaskConfig(name="ctc", labels=labels)), ckpt.vocab)
    targets = [ids for m in manifests for ids in task.targets(Path(m))]
    log = RunLogger(None, LoggingConfig(progress="none"), 0, console=console)
    for text in task.data_warnings():
        log.warn(None, text)
    ds = AudioDataset.from_manifests(manifests, targets=targets, normalize=ckpt.cfg.normalize_audio, pad=True,
                                     max_sample_size=10**12)
    longest = int(ds.sizes.max())
    sampler = BucketBatchSampler(ds.sizes, max(max_tokens, longest), longest, 0, 0, pad=True, shuffle=False)
    sampler.set_epoch(1, 0)
    metrics = evaluate(ckpt.model, task, make_loader(ds, sampler), torch.device(device))
    if metrics.get("empty_frac", 0.0) >= ALL_BLANK_EMPTY_SHARE:
        # not valid_health: its causes name a training config (update, lr, freezing) that an evaluation does not have
        log.warn(None, f"{checkpoint}: {metrics['empty_frac']:.0%} of the hypotheses on "
                       f"{', '.join(Path(m).name for m in manifests)} are empty (mean blank posterior "
                       f"{metrics.get('blank_prob', float('nan')):.3f}): the model emits only blanks; it had not "
                       "left CTC's all-blank phase when it was saved (its training log's warnings say why)")
    return metrics

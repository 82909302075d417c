"""CTC fine-tuning's task: `--init` weights and the `CTCTask` the shared trainer runs.

    >>> init = load_init("exp/pt/checkpoint_last")                 # our dir, a transformers dir or a fairseq .pt
    >>> task = CTCTask(cfg, vocab, init=init)                       # fits w2v2cli.train.tasks.Task
    >>> model = task.build_model(cfg)                               # encoder from the init, a fresh output layer

The model: the encoder weights of `--init` are copied into a fresh CTC model whose output layer is new (kept only
when the init is a CTC model with the same vocabulary); `task.reinit_layers` > 0 re-initialises that many top
transformer layers of a pretrained (not a CTC) init. For the first `task.freeze_finetune_updates` updates the
whole wav2vec2 encoder is frozen and only the output layer learns; the CTC loss is summed over frames with
`zero_infinity` and normalised by the number of target tokens; `task.pretrained_lr_scale` scales the lr of the
weights that came from the init. Validation: CTC loss per token, greedy decoding, WER and CER as fractions
(counted with w2v2cli.score, sclite's alignment); a model that emits (almost) only blanks is reported with the
likely causes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from w2v2cli.data.collate import Batch
from w2v2cli.data.labels import encode_labels
from w2v2cli.data.manifest import Manifest
from w2v2cli.errors import ConfigError, DataError
from w2v2cli.model.config import ModelConfig
from w2v2cli.model.losses import ctc_loss, min_ctc_frames
from w2v2cli.train.config import TrainConfig
from w2v2cli.vocab import Vocabulary, check_vocab_size

#: A validation where at least this share of hypotheses is empty is reported as "all blank".
ALL_BLANK_EMPTY_SHARE = 0.9


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


#: the prior of an output that never occurs in the labels (its log is the starting bias: rare, not impossible)
UNSEEN_SHARE = 1e-4


def label_prior_bias(targets, frames: int, vocab_size: int, blank: int) -> torch.Tensor:
    """`[vocab_size]` log shares of `frames` output frames: each token's count in `targets` (label id lists), the
    blank the frames left over (at least UNSEEN_SHARE), unseen outputs UNSEEN_SHARE; the shares sum to 1."""
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    for ids in targets:
        counts += torch.bincount(torch.as_tensor(list(ids), dtype=torch.long), minlength=vocab_size).double()
    share = counts / max(frames, 1)
    share[blank] = max(1.0 - float(share.sum()), UNSEEN_SHARE)
    share = share.clamp(min=UNSEEN_SHARE)
    return (share / share.sum()).log().float()


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
        # the run's length: optim.max_updates, or a time budget's plan once made (the trainer sets it; None until then)
        self.total_updates: int | None = cfg.optim.max_updates or None
        self.infeasible: dict[str, int] = {}  # manifest -> utterances whose labels need more frames than they have
        self._data_warnings: list[str] = []
        self._frozen: bool | None = None

    # -- model and data -------------------------------------------------------------------------------------
    def prepare_model(self, model: nn.Module, dataset) -> list[str]:
        """`task.output_bias: prior`: the output layer's bias becomes the log share of the training frames of each
        output (a fresh output layer only: a head kept from a CTC --init keeps its bias)."""
        kept_head = self.init is not None and self.init.head_state is not None and self.init.vocab == self.vocab
        if self.cfg.task.output_bias != "prior" or kept_head or dataset.targets is None:
            return []
        frames = int(model.wav2vec2.output_lengths(torch.as_tensor(dataset.sizes)).sum())
        bias = label_prior_bias(dataset.targets, frames, len(self.vocab), self.vocab.blank)
        with torch.no_grad():
            model.lm_head.bias.copy_(bias.to(model.lm_head.bias))
        blank_share = float(bias[self.vocab.blank].exp())
        return [f"output bias: label prior over {frames} training frames (blank {blank_share:.0%} of them)"]

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
        elif self.total_updates is not None and self.freeze_updates >= self.total_updates // 2:
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
        late = self.total_updates is not None and update >= max(2 * self.freeze_updates, self.total_updates // 2)
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

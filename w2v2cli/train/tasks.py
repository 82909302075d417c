"""Tasks: what differs between pretraining and fine-tuning. The `Trainer` loop is shared and never forked.

    >>> task = PretrainTask(cfg)                      # contrastive + diversity + feature penalty, or BEST-RQ
    >>> result = train(cfg, task, out_dir="exp/pt")   # w2v2cli.train.trainer.train

A task builds the model, turns a `Batch` into `(loss_sum, sample_size, metrics)` where `loss_sum / sample_size`
is the per-item loss (so the trainer can normalise by the sample size summed over micro-batches and ranks),
scores validation batches as additive sums, and names its own health problems. A fine-tuning `CTCTask` fits
the same protocol: `kind = "ctc"`, `vocab` set, `targets()` returning label ids per utterance, `begin_update()`
freezing the transformer for `freeze_finetune_updates`, `valid_metrics()` turning error counts into WER (a
fraction) and `valid_health()` naming the causes of an all-blank model. The trainer never asks a task what it is:
what differs goes through these methods.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import nn

from w2v2cli.data.collate import Batch
from w2v2cli.data.dataset import AudioDataset
from w2v2cli.data.manifest import Manifest
from w2v2cli.train.config import TrainConfig


@runtime_checkable
class Task(Protocol):
    kind: str  # checkpoint kind written with the weights: "pretrain" | "ctc"
    vocab: Any  # w2v2cli.vocab.Vocabulary for CTC, None for pretraining
    sum_metrics: tuple[str, ...]  # metrics summed over micro-batches/ranks; the others are sample-size weighted
    total_updates: int | None  # the run's length (optim.max_updates, or a time budget's plan; None until a budget
    # without a cap is planned): set by the trainer

    def build_model(self, cfg: TrainConfig) -> nn.Module:
        """A fresh model (random or from an --init checkpoint); the trainer restores weights on resume."""

    def targets(self, manifest: Path, parsed: Manifest | None) -> Sequence[Sequence[int]] | None:
        """Label ids per utterance of `manifest` (None for unlabelled pretraining); `parsed` is the manifest as
        the trainer read it (None when the file does not exist), so the task need not read it again."""

    def prepare_model(self, model: nn.Module, dataset: AudioDataset) -> list[str]:
        """Called once when a run starts at update 0, with the unwrapped model on its device and the training data,
        before the distributed wrapper: data-dependent initialisation (e.g. k-means targets); returns notes to log."""

    def begin_update(self, model: nn.Module, update: int) -> None:
        """Called before each update with the unwrapped model (e.g. freeze/unfreeze parts)."""

    def lr_scales(self, model: nn.Module) -> dict[str, float]:
        """Parameter name -> multiplier of the scheduled lr, for the parameters that do not train at the full lr."""

    def compute_loss(self, model: nn.Module, batch: Batch, update: int) -> tuple[torch.Tensor, int, dict[str, float]]:
        """(loss_sum, sample_size, metrics) for one micro-batch; `model` may be DDP-wrapped."""

    def valid_step(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        """Additive sums for one validation batch (e.g. loss_sum, sample_size, errors, words)."""

    def valid_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """Final validation metrics from the sums over all batches and ranks."""

    def log_metrics(self, update: int) -> dict[str, float]:
        """Values of the task's schedules after `update` updates, added to each training log line."""

    def health(self, metrics: dict[str, float], update: int) -> list[tuple[str, str]]:
        """(key, warning) pairs for task-specific problems seen in the logged training metrics."""

    def valid_health(self, metrics: dict[str, float], update: int) -> list[tuple[str, str]]:
        """(key, warning) pairs for task-specific problems seen in the validation metrics."""

    def data_warnings(self) -> list[str]:
        """Warnings about the data found by `targets()` (the trainer logs them once the run starts)."""

    def find_unused_parameters(self) -> bool:
        """True when some parameters may get no gradient in an update (DDP must then look for them)."""


#: Code perplexity below this share of G x V after warm-up is reported as codebook collapse (healthy tiny runs keep
#: 15-25 %; the collapse seen with a fast temperature decay fell to 5 %).
COLLAPSE_SHARE = 0.08
#: BEST-RQ: a validation whose masked frames' targets use fewer than this share of the codes they could use
#: (min(V, masked frames)) is reported: the quantizer's frozen targets then carry little information.
RQ_USAGE_SHARE = 0.05
#: BEST-RQ: a training accuracy below this many times chance (1 / V) after warm-up is reported as "at chance".
RQ_CHANCE_FACTOR = 3.0
#: BEST-RQ validation sums: the masked frames' target counts, one key per used code ("rq_code.BOOK.CODE")
RQ_CODE_KEY = "rq_code."


#: k-means targets: fitted on at most this many encoder frames (20 ms each for the fbank presets: about 67 minutes)
KMEANS_FRAMES = 200_000
#: audio samples per log-mel frame (10 ms at 16 kHz), to turn KMEANS_FRAMES into an amount of audio
KMEANS_FRAME_SAMPLES = 160


def kmeans_utterances(dataset: AudioDataset, seed: int, samples: int):
    """1-D waveforms of training utterances in a seeded random order, up to about `samples` samples in all (each
    cropped to data.max_sample_size as in training); unreadable ones are passed over."""
    from w2v2cli.data.dataset import SkippedBatch
    from w2v2cli.data.sampler import BatchSpec

    order = np.random.default_rng([seed, 7919]).permutation(len(dataset))
    taken = 0
    for position, idx in enumerate(order.tolist()):
        if taken >= samples:
            return
        batch = dataset.load(BatchSpec(epoch=0, position=position, indices=(idx,)))
        if isinstance(batch, SkippedBatch):
            continue
        wav = batch.waveforms[0, : int(batch.lengths[0])]
        taken += wav.numel()
        yield wav


class PretrainTask:
    """Self-supervised pretraining with `model.objective`: wav2vec 2.0's contrastive objective
    (w2v2cli.model.losses.pretraining_loss) or BEST-RQ (`bestrq_loss`). The trainer sees one task either way."""

    kind = "pretrain"
    vocab = None
    sum_metrics = ("num_masked",)

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.bestrq = cfg.model.objective == "bestrq"
        # the per-frame loss of a model that knows nothing: ln(K + 1) distractors + target, or ln(V) codes
        self.chance = math.log(cfg.model.rq_codebook_size if self.bestrq else cfg.model.num_negatives + 1)
        self.total_updates: int | None = cfg.optim.max_updates or None  # as CTCTask's

    def build_model(self, cfg: TrainConfig) -> nn.Module:
        from w2v2cli.model import build_model

        return build_model(cfg.model, "pretrain")

    def targets(self, manifest: Path, parsed: Manifest | None) -> None:
        return None

    def prepare_model(self, model: nn.Module, dataset: AudioDataset) -> list[str]:
        """BEST-RQ with k-means targets: fits them on up to KMEANS_FRAMES frames of training utterances drawn with
        the run's seed (every rank draws and fits the same, on the CPU)."""
        if not (self.bestrq and self.cfg.model.rq_targets == "kmeans"):
            return []
        t0 = time.monotonic()
        fit = model.fit_targets(kmeans_utterances(dataset, self.cfg.seed, KMEANS_FRAMES * self.cfg.model.rq_stride
                                                  * KMEANS_FRAME_SAMPLES))
        return [f"k-means targets: {self.cfg.model.rq_codebook_size} centroids fitted on {fit.frames} frames in "
                f"{fit.iterations} iterations ({time.monotonic() - t0:.0f} s; frames per centroid {fit.smallest} to "
                f"{fit.largest}, mean squared distance {fit.inertia:.1f})"]

    def begin_update(self, model: nn.Module, update: int) -> None:
        return None

    def temperature(self, update: int) -> float:
        from w2v2cli.model import gumbel_temperature

        return gumbel_temperature(self.cfg.model.latent_temp, update)

    def log_metrics(self, update: int) -> dict[str, float]:
        return {} if self.bestrq else {"temperature": self.temperature(update)}

    def compute_loss(self, model: nn.Module, batch: Batch, update: int) -> tuple[torch.Tensor, int, dict[str, float]]:
        from w2v2cli.model.losses import bestrq_loss, pretraining_loss

        if self.bestrq:
            return bestrq_loss(model(batch.waveforms, batch.lengths))
        out = model(batch.waveforms, batch.lengths, temperature=self.temperature(update))
        return pretraining_loss(out, self.cfg.task.diversity_weight, self.cfg.task.feature_penalty_weight)

    def valid_step(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        if self.bestrq:
            return self._bestrq_valid_step(model, batch)
        loss, sample_size, m = self.compute_loss(model, batch, update=10**9)  # final temperature
        w = float(sample_size)
        return {"loss_sum": float(loss), "sample_size": w, "contrastive_sum": m["contrastive"] * w,
                "correct": m["accuracy"] * w, "code_perplexity_sum": m["code_perplexity"] * w}

    def _bestrq_valid_step(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        """Loss and accuracy sums, and the count of every target code the batch's masked frames use (summed over
        batches and ranks, they give the validation's code usage and perplexity)."""
        from w2v2cli.model.losses import bestrq_loss

        out = model(batch.waveforms, batch.lengths)
        loss, sample_size, m = bestrq_loss(out)
        w = float(sample_size)
        sums = {"loss_sum": float(loss.detach()), "sample_size": w, "correct": m["accuracy"] * w}
        for book in range(out.targets.shape[1]):
            codes, counts = torch.unique(out.targets[:, book], return_counts=True)
            for code, count in zip(codes.tolist(), counts.tolist()):
                sums[f"{RQ_CODE_KEY}{book}.{code}"] = float(count)
        return sums

    def valid_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums.get("sample_size", 0.0), 1.0)
        if self.bestrq:
            usage, perplexity = self._code_stats(sums)
            return {"loss": sums["loss_sum"] / n, "accuracy": sums["correct"] / n, "code_usage": usage,
                    "code_perplexity": perplexity, "num_masked": sums["sample_size"]}
        return {"loss": sums["loss_sum"] / n, "contrastive": sums["contrastive_sum"] / n,
                "accuracy": sums["correct"] / n, "code_perplexity": sums["code_perplexity_sum"] / n,
                "num_masked": sums["sample_size"]}

    def _code_stats(self, sums: dict[str, float]) -> tuple[float, float]:
        """(distinct codes / V, exp(entropy) of the codes), means over the codebooks, from the validation sums."""
        books = self.cfg.model.rq_num_codebooks
        counts: list[list[float]] = [[] for _ in range(books)]
        for key, value in sums.items():
            if key.startswith(RQ_CODE_KEY) and value > 0:
                counts[int(key[len(RQ_CODE_KEY):].split(".")[0])].append(value)
        usage = perplexity = 0.0
        for book in counts:
            total = sum(book)
            usage += len(book) / self.cfg.model.rq_codebook_size
            if total:
                perplexity += math.exp(-sum(c / total * math.log(c / total) for c in book))
        return usage / books, perplexity / books

    def health(self, metrics: dict[str, float], update: int) -> list[tuple[str, str]]:
        if self.bestrq:
            return self._bestrq_health(metrics, update)
        out = []
        warm = max(self.cfg.lr.warmup_updates, 1)
        contrastive = metrics.get("contrastive")
        if contrastive is not None and update > 2 * warm and contrastive > 0.95 * self.chance:
            out.append(("chance", f"contrastive loss {contrastive:.3f} is still at chance level "
                                  f"ln({self.cfg.model.num_negatives}+1) = {self.chance:.3f} after warm-up: the model "
                                  "cannot tell targets from distractors (lr too high/low? too little audio per batch?)"))
        code_ppl = metrics.get("code_perplexity")
        groups, entries = self.cfg.model.latent_groups, self.cfg.model.latent_vars
        if code_ppl is not None and update > warm and code_ppl < max(COLLAPSE_SHARE * groups * entries, 2.0 * groups):
            out.append(("collapse", f"codebook collapse: code perplexity {code_ppl:.2f} of {groups} x {entries} "
                                    f"entries (< {100 * COLLAPSE_SHARE:.0f} % in use): the targets carry little "
                                    "information; raise task.diversity_weight, slow the temperature decay "
                                    "(model.latent_temp) or lower optim.lr"))
        return out

    def _bestrq_health(self, metrics: dict[str, float], update: int) -> list[tuple[str, str]]:
        warm = max(self.cfg.lr.warmup_updates, 1)
        accuracy = metrics.get("accuracy")
        codes = self.cfg.model.rq_codebook_size
        if accuracy is not None and update > 2 * warm and accuracy < RQ_CHANCE_FACTOR / codes:
            return [("chance", f"BEST-RQ accuracy {accuracy:.4f} is still at chance level 1/{codes} = {1 / codes:.4f} "
                               f"after warm-up (loss {metrics.get('loss', float('nan')):.3f}, chance ln({codes}) = "
                               f"{self.chance:.3f}): the model does not predict the masked frames' codes (lr too "
                               "high/low? too little audio per batch? no masked frames?)")]
        return []

    def valid_health(self, metrics: dict[str, float], update: int) -> list[tuple[str, str]]:
        usage, masked = metrics.get("code_usage"), metrics.get("num_masked", 0.0)
        if not self.bestrq or usage is None or not masked:
            return []
        codes = self.cfg.model.rq_codebook_size
        used = usage * codes
        possible = min(codes, masked)
        if used >= RQ_USAGE_SHARE * possible:
            return []
        return [("code_usage", f"BEST-RQ targets use {used:.0f} of {codes} codes over the validation's {masked:.0f} "
                               f"masked frames (< {100 * RQ_USAGE_SHARE:.0f} % of the {possible:.0f} they could use; "
                               f"perplexity {metrics.get('code_perplexity', float('nan')):.1f}): the frozen targets "
                               "carry little information. The log-mel frames may vary little (silence, constant or "
                               "clipped audio, another sample rate than 16 kHz); another model.rq_seed or a smaller "
                               "model.rq_codebook_dim spreads them over more codes")]

    def data_warnings(self) -> list[str]:
        return []

    def lr_scales(self, model: nn.Module) -> dict[str, float]:
        return {}

    def find_unused_parameters(self) -> bool:
        return self.cfg.model.layerdrop > 0

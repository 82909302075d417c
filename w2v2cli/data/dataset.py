"""Audio datasets that load whole batches (lhotse style: the sampler picks utterances, the dataset loads them).

    >>> ds = AudioDataset.from_manifests(["train.tsv"], max_sample_size=250_000, pad=False, seed=1)
    >>> sampler = BucketBatchSampler(ds.sizes, max_tokens=1_400_000, max_sample_size=250_000, groups=ds.groups)
    >>> loader = make_loader(ds, sampler, num_workers=2)
    >>> for batch in loader: ...                    # Batch(waveforms [B, T], lengths [B], ...)

Random crops are a pure function of `(seed, epoch, batch position, slot)`, so they are the same whichever
worker or rank loads the batch and after a resume. Errors raised while loading (an unreadable file) are
carried out of DataLoader workers and re-raised in the main process with their message and hint intact.

With `skip_bad=True` (training and validation) an utterance that cannot be read or holds NaN/inf samples is left
out of its batch and reported in `Batch.bad_files`; a batch with no usable utterance at all arrives as a
`SkippedBatch`. The trainer counts them against `data.max_bad_files`. Skipping is deterministic (the same files
fail on every pass), so a resumed run still repeats the uninterrupted one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from w2v2cli.data.augment import Augmenter
from w2v2cli.data.collate import Batch, collate
from w2v2cli.data.sampler import BatchSpec
from w2v2cli.errors import AudioError, DataError, W2V2Error


@dataclass
class LoadFailure:
    """A W2V2Error raised in a worker, shipped to the main process (see `raise_if_failed`)."""

    cls: type
    message: str
    hint: str | None


@dataclass
class SkippedBatch:
    """A batch none of whose utterances could be used (`bad_files`: (path, reason) of each)."""

    bad_files: list[tuple[str, str]]


def raise_if_failed(item: Batch | SkippedBatch | LoadFailure) -> Batch | SkippedBatch:
    if isinstance(item, LoadFailure):
        raise item.cls(item.message, hint=item.hint)
    return item


def audio_error_reason(err: AudioError) -> str:
    """An AudioError's message without the leading path (the path is reported beside it)."""
    return err.message.split(": ", 1)[-1]


class AudioDataset(Dataset):
    """Indexed by `BatchSpec`; returns a collated `Batch` (see the module docstring).

    paths, sizes: one entry per utterance (sizes = samples, as the manifest records them).
    groups: index arrays, one per language / manifest group (for multilingual sampling).
    targets: label ids per utterance (fine-tuning) or None.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        sizes: Sequence[int],
        sample_rate: int = 16000,
        normalize: bool = False,
        max_sample_size: int = 250_000,
        pad: bool = False,
        seed: int = 1,
        targets: Sequence[Sequence[int]] | None = None,
        groups: Sequence[Sequence[int]] | None = None,
        group_names: Sequence[str] | None = None,
        augment: Augmenter | None = None,
        skip_bad: bool = False,
        length_quantum: int = 0,
    ):
        if len(paths) != len(sizes):
            raise ValueError(f"{len(paths)} paths but {len(sizes)} sizes")
        if targets is not None and len(targets) != len(paths):
            raise ValueError(f"{len(targets)} targets for {len(paths)} utterances")
        self.paths = [str(p) for p in paths]
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.sample_rate = sample_rate
        self.normalize = normalize
        self.max_sample_size = max_sample_size
        self.pad = pad
        self.seed = seed
        self.targets = targets
        self.groups = [np.asarray(g, dtype=np.int64) for g in groups] if groups else [np.arange(len(paths))]
        self.group_names = list(group_names) if group_names else [f"group{i}" for i in range(len(self.groups))]
        self.augment = augment  # training only: speed perturbation / noise (w2v2cli.data.augment)
        self.skip_bad = skip_bad  # leave unreadable / non-finite utterances out (see the module docstring)
        self.length_quantum = length_quantum  # batches' width in multiples of this (collate's `quantum`); 0 = off

    @classmethod
    def from_manifests(
        cls,
        manifests: Sequence[str | os.PathLike],
        langs: Sequence[str] | None = None,
        targets: Sequence[Sequence[int]] | None = None,
        check_files: bool = True,
        max_missing: int = 0,
        **kwargs,
    ) -> "AudioDataset":
        """Concatenates manifests; manifests with the same `lang` form one sampling group. Up to `max_missing`
        listed files may be missing (with `skip_bad`, loading then leaves them out); more is a DataError."""
        from w2v2cli.data.manifest import read_manifest

        paths: list[str] = []
        sizes: list[int] = []
        by_lang: dict[str, list[int]] = {}
        for i, manifest in enumerate(manifests):
            manifest = Path(manifest)
            if manifest.is_dir():
                raise DataError(f"{manifest}: a directory without shards.json, not a shard directory",
                                hint="an interrupted `w2v2 shard` leaves no index: run it again; or give a .tsv")
            if not manifest.is_file():
                raise DataError(f"manifest not found: {manifest}",
                                hint="create one with `w2v2 manifest AUDIO_DIR --dest DIR`")
            m = read_manifest(manifest)
            if not m.entries:
                raise DataError(f"{manifest}: the manifest lists no audio files",
                                hint="check the corpus directory and the extension given to `w2v2 manifest`")
            lang = (langs[i] if langs and langs[i] else str(manifest))
            start = len(paths)
            for j, entry in enumerate(m.entries):
                paths.append(str(m.abspath(j)))
                sizes.append(int(entry.num_samples))
            by_lang.setdefault(lang, []).extend(range(start, len(paths)))
        if check_files:
            missing = [p for p in paths if not os.path.isfile(p)]
            if missing and (len(missing) > max_missing or len(missing) == len(paths)):
                shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
                raise DataError(f"{len(missing)} audio file(s) listed in {', '.join(map(str, manifests))} "
                                f"do not exist: {shown}",
                                hint="the manifest's first line must be the corpus root; re-run `w2v2 manifest`")
        return cls(paths, sizes, targets=targets, groups=list(by_lang.values()), group_names=list(by_lang),
                   **kwargs)

    def __len__(self) -> int:
        return len(self.paths)

    def _crop(self, wav: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        if len(wav) <= size:
            return wav
        start = int(rng.integers(0, len(wav) - size + 1))
        return wav[start : start + size]

    def read_audio(self, idx: int) -> np.ndarray:
        """Utterance `idx` as float32 mono at `sample_rate` (an `AudioError` naming it if it cannot be used); the
        one place a dataset reads audio (shard datasets read tar members instead: w2v2cli/data/shard_dataset.py)."""
        from w2v2cli.audio import load_audio

        return load_audio(self.paths[idx], target_sr=self.sample_rate, normalize=self.normalize)

    def load(self, spec: BatchSpec) -> Batch | SkippedBatch:
        wavs, kept, bad = [], [], []
        for slot, idx in enumerate(spec.indices):
            try:
                wav = self.read_audio(idx)
            except AudioError as err:
                if not self.skip_bad:
                    raise
                bad.append((self.paths[idx], audio_error_reason(err)))
                continue
            kept.append(idx)
            rng = np.random.default_rng([self.seed, spec.epoch, spec.position, slot])
            if self.augment is not None:
                wav = self.augment(wav, rng)
            wavs.append(self._crop(wav, spec.crop_to or self.max_sample_size, rng))
        if not wavs:
            return SkippedBatch(bad)
        # without padding, collate crops to the real shortest (the manifest's counts may be off by a few samples)
        targets = [self.targets[i] for i in kept] if self.targets is not None else None
        batch = collate(wavs, ids=kept, targets=targets, pad=self.pad, quantum=self.length_quantum)
        batch.bad_files = bad
        return batch

    def __getitem__(self, spec: BatchSpec) -> Batch | SkippedBatch | LoadFailure:
        try:
            return self.load(spec)
        except W2V2Error as err:  # keep the message and hint readable across the worker boundary
            return LoadFailure(type(err), err.message, err.hint)


def make_loader(dataset: AudioDataset, sampler, num_workers: int = 0, prefetch_factor: int = 2,
                pin_memory: bool = False, worker_init_fn=None) -> DataLoader:
    """A DataLoader over whole batches (batch_size=None): workers load batches ahead of the training step."""
    extra = {"prefetch_factor": prefetch_factor, "persistent_workers": False} if num_workers > 0 else {}
    return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=num_workers,
                      pin_memory=pin_memory, collate_fn=_identity, worker_init_fn=worker_init_fn, **extra)


def _identity(item):
    return item

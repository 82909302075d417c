"""Batches by total audio length: bucketed, seeded per epoch, distributed-aware and resumable.

    >>> sampler = BucketBatchSampler(sizes, max_tokens=1_400_000, max_sample_size=250_000, min_sample_size=32_000,
    ...                              seed=1, rank=0, world_size=8, update_freq=1)
    >>> sampler.set_epoch(epoch=3, start=160)      # resume: global batch 160 of epoch 3
    >>> for spec in sampler: ...                   # BatchSpec(epoch, position, indices, crop_to)

Each epoch the utterances are shuffled with `(seed, epoch)`, stably sorted by cropped length (so equal lengths
are in random order: length buckets), cut greedily into batches whose `size x longest` stays within
`max_tokens`, and the batch order is shuffled (except in the first `sorted_epochs` epochs, which go from the
shortest batch to the longest: SortaGrad). The global list is the same on every rank; it is padded by
wrapping around to a multiple of `world_size x update_freq`, so every rank gets the same number of batches and an
update always consumes `world_size x update_freq` global batches: rank r takes global batches
`u*W*F + f*W + r`. This makes 2 processes with update_freq 1 see exactly the batches that 1 process with
update_freq 2 sees. The position to resume from is one integer (global batches consumed in the epoch).

Multilingual: with several `groups` (one index array per language), each epoch draws
`round(p_l * U)` utterances from language l, with `p_l ~ (n_l / N) ** alpha` over audio amounts n_l
(XLSR's sampling; alpha = 1 keeps the natural distribution, alpha = 0 is uniform over languages).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from w2v2cli.errors import ConfigError, DataError


@dataclass(frozen=True)
class BatchSpec:
    """What the dataset must load for one batch.

    epoch, position: where the batch sits (global batch index within the epoch); seeds its random crops.
    indices: utterance indices (into the dataset's manifest entries).
    crop_to: 0 = each utterance cropped to max_sample_size then padded; > 0 = all cropped to this many samples.
    """

    epoch: int
    position: int
    indices: tuple[int, ...]
    crop_to: int = 0


def language_probabilities(amounts: Sequence[float], alpha: float) -> np.ndarray:
    """p_l proportional to (n_l / N) ** alpha (XLSR)."""
    amounts = np.asarray(amounts, dtype=np.float64)
    if amounts.sum() <= 0:
        raise DataError("multilingual sampling: every language has zero audio")
    p = (amounts / amounts.sum()) ** alpha
    return p / p.sum()


def draw_groups(groups: Sequence[np.ndarray], probs: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """One epoch's multilingual draw: `round(p_l * U)` items of group l (U: the items of all groups), up-sampled
    with whole copies of the group and a random remainder drawn without replacement. Items are utterances here and
    shards in `w2v2cli.data.shard_dataset`."""
    total = sum(len(g) for g in groups)
    picked = []
    for group, p in zip(groups, probs):
        if len(group) == 0:
            continue
        want = max(1, int(round(p * total)))
        reps, rest = divmod(want, len(group))  # up-sample with whole copies, then a random remainder
        picked.extend([group] * reps)
        picked.append(rng.choice(group, size=rest, replace=False))
    return np.concatenate(picked)


def cut_batches(indices: Sequence[int], effective: np.ndarray, max_tokens: int,
                max_batch_size: int = 0) -> list[tuple[int, ...]]:
    """Greedy batches of `indices` (sorted by ascending `effective` length, the cropped sample counts): a batch
    closes before the utterance that would make `size x longest` exceed `max_tokens` (or the batch hold more than
    `max_batch_size` utterances, when > 0)."""
    batches: list[tuple[int, ...]] = []
    current: list[int] = []
    for idx in np.asarray(indices).tolist():
        longest = effective[idx]  # ascending order: the newest is the longest
        too_many = max_batch_size and len(current) >= max_batch_size
        if current and ((len(current) + 1) * longest > max_tokens or too_many):
            batches.append(tuple(current))
            current = []
        current.append(idx)
    if current:
        batches.append(tuple(current))
    return batches


def check_batch_limits(max_tokens: int, max_sample_size: int) -> None:
    """The one rule between the two batch limits: every utterance, cropped to `max_sample_size` samples, must fit a
    batch of `max_tokens` samples (ConfigError naming the config keys)."""
    if max_tokens < max_sample_size:
        raise ConfigError(f"data.max_tokens ({max_tokens}) must be >= data.max_sample_size ({max_sample_size}) so "
                          "that every utterance fits a batch")


def check_resume_position(start: int, epoch: int, total: int, chunk: int) -> None:
    """A resume position must be a whole number of updates (`chunk` = world_size x update_freq global batches) within
    the epoch's `total` global batches (DataError naming the position)."""
    if start % chunk or start > total:
        raise DataError(f"cannot resume at global batch {start} of epoch {epoch}: not a multiple of "
                        f"world_size x update_freq ({chunk}) or past the epoch's {total} batches",
                        hint="resume with the same number of processes x update_freq as the original run")


class BucketBatchSampler:
    """Yields this rank's `BatchSpec`s for one epoch (set with `set_epoch`); see the module docstring."""

    def __init__(
        self,
        sizes: Sequence[int],
        max_tokens: int,
        max_sample_size: int,
        min_sample_size: int = 0,
        max_batch_size: int = 0,
        pad: bool = False,
        seed: int = 1,
        shuffle: bool = True,
        groups: Sequence[Sequence[int]] | None = None,
        alpha: float = 0.5,
        rank: int = 0,
        world_size: int = 1,
        update_freq: int = 1,
        drop_longer: bool = False,
        wrap: bool = True,
        sorted_epochs: int = 0,
    ):
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.max_tokens = int(max_tokens)
        self.max_sample_size = int(max_sample_size)
        self.min_sample_size = int(min_sample_size)
        self.max_batch_size = int(max_batch_size)
        self.pad = pad
        self.seed = int(seed)
        self.shuffle = shuffle
        self.rank, self.world_size, self.update_freq = int(rank), int(world_size), int(update_freq)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        check_batch_limits(self.max_tokens, self.max_sample_size)
        keep = self.sizes >= self.min_sample_size
        if drop_longer:  # labelled data cannot be cropped: drop what does not fit
            keep &= self.sizes <= self.max_sample_size
        self.num_dropped = int((~keep).sum())
        self.effective = np.minimum(self.sizes, self.max_sample_size)
        if groups is None:
            groups = [np.arange(len(self.sizes))]
        self.groups = [np.asarray([i for i in g if keep[i]], dtype=np.int64) for g in groups]
        if sum(len(g) for g in self.groups) == 0:
            raise DataError(f"no utterance is usable: all {len(self.sizes)} are shorter than min_sample_size "
                            f"({self.min_sample_size} samples)" + (" or longer than max_sample_size"
                                                                   if drop_longer else ""),
                            hint="lower data.min_sample_size or check the manifest's sample counts")
        amounts = [float(self.sizes[g].sum()) for g in self.groups]
        self.probs = language_probabilities(amounts, alpha) if len(self.groups) > 1 else np.ones(1)
        self.wrap = wrap  # False (validation): no repeated batches, ranks may get one batch less
        self.sorted_epochs = int(sorted_epochs)  # epochs 1..N: batches from the shortest to the longest
        self.epoch, self.start = 1, 0
        self.num_distinct = 0  # set with each epoch plan (global_batches)
        self._cache: tuple[int, list[tuple[int, ...]]] | None = None

    # -- epoch plan -------------------------------------------------------------------------------------------
    def _epoch_indices(self, rng: np.random.Generator) -> np.ndarray:
        if len(self.groups) == 1:
            return self.groups[0]
        return draw_groups(self.groups, self.probs, rng)

    def global_batches(self, epoch: int) -> list[tuple[int, ...]]:
        """The epoch's batches (identical on every rank), padded to a multiple of world_size x update_freq."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        indices = self._epoch_indices(rng)
        if self.shuffle:
            indices = rng.permutation(indices)
        # stable sort: equal lengths stay in their (random) order, so buckets differ between epochs
        indices = indices[np.argsort(self.effective[indices], kind="stable")]
        batches = cut_batches(indices, self.effective, self.max_tokens, self.max_batch_size)
        if self.shuffle and epoch > self.sorted_epochs:  # else ascending lengths, as built
            order = rng.permutation(len(batches))
            batches = [batches[i] for i in order]
        chunk = self.world_size * self.update_freq
        self.num_distinct = len(batches)  # the global batches from `num_distinct` on repeat earlier ones
        if self.wrap and len(batches) % chunk:  # wrap around so every rank does the same number of updates
            missing = chunk - len(batches) % chunk
            batches = batches + [batches[i % len(batches)] for i in range(missing)]
        self._cache = (epoch, batches)
        return batches

    def spec(self, epoch: int, position: int) -> BatchSpec:
        indices = self.global_batches(epoch)[position]
        crop_to = 0 if self.pad else int(self.effective[list(indices)].min())
        return BatchSpec(epoch, position, indices, crop_to)

    # -- iteration --------------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Next iteration yields this rank's batches of `epoch`, from global batch `start` on."""
        check_resume_position(start, epoch, len(self.global_batches(epoch)), self.world_size * self.update_freq)
        self.epoch, self.start = epoch, start

    def num_global_batches(self, epoch: int | None = None) -> int:
        return len(self.global_batches(self.epoch if epoch is None else epoch))

    def __len__(self) -> int:
        return (self.num_global_batches() - self.start) // self.world_size

    def __iter__(self) -> Iterator[BatchSpec]:
        total = self.num_global_batches()
        for position in range(self.start + self.rank, total, self.world_size):
            yield self.spec(self.epoch, position)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "start": self.start, "seed": self.seed}

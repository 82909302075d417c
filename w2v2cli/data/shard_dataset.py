"""Training on shard directories (w2v2cli/data/shards.py): a deterministic per-epoch plan, streamed by whole shards.

    >>> members = ShardMembers.from_dirs(["data/train.shards"], max_sample_size=250_000, pad=False, seed=1)
    >>> plan = ShardPlan(members.shard_members, members.sizes, max_tokens=1_400_000, max_sample_size=250_000,
    ...                  rank=0, world_size=8, update_freq=1, streams=4)            # streams = loader workers
    >>> plan.set_epoch(epoch=3, start=160)                                         # resume: global batch 160
    >>> loader = make_stream_loader(ShardStream(members, plan), num_workers=4)
    >>> for batch in loader: ...                                                   # Batch / SkippedBatch

The plan of an epoch is computed from the index alone (every member's sample count), identically on every rank and
in every loader worker, with the seed and the epoch:

1. Draws: every shard once; with several languages (`shard_groups`), `round(p_l * S)` shards of language l, p_l ~
   (n_l / N) ** alpha over audio amounts (XLSR), up-sampled with whole copies as the manifest sampler does
   (w2v2cli/data/sampler.py: `draw_groups`), so a small language's shards are read more than once an epoch. The
   draws are shuffled (shard-level shuffle).
2. Pools: consecutive draws form pools of about `POOL_BATCHES` batches of audio (a 30-minute shard at BASE's
   max_tokens is about 20 batches, so LibriSpeech pools hold two shards; never fewer pools than streams of all
   ranks, when the shards allow). Batches never cross a pool: its members are shuffled (seed, epoch, pool), stably
   sorted by cropped length and cut by total audio exactly as manifests' batches are (`cut_batches`: `size x
   longest <= max_tokens`, longer utterances cropped to `max_sample_size`, shorter than `min_sample_size` dropped,
   labelled ones longer than `max_sample_size` dropped), then the pool's batches are shuffled (in length order
   during `sorted_epochs`). A pool is the shuffle buffer: bigger than one shard, so that bucketing by length loses
   little audio to the crops.
3. Ranks, then streams: each pool goes whole to the rank with the fewest batches so far, and within a rank to the
   stream (one per loader worker) with the fewest: a shard is read by one (rank, worker) only, once per draw.
4. Equal length: every rank must run the same number of updates, a multiple of `update_freq`. Ranks with fewer
   batches split their largest batches in halves (still within one pool, still within max_tokens) until they have
   as many; only when there is nothing left to split (tiny data) are empty batches added at the end
   (`SkippedBatch` without files: the trainer runs them with weight 0).
5. Order: a rank's batches are its streams taken in turn (stream 0, 1, ..., an exhausted stream dropping out), which
   is the order in which a DataLoader returns the batches of its workers; rank r's k-th batch is global batch
   `k x world_size + r`, so the trainer's one data position and its per-batch seeds work as for manifests.

A worker reads the shards of its current pool once each, start to end (`read_shard`: one open, one sequential
read, the size and sha256 checked), keeps the FLAC bytes of the pool's members in memory and decodes them batch by
batch.

Resume semantics: exact. The trainer stores the global batch position of the epoch (`set_epoch(epoch, start)`);
rank r continues at its batch `start / world_size`, each worker skips the batches of its stream that came before it
(whole pools without reading them; the shards of a partly consumed pool are read again and its consumed batches are
not yielded), and worker w takes the stream `(s0 + w) mod streams`, s0 being the stream due at that position, so the
batches arrive in the uninterrupted order, with the same crops (seeded by epoch, position and slot). A resumed run
repeats the uninterrupted one update for update (tests/train/test_shard_training.py kills one with SIGKILL). This
holds when the world size, `optim.update_freq` and `data.num_workers` (the number of streams) are the ones the
epoch started with; with others the rest of that epoch follows the new plan from the same position (members of
that epoch may then be seen twice or not at all; later epochs are whole), and the run notes the changed settings.

Damage: the members of a shard that is missing, truncated, altered (size or sha256 against the index) or not a tar
are left out of their batches, which name the shard and the reason (a batch left empty is a `SkippedBatch`); a member
that does not decode (or decodes to another sample count than the index's) is left out of its batch naming
`SHARD:KEY.flac`. The trainer warns once per name, lists it in `bad_audio.tsv` and counts it against
`data.max_bad_files`, as for bad files.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from itertools import groupby
from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from w2v2cli.data.dataset import AudioDataset, LoadFailure, SkippedBatch, make_loader
from w2v2cli.data.sampler import (BatchSpec, check_batch_limits, check_resume_position, cut_batches, draw_groups,
                                  language_probabilities)
from w2v2cli.data.shards import ShardIndex, ShardInfo, read_index, read_member, read_shard
from w2v2cli.errors import AudioError, DataError, W2V2Error

#: A pool of shards holds audio for about this many batches: bucketing by length among a shard's few hundred
#: utterances alone loses ~3 % of the audio to crops at 30-minute shards and BASE's batch size (~13 % at 5-minute
#: shards); pooling a few shards brings it near the corpus-wide buckets of manifests.
POOL_BATCHES = 32


# ---------------------------------------------------------------------------------------------- members
class ShardMembers(AudioDataset):
    """The members of one or more shard sets as an `AudioDataset` (indexed by `BatchSpec`, same crops, same bad-audio
    handling): member i is read at its recorded offset (random access: validation, k-means draws), or from `cache`
    while a streamed shard's bytes are at hand (`ShardStream`).

    shard_members[g]: the member indices of global shard g; shard_groups: shard indices per language.
    """

    def __init__(self, indexes: Sequence[ShardIndex], langs: Sequence[str] | None = None, **kwargs):
        self.indexes = list(indexes)
        names, sizes, self.shard_members, self.shard_paths, self.fnames = [], [], [], [], []
        self.shard_infos: list[ShardInfo] = []
        offsets, nbytes, by_lang = [], [], {}
        for i, index in enumerate(self.indexes):
            lang = langs[i] if langs and langs[i] else str(index.root)
            for k, s in enumerate(index.shards):
                start = len(names)
                names += [index.member_name(k, j) for j in range(len(s.keys))]
                self.fnames += [f"{key}.flac" for key in s.keys]
                sizes += s.samples
                offsets += s.offsets["flac"]
                nbytes += s.sizes["flac"]
                by_lang.setdefault(lang, []).append(len(self.shard_paths))
                self.shard_members.append(np.arange(start, len(names), dtype=np.int64))
                self.shard_paths.append(index.path(k))
                self.shard_infos.append(s)
        self.member_shard = np.concatenate([np.full(len(m), g) for g, m in enumerate(self.shard_members)])
        self.offsets, self.nbytes = np.asarray(offsets, dtype=np.int64), np.asarray(nbytes, dtype=np.int64)
        self.shard_groups = list(by_lang.values())
        groups = [np.concatenate([self.shard_members[g] for g in gs]) for gs in self.shard_groups]
        super().__init__(names, sizes, groups=groups, group_names=list(by_lang), **kwargs)
        self.cache: dict[int, bytes] | None = None

    @classmethod
    def from_dirs(cls, dirs: Sequence[str | os.PathLike], langs: Sequence[str] | None = None,
                  **kwargs) -> "ShardMembers":
        """Shard directories (their indexes read); directories of one `lang` form one sampling group."""
        indexes = [read_index(d) for d in dirs]
        for d, index in zip(dirs, indexes):
            if not index.num_members:
                raise DataError(f"{d}: the shard index lists no members", hint="shard a manifest that lists audio")
        return cls(indexes, langs, **kwargs)

    def read_audio(self, idx: int) -> np.ndarray:
        from w2v2cli.audio import decode_audio

        return decode_audio(self._member_bytes(idx), self.paths[idx], self.sample_rate, self.normalize,
                            expect_frames=int(self.sizes[idx]))

    def _member_bytes(self, idx: int) -> bytes:
        if self.cache is not None:
            data = self.cache.get(idx)
            if data is None:
                raise AudioError(f"{self.paths[idx]}: not in the shard, though its index lists it")
            return data
        try:
            data = read_member(self.shard_paths[self.member_shard[idx]], int(self.offsets[idx]), int(self.nbytes[idx]))
        except OSError as err:
            raise AudioError(f"{self.paths[idx]}: cannot read the shard ({err.strerror or err})") from None
        if len(data) != self.nbytes[idx]:
            raise AudioError(f"{self.paths[idx]}: the shard ends before this member (truncated)")
        return data


# ---------------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class StreamItem:
    """One planned batch: the epoch's `pool` it comes from, the pool's `shards` (global shard ids, read together)
    and its member `indices`; pool -1 and no shards for an empty padding batch."""

    pool: int
    shards: tuple[int, ...]
    indices: tuple[int, ...]


@dataclass
class RankPlan:
    """One rank's epoch: the batches of each stream in reading order, `order[k] = (stream, j)` for its k-th batch,
    and how many of them are empty padding."""

    streams: list[list[StreamItem]]
    order: list[tuple[int, int]]
    padding: int = 0

    def resume_point(self, k0: int) -> tuple[int, list[int]]:
        """(the stream due at local batch `k0`, how many batches of each stream come before it)."""
        before = [0] * len(self.streams)
        for s, _ in self.order[:k0]:
            before[s] += 1
        return (self.order[k0][0] if k0 < len(self.order) else 0), before

    def local_positions(self, stream: int) -> list[int]:
        """The local batch number of each batch of `stream`."""
        return [k for k, (s, _) in enumerate(self.order) if s == stream]


def interleave(lengths: Sequence[int]) -> list[tuple[int, int]]:
    """Streams taken in turn, an exhausted one dropping out: the order a DataLoader returns its workers' batches."""
    order: list[tuple[int, int]] = []
    taken = [0] * len(lengths)
    active = [s for s, n in enumerate(lengths) if n > 0]
    while active:
        for s in active:
            order.append((s, taken[s]))
            taken[s] += 1
        active = [s for s in active if taken[s] < lengths[s]]
    return order


def fill_bins(loads: Sequence[int], bins: int) -> list[list[int]]:
    """Items (by index, in order) put one by one into the bin with the smallest load so far (ties: lowest bin)."""
    heap = [(0, b) for b in range(bins)]
    out: list[list[int]] = [[] for _ in range(bins)]
    for i, load in enumerate(loads):
        total, b = heapq.heappop(heap)
        out[b].append(i)
        heapq.heappush(heap, (total + int(load), b))
    return out


def split_batches(streams: list[list[StreamItem]], extra: int) -> int:
    """Adds `extra` batches to a rank by splitting its largest batches (largest piece first) into contiguous pieces
    of their length-sorted members, in place; returns how many could not be made (too few members to split)."""
    pieces: dict[tuple[int, int], int] = {}
    heap = [(-len(it.indices), s, j) for s, items in enumerate(streams) for j, it in enumerate(items)
            if len(it.indices) > 1]
    heapq.heapify(heap)
    while extra and heap:
        _, s, j = heapq.heappop(heap)
        n, p = len(streams[s][j].indices), pieces.get((s, j), 1) + 1
        pieces[(s, j)] = p
        extra -= 1
        if n > p:
            heapq.heappush(heap, (-(-n // p), s, j))
    for s, items in enumerate(streams):
        out = []
        for j, it in enumerate(items):
            for part in np.array_split(np.asarray(it.indices), pieces.get((s, j), 1)):
                out.append(StreamItem(it.pool, it.shards, tuple(int(i) for i in part)))
        streams[s] = out
    return extra


class ShardPlan:
    """The batches of every epoch over shards, for this rank (see the module docstring); the trainer uses it as it
    uses a `BucketBatchSampler` (`set_epoch`, `num_dropped`, `state_dict`)."""

    def __init__(self, shard_members: Sequence[np.ndarray], sizes: Sequence[int], max_tokens: int,
                 max_sample_size: int, min_sample_size: int = 0, max_batch_size: int = 0, pad: bool = False,
                 seed: int = 1, shard_groups: Sequence[Sequence[int]] | None = None, alpha: float = 0.5,
                 rank: int = 0, world_size: int = 1, update_freq: int = 1, streams: int = 1,
                 drop_longer: bool = False, sorted_epochs: int = 0):
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.max_tokens, self.max_sample_size = int(max_tokens), int(max_sample_size)
        self.max_batch_size, self.pad, self.seed = int(max_batch_size), pad, int(seed)
        self.rank, self.world_size, self.update_freq = int(rank), int(world_size), int(update_freq)
        self.streams, self.sorted_epochs = max(1, int(streams)), int(sorted_epochs)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        check_batch_limits(self.max_tokens, self.max_sample_size)
        keep = self.sizes >= int(min_sample_size)
        if drop_longer:  # labelled data cannot be cropped: drop what does not fit
            keep &= self.sizes <= self.max_sample_size
        self.num_dropped = int((~keep).sum())
        self.effective = np.minimum(self.sizes, self.max_sample_size)
        self.kept = [np.asarray(m, dtype=np.int64)[keep[np.asarray(m, dtype=np.int64)]] for m in shard_members]
        groups = shard_groups if shard_groups is not None else [range(len(self.kept))]
        self.groups = [np.asarray([g for g in gs if len(self.kept[g])], dtype=np.int64) for gs in groups]
        if sum(len(g) for g in self.groups) == 0:
            raise DataError(f"no utterance is usable: all {len(self.sizes)} are shorter than min_sample_size "
                            f"({min_sample_size} samples)" + (" or longer than max_sample_size" if drop_longer else ""),
                            hint="lower data.min_sample_size or check the shards' sample counts")
        amounts = [float(sum(self.sizes[self.kept[g]].sum() for g in gs)) for gs in self.groups]
        self.probs = language_probabilities(amounts, alpha) if len(self.groups) > 1 else np.ones(1)
        self.epoch, self.start = 1, 0
        self._cache: tuple[int, list[RankPlan]] | None = None

    def __getstate__(self) -> dict:  # loader workers recompute the plan rather than receive it
        return {**self.__dict__, "_cache": None}

    # -- the epoch plan ---------------------------------------------------------------------------------------
    def draws(self, epoch: int) -> list[int]:
        """The epoch's shard draws (a shard id per draw, up-sampled shards more than once), shuffled (step 1)."""
        rng = np.random.default_rng([self.seed, epoch])
        shards = self.groups[0] if len(self.groups) == 1 else draw_groups(self.groups, self.probs, rng)
        return shards[rng.permutation(len(shards))].tolist()

    def pool_size(self, num_draws: int) -> int:
        """Draws per pool: enough audio for about `POOL_BATCHES` batches, but at least one pool per stream of every
        rank when there are draws enough (step 2)."""
        per_draw = float(np.mean([self.effective[k].sum() for k in self.kept if len(k)]))
        want = -(-POOL_BATCHES * self.max_tokens // max(int(per_draw), 1))
        return max(1, min(want, num_draws // (self.world_size * self.streams)))

    def pools(self, epoch: int) -> list[list[int]]:
        """The epoch's pools: consecutive runs of `pool_size` draws (shard ids)."""
        draws = self.draws(epoch)
        size = self.pool_size(len(draws))
        return [draws[i:i + size] for i in range(0, len(draws), size)]

    def pool_batches(self, epoch: int, pool: int, shards: Sequence[int]) -> list[tuple[int, ...]]:
        """The batches of pool number `pool` of `epoch`, made of the shards `shards` (step 2)."""
        rng = np.random.default_rng([self.seed, epoch, pool])
        idx = rng.permutation(np.concatenate([self.kept[g] for g in shards]))
        idx = idx[np.argsort(self.effective[idx], kind="stable")]
        batches = cut_batches(idx, self.effective, self.max_tokens, self.max_batch_size)
        if epoch > self.sorted_epochs:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def plan(self, epoch: int) -> list[RankPlan]:
        """Every rank's plan of `epoch` (steps 3-5), the same on every rank and worker."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        pools = self.pools(epoch)
        batches = [self.pool_batches(epoch, p, shards) for p, shards in enumerate(pools)]
        streams = []
        for mine in fill_bins([len(b) for b in batches], self.world_size):
            bins = fill_bins([len(batches[p]) for p in mine], self.streams)
            streams.append([[StreamItem(mine[i], tuple(sorted(set(pools[mine[i]]))), b)
                             for i in b_ids for b in batches[mine[i]]] for b_ids in bins])
        counts = [sum(len(s) for s in st) for st in streams]
        for r, n in enumerate(counts):
            if n == 0:
                raise DataError(f"the {len(pools)} shard pools of epoch {epoch} leave rank {r} of "
                                f"{self.world_size} without a batch",
                                hint="every rank needs at least one shard an epoch: write more, smaller shards "
                                     "(`w2v2 shard --shard-minutes M --force`)")
        length = -(-max(counts) // self.update_freq) * self.update_freq
        plans = [self._rank_plan(st, length - n) for st, n in zip(streams, counts)]
        self._cache = (epoch, plans)
        return plans

    @staticmethod
    def _rank_plan(streams: list[list[StreamItem]], extra: int) -> RankPlan:
        """Step 4 (split, then pad what cannot be split) and step 5 (the order)."""
        missing = split_batches(streams, extra) if extra else 0
        if missing:  # empty batches after the last real one: on the stream that ends last
            last = interleave([len(s) for s in streams])[-1][0]
            streams[last] += [StreamItem(-1, (), ())] * missing
        return RankPlan(streams, interleave([len(s) for s in streams]), missing)

    def rank_plan(self, epoch: int | None = None) -> RankPlan:
        return self.plan(self.epoch if epoch is None else epoch)[self.rank]

    def spec(self, position: int, item: StreamItem, epoch: int | None = None) -> BatchSpec:
        """What the dataset loads for a planned batch at global `position` (crops as the manifest sampler's)."""
        crop_to = 0 if self.pad else int(self.effective[list(item.indices)].min())
        return BatchSpec(self.epoch if epoch is None else epoch, position, item.indices, crop_to)

    # -- iteration --------------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Next iteration yields this rank's batches of `epoch`, from global batch `start` on."""
        check_resume_position(start, epoch, self.num_global_batches(epoch), self.world_size * self.update_freq)
        self.epoch, self.start = epoch, start

    def num_global_batches(self, epoch: int | None = None) -> int:
        return len(self.rank_plan(epoch).order) * self.world_size

    @property
    def num_distinct(self) -> int:
        """Batches of the current epoch that are not padding (all ranks)."""
        return sum(len(p.order) - p.padding for p in self.plan(self.epoch))

    def __len__(self) -> int:
        return (self.num_global_batches() - self.start) // self.world_size

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "start": self.start, "seed": self.seed}

    def worker_items(self, worker: int, workers: int) -> list[tuple[int, StreamItem]]:
        """(global position, batch) of what loader worker `worker` of `workers` yields, in order, from the position
        set with `set_epoch` (see "Resume semantics" in the module docstring)."""
        if workers != self.streams:
            raise DataError(f"the shard plan has {self.streams} streams but the loader {workers} workers",
                            hint="make the loader with as many workers as the plan's streams")
        rp = self.rank_plan()
        s0, before = rp.resume_point(self.start // self.world_size)
        stream = (s0 + worker) % self.streams
        positions = rp.local_positions(stream)
        return [(positions[j] * self.world_size + self.rank, rp.streams[stream][j])
                for j in range(before[stream], len(rp.streams[stream]))]


# ---------------------------------------------------------------------------------------------- streaming
class ShardStream(IterableDataset):
    """This rank's batches of the plan's current epoch, each loader worker streaming its own shards whole (see the
    module docstring); yields `Batch`, `SkippedBatch` (damaged shard, padding) or `LoadFailure`."""

    def __init__(self, members: ShardMembers, plan: ShardPlan):
        self.members, self.plan = members, plan

    def __iter__(self) -> Iterator:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        try:
            items = self.plan.worker_items(worker, workers)
        except W2V2Error as err:
            yield LoadFailure(type(err), err.message, err.hint)
            return
        for _, run in groupby(items, key=lambda pair: pair[1].pool):
            yield from self._pool_batches(list(run))

    def _pool_batches(self, run: list[tuple[int, StreamItem]]) -> Iterator:
        """The batches of one pool: its shards read once each, then each batch assembled from their bytes; the
        members of a damaged shard are left out, and the shard named with the reason."""
        shards = run[0][1].shards
        if not shards:  # padding: no audio, weight 0 in the trainer
            yield from (SkippedBatch([]) for _ in run)
            return
        m = self.members
        wanted = {m.fnames[i]: i for _, it in run for i in it.indices}
        m.cache, damaged = {}, {}
        for g in shards:
            content = read_shard(m.shard_paths[g], m.shard_infos[g], wanted)
            if content.damage is not None:
                damaged[g] = content.damage
            m.cache.update({i: content.members[name] for name, i in wanted.items() if name in content.members})
        try:
            for position, item in run:
                yield self._batch(position, item, damaged)
        finally:
            m.cache = None

    def _batch(self, position: int, item: StreamItem, damaged: dict[int, str]):
        """One planned batch, without the members of `damaged` shards (named, with the reason, as its bad files)."""
        m = self.members
        lost = sorted({int(m.member_shard[i]) for i in item.indices} & set(damaged))
        bad = [(str(m.shard_paths[g]), damaged[g]) for g in lost]
        spec = self.plan.spec(position, item)
        if lost:
            keep = tuple(i for i in item.indices if int(m.member_shard[i]) not in damaged)
            if not keep:
                return SkippedBatch(bad)
            spec = BatchSpec(spec.epoch, spec.position, keep, spec.crop_to)
        try:
            out = m.load(spec)
        except W2V2Error as err:
            return LoadFailure(type(err), err.message, err.hint)
        out.bad_files = bad + out.bad_files
        return out


def make_stream_loader(stream: ShardStream, num_workers: int = 0, prefetch_factor: int = 2, pin_memory: bool = False,
                       worker_init_fn=None) -> DataLoader:
    """A DataLoader over a `ShardStream` (whole batches; workers = the plan's streams, see the module docstring)."""
    if max(1, num_workers) != stream.plan.streams:
        raise ValueError(f"{num_workers} loader workers for a plan of {stream.plan.streams} streams")
    return make_loader(stream, None, num_workers, prefetch_factor, pin_memory, worker_init_fn)



"""The training and validation data of a run: dataset, batch plan (sampler) and loader, from the config.

    >>> ds, sampler, loader = build_data(cfg, task, info, ["train.tsv"], langs=None, train=True, device=device)

Training batches follow a seeded, deterministic plan (w2v2cli/data/sampler.py): duration-bucketed, cropped or padded
(`data.padding`), rounded to `data.length_quantum`, shuffled per epoch, split over ranks; validation batches hold
every utterance in length order, uncropped when labelled, never rounded or augmented.

A shard directory (`w2v2 shard`, w2v2cli/data/shards.py) is taken wherever a manifest is: training streams it by
whole shards with the plan of w2v2cli/data/shard_dataset.py (its "streams" are the `data.num_workers` loader
workers), validation reads its members at their offsets with the manifests' sampler. A run's training data is
all manifests or all shard directories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from w2v2cli.data.augment import make_augmenter
from w2v2cli.data.dataset import AudioDataset, make_loader
from w2v2cli.data.sampler import BucketBatchSampler
from w2v2cli.data.shards import is_shard_dir
from w2v2cli.errors import ConfigError
from w2v2cli.train.config import SourceConfig, TrainConfig
from w2v2cli.train.distributed import DistInfo
from w2v2cli.train.signals import leave_signals_to_main
from w2v2cli.train.tasks import Task


def source_languages(sources: Sequence[SourceConfig]) -> list[str]:
    """Language of each training manifest: its `lang`, else the file stem (train.tsv in de/ -> 'de' when the
    stems are all equal), else the path; manifests of one language form one sampling group."""
    paths = [Path(s.path) for s in sources]
    stems = [p.stem for p in paths]
    parents = [p.parent.name for p in paths]
    auto = stems if len(set(stems)) == len(stems) else parents if len(set(parents)) == len(parents) else \
        [str(p) for p in paths]
    return [s.lang or a for s, a in zip(sources, auto)]


def pads(cfg: TrainConfig) -> bool:
    """Whether batches are padded (else cropped to their shortest utterance): `data.padding`, where `auto` pads
    as fairseq does: for layer-norm conv models (they see padding masks) and for fine-tuning."""
    mode = cfg.data.padding
    if mode == "auto":
        return cfg.model.extractor_mode == "layer_norm" or cfg.task.name != "pretrain"
    return mode == "pad"


def normalizes(cfg: TrainConfig) -> bool:
    """Zero mean, unit variance per utterance: `data.normalize`, where `auto` follows the model."""
    n = cfg.data.normalize
    return cfg.model.normalize_audio if n == "auto" else bool(n)


def task_targets(task: Task, manifests: Sequence[str]) -> list | None:
    """The task's targets of every entry of `manifests` (None: unlabelled, as pretraining)."""
    from w2v2cli.data.manifest import read_manifest
    from w2v2cli.data.shards import index_manifest, read_index

    out: list | None = None
    for m in manifests:
        # read once, handed to the task (a shard directory's members as a manifest)
        parsed = read_manifest(m) if Path(m).is_file() else index_manifest(read_index(m)) if is_shard_dir(m) else None
        t = task.targets(Path(m), parsed)
        if t is None:
            return None
        out = (out or []) + list(t)
    return out


def build_data(cfg: TrainConfig, task: Task, info: DistInfo, manifests: Sequence[str], langs: Sequence[str] | None,
               train: bool, device: torch.device):
    """(dataset, sampler, loader) of the training data (`train`) or of the validation data; the sampler of shard
    training data is a `ShardPlan`."""
    d = cfg.data
    shards = _shard_dirs(manifests)
    targets = task_targets(task, manifests)
    augment = make_augmenter(d.speed_perturb, d.noise_prob, d.noise_snr, d.noise_manifest,
                             d.sample_rate) if train else None
    common = dict(targets=targets, sample_rate=d.sample_rate, normalize=normalizes(cfg),
                  max_sample_size=d.max_sample_size, pad=pads(cfg), seed=cfg.seed, augment=augment, skip_bad=True,
                  length_quantum=d.length_quantum if train else 0)
    if shards:
        from w2v2cli.data.shard_dataset import ShardMembers

        ds = ShardMembers.from_dirs(manifests, langs=langs, **common)
    else:
        ds = AudioDataset.from_manifests(manifests, langs=langs, max_missing=d.max_bad_files, **common)
    if train and shards:
        return ds, *_shard_plan_and_loader(cfg, ds, info, device)
    sampler = _train_sampler(cfg, ds, info) if train else _valid_sampler(cfg, ds, info)
    loader = make_loader(ds, sampler, num_workers=d.num_workers, prefetch_factor=d.prefetch_factor,
                         pin_memory=device.type == "cuda", worker_init_fn=leave_signals_to_main)
    return ds, sampler, loader


def _shard_dirs(manifests: Sequence[str]) -> bool:
    """True when the data are shard directories (all of them); a mix with manifests is a ConfigError."""
    dirs = [m for m in manifests if is_shard_dir(m)]
    if dirs and len(dirs) != len(manifests):
        other = next(m for m in manifests if not is_shard_dir(m))
        raise ConfigError(f"{other} is not a shard directory, but {dirs[0]} is: a run's data are all manifests or "
                          "all shard directories", hint=f"shard it too: `w2v2 shard {other} --out DIR`")
    return bool(dirs)


def _train_sampler(cfg: TrainConfig, ds: AudioDataset, info: DistInfo) -> BucketBatchSampler:
    d = cfg.data
    return BucketBatchSampler(ds.sizes, d.max_tokens, d.max_sample_size, d.min_sample_size, d.max_batch_size,
                              pad=ds.pad, seed=cfg.seed, shuffle=True, groups=ds.groups, alpha=d.sampling_alpha,
                              rank=info.rank, world_size=info.world_size, update_freq=cfg.optim.update_freq,
                              drop_longer=ds.targets is not None, sorted_epochs=d.sorted_epochs)


def _valid_sampler(cfg: TrainConfig, ds: AudioDataset, info: DistInfo) -> BucketBatchSampler:
    """Every utterance, uncropped when labelled, in length order (sets `ds.max_sample_size` to match)."""
    d = cfg.data
    labelled = ds.targets is not None
    max_size = max(d.max_sample_size, int(ds.sizes.max())) if labelled else d.max_sample_size
    sampler = BucketBatchSampler(ds.sizes, max(d.max_tokens, max_size), max_size, 0, d.max_batch_size, pad=ds.pad,
                                 seed=cfg.seed, shuffle=False, rank=info.rank, world_size=info.world_size,
                                 wrap=cfg.distributed.fsdp)
    ds.max_sample_size = max_size
    return sampler


def _shard_plan_and_loader(cfg: TrainConfig, ds, info: DistInfo, device: torch.device):
    """The shard plan (one stream per loader worker) and the streaming loader of shard training data."""
    from w2v2cli.data.shard_dataset import ShardPlan, ShardStream, make_stream_loader

    d = cfg.data
    plan = ShardPlan(ds.shard_members, ds.sizes, d.max_tokens, d.max_sample_size, d.min_sample_size,
                     d.max_batch_size, pad=ds.pad, seed=cfg.seed, shard_groups=ds.shard_groups,
                     alpha=d.sampling_alpha, rank=info.rank, world_size=info.world_size,
                     update_freq=cfg.optim.update_freq, streams=max(1, d.num_workers),
                     drop_longer=ds.targets is not None, sorted_epochs=d.sorted_epochs)
    loader = make_stream_loader(ShardStream(ds, plan), num_workers=d.num_workers, prefetch_factor=d.prefetch_factor,
                                pin_memory=device.type == "cuda", worker_init_fn=leave_signals_to_main)
    return plan, loader

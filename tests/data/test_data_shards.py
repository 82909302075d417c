"""Shards (w2v2cli/data/shards.py, w2v2cli/data/shard_dataset.py) on real FLAC/WAV audio made with soundfile.

Proofs: the shards hold every utterance once with its samples, labels and checksums, and other WebDataset readers
read them; writing is atomic (a SIGKILLed `w2v2 shard` leaves no index) and a complete output is a no-op; the plan
keeps max_tokens, never crosses a shard, gives every rank the same number of batches; with 2 ranks x 2 real
DataLoader workers every member is read exactly once an epoch and every shard file opened once; the loader
delivers the planned order from any resume position; damaged shards and members are skipped and named.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import w2v2cli.data.shards as shards_mod
from w2v2cli.data.dataset import Batch, SkippedBatch
from w2v2cli.data.manifest import read_manifest
from w2v2cli.data.sampler import language_probabilities
from w2v2cli.data.shard_dataset import ShardMembers, ShardPlan, ShardStream, interleave, make_stream_loader
from w2v2cli.data.shards import (INDEX, ShardConfig, is_shard_dir, read_index, read_member, read_shard,
                                 read_shard_labels, shard_name, write_shards)
from w2v2cli.errors import AudioError, DataError, ManifestError

MAX_TOKENS, MAX_SAMPLE = 96_000, 40_000


def _members(shards: Path, **kwargs) -> ShardMembers:
    return ShardMembers.from_dirs([shards], max_sample_size=MAX_SAMPLE, pad=False, seed=3, skip_bad=True, **kwargs)


def _plan(ms: ShardMembers, rank: int = 0, world_size: int = 1, streams: int = 1, **kwargs) -> ShardPlan:
    kwargs.setdefault("max_tokens", MAX_TOKENS)
    return ShardPlan(ms.shard_members, ms.sizes, max_sample_size=MAX_SAMPLE, seed=3, shard_groups=ms.shard_groups,
                     rank=rank, world_size=world_size, streams=streams, **kwargs)


def _ids(item) -> tuple[int, ...]:
    return tuple(item.ids.tolist()) if isinstance(item, Batch) else ()


def _planned(plan: ShardPlan, start: int = 0) -> list[tuple[int, ...]]:
    rp = plan.rank_plan()
    return [rp.streams[s][j].indices for s, j in rp.order][start // plan.world_size:]


# ---------------------------------------------------------------------------------------------- writing
def test_shards_hold_every_utterance_once_with_its_audio_labels_and_checksums(signal_manifest, signal_shards):
    m = read_manifest(signal_manifest)
    index = read_index(signal_shards)
    rows = {str(m.abspath(i)): i for i in range(len(m))}
    sources = [src for s in index.shards for src in s.sources]
    assert sorted(sources) == sorted(rows)  # every row once
    wrd, ltr = (signal_manifest.with_suffix(f".{e}").read_text().splitlines() for e in ("wrd", "ltr"))
    assert index.labels == ("ltr", "wrd")
    assert read_shard_labels(index, "wrd") == [wrd[rows[s]] for s in sources]
    assert read_shard_labels(index, "ltr") == [ltr[rows[s]] for s in sources]
    for k, s in enumerate(index.shards):
        data = index.path(k).read_bytes()
        assert len(data) == s.nbytes and hashlib.sha256(data).hexdigest() == s.sha256
        content = read_shard(index.path(k), s, {f"{key}.flac" for key in s.keys})
        assert content.damage is None and content.nbytes == s.nbytes
        for j, key in enumerate(s.keys):
            flac = content.members[f"{key}.flac"]
            assert flac == read_member(index.path(k), s.offsets["flac"][j], s.sizes["flac"][j])
            assert s.samples[j] == m.entries[rows[s.sources[j]]].num_samples
            if s.sources[j].endswith(".flac"):  # FLAC kept byte for byte, WAV re-encoded losslessly
                assert flac == Path(s.sources[j]).read_bytes()
            else:
                np.testing.assert_array_equal(sf.read(io.BytesIO(flac))[0], sf.read(s.sources[j])[0])
            assert "." not in key.rsplit("/", 1)[-1]
    durations = np.array([s.num_samples for s in index.shards])
    longest = max(e.num_samples for e in m.entries)
    assert len(durations) >= 8 and np.abs(durations - durations.mean()).max() <= longest  # nearly equal
    assert (signal_shards / "dict.ltr.txt").read_text() == (signal_manifest.parent / "dict.ltr.txt").read_text()


def test_other_webdataset_readers_read_the_shards(signal_shards):
    import webdataset as wds

    urls = [str(p) for p in sorted(signal_shards.glob("shard-*.tar"))]
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    index = read_index(signal_shards)
    assert [s["__key__"] for s in samples] == [key for sh in index.shards for key in sh.keys]
    assert all({"flac", "ltr", "wrd"} <= set(s) for s in samples)
    assert sf.read(io.BytesIO(samples[0]["flac"]))[0].shape[0] == index.shards[0].samples[0]


def test_a_complete_output_is_a_no_op_other_settings_an_error_force_rebuilds(signal_manifest, tmp_path):
    out = tmp_path / "s"
    first = write_shards(ShardConfig(signal_manifest, out, shard_minutes=0.1, progress=False))
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = write_shards(ShardConfig(signal_manifest, out, shard_minutes=0.1, progress=False))
    assert again.reused and {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    with pytest.raises(ManifestError, match="other settings") as err:
        write_shards(ShardConfig(signal_manifest, out, shard_minutes=0.4, progress=False))
    assert str(out) in err.value.message and "--force" in err.value.hint
    rebuilt = write_shards(ShardConfig(signal_manifest, out, shard_minutes=0.4, force=True, progress=False))
    assert not rebuilt.reused and 0 < rebuilt.num_shards < first.num_shards
    assert sorted(p.name for p in out.glob("shard-*.tar")) == [shard_name(k) for k in range(rebuilt.num_shards)]
    by_size = write_shards(ShardConfig(signal_manifest, tmp_path / "b", shard_bytes=200_000, progress=False))
    sizes = [s.nbytes for s in read_index(tmp_path / "b").shards]
    assert by_size.num_shards == len(sizes) > 2 and max(sizes) < 2.5 * min(sizes)


def test_a_killed_run_leaves_no_index_and_the_next_run_completes(signal_manifest, tmp_path):
    big = tmp_path / "big.tsv"  # 10 x the rows: about one shard per utterance, so writing takes a while
    lines = signal_manifest.read_text().splitlines()
    big.write_text("\n".join([lines[0]] + lines[1:] * 10) + "\n")
    for ext in ("wrd", "ltr"):
        big.with_suffix(f".{ext}").write_text(signal_manifest.with_suffix(f".{ext}").read_text() * 10)
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "w2v2cli", "shard", str(big), "--out", str(out), "--shard-minutes", "0.02",
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        while proc.poll() is None and not list(out.glob(".shards.tmp-*/shard-*.tar")):
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    assert list(out.glob(".shards.tmp-*/shard-*.tar")) and not (out / INDEX).exists() and not is_shard_dir(out)
    with pytest.raises(DataError, match="not a shard directory") as err:
        read_index(out)
    assert "run it again" in err.value.hint
    result = write_shards(ShardConfig(big, out, shard_minutes=0.02, progress=False))
    assert not result.reused and result.num_members == 240 and not list(out.glob(".shards.tmp-*"))
    assert read_index(out).num_members == 240


def test_bad_input_names_the_file_and_manifest_line(signal_manifest, tmp_path):
    lines = signal_manifest.read_text().splitlines()
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(lines[:3] + ["spk0/missing.flac\t16000"] + lines[3:]) + "\n")
    with pytest.raises(ManifestError) as err:
        write_shards(ShardConfig(bad, tmp_path / "s", progress=False))
    assert err.value.message.startswith(f"{Path(lines[0]) / 'spk0/missing.flac'} ({bad}:4): no such file")
    short = tmp_path / "short.tsv"  # labels beside it with a line missing
    short.write_text(signal_manifest.read_text())
    short.with_suffix(".wrd").write_text("\n".join(signal_manifest.with_suffix(".wrd").read_text().splitlines()[:-1]))
    with pytest.raises(ManifestError, match="has 23 lines but .* has 24 entries"):
        write_shards(ShardConfig(short, tmp_path / "s2", progress=False))
    assert not (tmp_path / "s").exists() and not (tmp_path / "s2").exists()


# ---------------------------------------------------------------------------------------------- the plan
@pytest.mark.parametrize("world_size, streams, update_freq", [(1, 1, 1), (2, 2, 1), (3, 2, 2), (2, 1, 3)])
def test_plan_keeps_max_tokens_stays_in_one_shard_and_gives_ranks_equal_shares(signal_shards, world_size, streams,
                                                                                update_freq):
    ms = _members(signal_shards)
    shard_of = {int(i): g for g, members in enumerate(ms.shard_members) for i in members}
    short = {i for i in range(len(ms)) if ms.sizes[i] < 30_000}
    for epoch in (1, 2, 3):
        seen: collections.Counter = collections.Counter()
        lengths, reader = [], {}
        for rank in range(world_size):
            plan = _plan(ms, rank, world_size, streams, update_freq=update_freq, min_sample_size=30_000)
            rp = plan.rank_plan(epoch)
            lengths.append(len(rp.order))
            for s, j in rp.order:
                item = rp.streams[s][j]
                seen.update(item.indices)
                for g in item.shards:  # a shard is read by one (rank, stream) only
                    assert reader.setdefault(g, (rank, s)) == (rank, s)
                if item.indices:
                    assert len(item.indices) * min(int(ms.sizes[list(item.indices)].max()), MAX_SAMPLE) <= MAX_TOKENS
                    assert {shard_of[i] for i in item.indices} <= set(item.shards)  # never crosses its pool
        assert len(set(lengths)) == 1 and lengths[0] % update_freq == 0  # same number of updates on every rank
        assert set(seen) == set(range(len(ms))) - short and max(seen.values()) == 1  # each kept member once
        assert sorted(reader) == list(range(len(ms.shard_members)))
        assert plan.num_dropped == len(short) > 0


def test_plan_is_a_function_of_seed_and_epoch_and_reshuffles_shards(signal_shards):
    ms = _members(signal_shards)
    a, b = _plan(ms, 1, 2, 2), _plan(ms, 1, 2, 2)
    assert [rp.streams for rp in a.plan(4)] == [rp.streams for rp in b.plan(4)]  # computed anew: the same
    orders = {tuple(a.draws(e)) for e in range(1, 6)}
    assert len(orders) == 5  # shard-level shuffle per epoch
    first = [it.indices for it in a.rank_plan(1).streams[0]]
    assert first != [it.indices for it in a.rank_plan(2).streams[0]]


def test_short_ranks_split_batches_and_pad_only_what_cannot_be_split(signal_shards):
    ms = _members(signal_shards)
    plans = [_plan(ms, r, 5) for r in range(5)]  # 12 shards of one or two batches over 5 ranks
    uneven = 0
    for epoch in range(1, 4):
        pools = plans[0].pools(epoch)
        raw = [sum(len(plans[0].pool_batches(epoch, p, pools[p])) for p in _own_pools(plans[0], r, epoch))
               for r in range(5)]
        rps = [p.rank_plan(epoch) for p in plans]
        assert {len(rp.order) for rp in rps} == {max(raw)} and all(rp.padding == 0 for rp in rps)
        uneven += len(set(raw)) > 1  # the short ranks split batches to catch up
    assert uneven == 3
    # every batch one utterance: nothing to split, so the short ranks end with empty batches
    solo = [_plan(ms, r, 5, max_tokens=MAX_SAMPLE) for r in range(5)]
    rps = [p.rank_plan(1) for p in solo]
    assert len({len(rp.order) for rp in rps}) == 1 and sum(rp.padding for rp in rps) > 0
    for p, rp in zip(solo, rps):
        items = [rp.streams[s][j] for s, j in rp.order]
        real = [it for it in items if it.indices]
        assert all(len(it.indices) == 1 for it in real) and items[len(real):] == [it for it in items if not it.indices]
        if rp.padding:  # the padding comes last, as empty SkippedBatches, from the real loader
            p.set_epoch(1, 0)
            got = list(make_stream_loader(ShardStream(ms, p), num_workers=0))
            assert [_ids(x) for x in got[:len(real)]] == [it.indices for it in real]
            assert all(isinstance(x, SkippedBatch) and x.bad_files == [] for x in got[len(real):])


def _own_pools(plan: ShardPlan, rank: int, epoch: int) -> list[int]:
    """The pools that rank `rank` gets in `epoch`."""
    return sorted({it.pool for st in plan.plan(epoch)[rank].streams for it in st if it.pool >= 0})


def test_multilingual_shard_sets_are_drawn_with_alpha(signal_manifest, signal_shards, tmp_path):
    lines = signal_manifest.read_text().splitlines()
    small = tmp_path / "small.tsv"  # 6 utterances: a low-resource language
    small.write_text("\n".join(lines[:7]) + "\n")
    write_shards(ShardConfig(small, tmp_path / "small", shard_minutes=5 / 60, progress=False))
    ms = ShardMembers.from_dirs([signal_shards, tmp_path / "small"], langs=["big", "small"], max_sample_size=MAX_SAMPLE)
    n_big, n_small = (len(g) for g in ms.shard_groups)
    for alpha in (0.0, 0.5, 1.0):
        plan = _plan(ms, alpha=alpha)
        draws = plan.draws(1)
        got_small = sum(1 for g in draws if g in set(ms.shard_groups[1]))
        p = language_probabilities([ms.sizes[np.concatenate([ms.shard_members[g] for g in gs])].sum()
                                    for gs in ms.shard_groups], alpha)
        assert got_small == max(1, round(p[1] * (n_big + n_small)))
        assert len(draws) - got_small == max(1, round(p[0] * (n_big + n_small)))
    plan = _plan(ms, alpha=0.0)  # uniform: the small language's shards up-sampled, their members batched as often
    drawn = collections.Counter(int(i) for g in plan.draws(1) for i in ms.shard_members[g])
    rp = plan.rank_plan(1)
    batched = collections.Counter(i for s, j in rp.order for i in rp.streams[s][j].indices)
    assert batched == drawn and max(drawn.values()) > 1


# ---------------------------------------------------------------------------------------------- the loader
def test_two_ranks_x_two_workers_read_every_member_once_and_open_every_shard_once(signal_shards, tmp_path,
                                                                                  monkeypatch):
    log = tmp_path / "opens.log"
    real_open = shards_mod.open_shard

    def logged_open(path):  # forked loader workers append to one file: which process opened which shard
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\t{path}\n")
        return real_open(path)

    monkeypatch.setattr(shards_mod, "open_shard", logged_open)
    ms = _members(signal_shards)
    for epoch in (1, 2):
        log.write_text("")
        seen: collections.Counter = collections.Counter()
        for rank in (0, 1):
            plan = _plan(ms, rank, 2, 2)
            plan.set_epoch(epoch, 0)
            got = [_ids(x) for x in make_stream_loader(ShardStream(ms, plan), num_workers=2)]
            assert got == _planned(plan)  # the real loader returns the planned order
            for ids in got:
                seen.update(ids)
        assert sorted(seen) == list(range(len(ms))) and set(seen.values()) == {1}
        opens = [line.split("\t") for line in log.read_text().splitlines()]
        assert sorted(p for _, p in opens) == sorted(str(p) for p in ms.shard_paths)  # each shard opened once
        assert len({pid for pid, _ in opens}) == 4 and str(os.getpid()) not in {pid for pid, _ in opens}


def test_resuming_at_any_update_continues_the_planned_order_with_the_same_batches(signal_shards):
    ms = _members(signal_shards)
    plan = _plan(ms, 1, 2, 2, max_tokens=MAX_SAMPLE, min_sample_size=35_000)  # one utterance a batch
    plan.set_epoch(2, 0)
    full = list(make_stream_loader(ShardStream(ms, plan), num_workers=2))
    assert [_ids(x) for x in full] == _planned(plan)
    lengths = [len(s) for s in plan.rank_plan().streams]
    assert lengths[0] != lengths[1]  # one stream ends first: later resumes find only the other one
    for start in range(2, plan.num_global_batches(), 2):  # every update: odd local positions start on stream 1
        again = _plan(ms, 1, 2, 2, max_tokens=MAX_SAMPLE, min_sample_size=35_000)  # a new process
        again.set_epoch(2, start)
        got = list(make_stream_loader(ShardStream(ms, again), num_workers=2))
        assert [_ids(x) for x in got] == _planned(plan, start)
        assert all(a.waveforms.equal(b.waveforms) for a, b in zip(got, full[start // 2:])  # same crops
                   if isinstance(a, Batch))
    accumulating = _plan(ms, 1, 2, 2, update_freq=2)
    with pytest.raises(DataError, match="cannot resume at global batch 2"):
        accumulating.set_epoch(2, 2)


# ---------------------------------------------------------------------------------------------- damage
def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _epoch(ms: ShardMembers, plan: ShardPlan) -> list:
    plan.set_epoch(1, 0)
    return list(make_stream_loader(ShardStream(ms, plan), num_workers=plan.streams if plan.streams > 1 else 0))


def _bad(items: list) -> list[tuple[str, str]]:
    return [f for x in items for f in x.bad_files]


def test_a_truncated_shard_is_left_out_of_its_batches_and_named(signal_shards, tmp_path):
    d = _copy(signal_shards, tmp_path / "d")
    victim = d / shard_name(2)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    ms = _members(d)
    plan = _plan(ms, streams=2)
    items = _epoch(ms, plan)
    rp = plan.rank_plan(1)
    lost = set(ms.shard_members[2].tolist())
    hit = 0
    for item, it in zip(items, [rp.streams[s][j] for s, j in rp.order]):
        assert _ids(item) == tuple(i for i in it.indices if i not in lost)  # the rest of the batch is used
        if lost & set(it.indices):
            hit += 1
            (path, reason), = item.bad_files
            assert path == str(victim) and ("damaged tar" in reason or "truncated" in reason)
        else:
            assert item.bad_files == []
    assert hit and {p for p, _ in _bad(items)} == {str(victim)}
    # random access (validation) names the member that lies past the end
    last = int(ms.shard_members[2][-1])
    with pytest.raises(AudioError, match=r"shard-000002\.tar:.*\.flac: the shard ends before this member"):
        ms.read_audio(last)


def test_flipped_bytes_fail_the_checksum_and_a_missing_shard_is_named(signal_shards, tmp_path):
    d = _copy(signal_shards, tmp_path / "d")
    index = read_index(d)
    victim = d / shard_name(1)
    data = bytearray(victim.read_bytes())
    at = index.shards[1].offsets["flac"][0] + index.shards[1].sizes["flac"][0] // 2
    data[at: at + 8] = bytes(b ^ 0xFF for b in data[at: at + 8])
    victim.write_bytes(bytes(data))  # same size, other bytes
    (d / shard_name(4)).unlink()
    ms = _members(d)
    items = _epoch(ms, _plan(ms))
    bad = dict(_bad(items))
    assert set(bad) == {str(victim), str(d / shard_name(4))}
    assert "sha256 does not match shards.json" in bad[str(victim)] and "missing" in bad[str(d / shard_name(4))]


def test_an_undecodable_member_is_left_out_of_its_batch_and_named(signal_shards, tmp_path):
    """A shard whose checksum is right but one FLAC member is damaged (written from an already broken file)."""
    import json

    d = _copy(signal_shards, tmp_path / "d")
    index = read_index(d)
    s = index.shards[3]
    victim = d / s.name
    data = bytearray(victim.read_bytes())
    at = s.offsets["flac"][1] + s.sizes["flac"][1] // 2
    data[at: at + 8] = bytes(b ^ 0xFF for b in data[at: at + 8])
    victim.write_bytes(bytes(data))
    raw = json.loads((d / INDEX).read_text())
    raw["shards"][3]["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    (d / INDEX).write_text(json.dumps(raw))
    ms = _members(d)
    broken = int(ms.shard_members[3][1])
    items = _epoch(ms, _plan(ms))
    assert _bad(items) == [(f"{victim}:{s.keys[1]}.flac", _bad(items)[0][1])]
    assert "not decodable" in _bad(items)[0][1] or "damaged" in _bad(items)[0][1]
    delivered = [i for x in items for i in _ids(x)]
    assert broken not in delivered and sorted(delivered + [broken]) == list(range(len(ms)))


def test_interleave_is_the_loader_order():
    assert interleave([3, 1, 2]) == [(0, 0), (1, 0), (2, 0), (0, 1), (2, 1), (0, 2)]
    assert interleave([0, 2]) == [(1, 0), (1, 1)]


def test_a_bad_label_in_a_shard_is_named_by_its_member(signal_shards):
    from w2v2cli.data.labels import encode_labels
    from w2v2cli.errors import DataError
    from w2v2cli.vocab import Vocabulary

    index = read_index(signal_shards)
    lines = read_shard_labels(index, "ltr")
    letters = sorted({c for line in lines for c in line.split()})
    last = lines[-1].split()[-1]  # a symbol of the last member; its first use names the member
    first = next(i for i, line in enumerate(lines) if last in line.split())
    names = [index.member_name(k, j, "ltr") for k, s in enumerate(index.shards) for j in range(len(s.keys))]
    vocab = Vocabulary(["<s>", "<pad>", "</s>"] + [c for c in letters if c != last])
    with pytest.raises(DataError) as err:
        encode_labels(signal_shards, vocab, "ltr")
    assert err.value.message.startswith(f"{names[first]}: ") and repr(last) in err.value.message

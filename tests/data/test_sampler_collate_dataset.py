"""Batching by total samples: buckets, seeds, distributed shares, resume positions, multilingual sampling."""

from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import torch

from w2v2cli.data.collate import collate
from w2v2cli.data.dataset import AudioDataset, LoadFailure, raise_if_failed
from w2v2cli.data.sampler import BatchSpec, BucketBatchSampler, language_probabilities
from w2v2cli.errors import AudioError, DataError

SIZES = np.random.default_rng(0).integers(5_000, 60_000, size=97).tolist()


def _sampler(**kw):
    args = dict(sizes=SIZES, max_tokens=100_000, max_sample_size=40_000, min_sample_size=8_000, seed=3)
    args.update(kw)
    return BucketBatchSampler(**args)


def test_batches_respect_max_tokens_and_cover_each_kept_utterance_once():
    s = _sampler()
    batches = s.global_batches(1)
    kept = {i for i, n in enumerate(SIZES) if n >= 8_000}
    assert s.num_dropped == len(SIZES) - len(kept) > 0
    flat = [i for b in batches for i in b]
    assert Counter(flat) == Counter(kept)  # world 1, update_freq 1: no wrap-around padding
    for b in batches:
        assert len(b) * min(40_000, max(SIZES[i] for i in b)) <= 100_000
    # length buckets: within a batch the cropped lengths are close (sorted before cutting)
    spread = [max(min(SIZES[i], 40_000) for i in b) - min(min(SIZES[i], 40_000) for i in b) for b in batches]
    assert np.median(spread) < 5_000
    assert all(s.spec(1, p).crop_to == min(min(SIZES[i], 40_000) for i in b) for p, b in enumerate(batches))
    assert _sampler(pad=True).spec(1, 0).crop_to == 0


def test_epochs_are_reshuffled_from_the_seed():
    a, b = _sampler(), _sampler()
    assert a.global_batches(1) == b.global_batches(1)
    assert a.global_batches(1) != a.global_batches(2)
    assert _sampler(seed=4).global_batches(1) != a.global_batches(1)
    assert _sampler(shuffle=False).global_batches(1) == _sampler(shuffle=False).global_batches(2)


def test_ranks_get_disjoint_equal_shares_and_match_update_freq():
    one = _sampler(world_size=1, update_freq=2)
    ranks = [_sampler(world_size=2, rank=r, update_freq=1) for r in range(2)]
    for s in [one] + ranks:
        s.set_epoch(1)
    per_rank = [list(s) for s in ranks]
    assert len(per_rank[0]) == len(per_rank[1]) == len(ranks[0])
    assert {x.position for x in per_rank[0]}.isdisjoint({x.position for x in per_rank[1]})
    single = list(one)
    assert len(single) % 2 == 0
    # update u: 1 process with update_freq 2 sees batches 2u, 2u+1; 2 ranks see one each: the same set
    for u in range(len(single) // 2):
        assert {single[2 * u].indices, single[2 * u + 1].indices} == {per_rank[0][u].indices, per_rank[1][u].indices}


def test_wrap_around_padding_and_resume_position():
    s = _sampler(world_size=3, rank=1, update_freq=2)
    total = s.num_global_batches(1)
    assert total % 6 == 0
    s.set_epoch(1, 0)
    full = list(s)
    s.set_epoch(1, 12)
    assert list(s) == full[4:]  # 12 global batches consumed = 4 of this rank's
    with pytest.raises(DataError, match="multiple of world_size x update_freq"):
        s.set_epoch(1, 5)


def test_multilingual_probabilities_and_counts():
    p = language_probabilities([900.0, 100.0], alpha=0.5)
    assert p == pytest.approx([0.75, 0.25])  # sqrt(.9)=.949, sqrt(.1)=.316 -> .75/.25
    assert language_probabilities([900.0, 100.0], alpha=1.0) == pytest.approx([0.9, 0.1])
    sizes = [20_000] * 90 + [20_000] * 10
    s = BucketBatchSampler(sizes, 200_000, 40_000, 0, groups=[range(90), range(90, 100)], alpha=0.5, seed=1)
    drawn = Counter(i >= 90 for b in s.global_batches(1) for i in b)
    assert drawn[False] == 75 and drawn[True] == 25  # the small language is up-sampled 2.5x


def test_all_too_short_is_a_clear_error():
    with pytest.raises(DataError, match="shorter than min_sample_size"):
        BucketBatchSampler([100, 200], 10_000, 5_000, 1_000)


def test_collate_pads_or_crops_to_shortest():
    a, b = np.arange(5, dtype=np.float32), np.arange(3, dtype=np.float32) + 10
    padded = collate([a, b], ids=[7, 9], targets=[[1, 2], [3]], pad=True)
    assert padded.waveforms.tolist() == [[0, 1, 2, 3, 4], [10, 11, 12, 0, 0]]
    assert padded.lengths.tolist() == [5, 3] and padded.num_samples == 8
    assert padded.targets.tolist() == [[1, 2], [3, -1]] and padded.target_lengths.tolist() == [2, 1]
    assert padded.ids.tolist() == [7, 9]
    cropped = collate([a, b], pad=False)
    assert cropped.waveforms.tolist() == [[0, 1, 2], [10, 11, 12]] and cropped.lengths.tolist() == [3, 3]


def test_dataset_crops_deterministically_and_ships_errors(tmp_path):
    wav = np.random.default_rng(1).standard_normal(30_000).astype(np.float32) * 0.1
    sf.write(tmp_path / "a.wav", wav, 16000)
    sf.write(tmp_path / "b.wav", wav[:20_000], 16000)
    ds = AudioDataset([tmp_path / "a.wav", tmp_path / "b.wav"], [30_000, 20_000], max_sample_size=12_000,
                      pad=True, seed=5)
    one = ds[BatchSpec(1, 0, (0, 1))]
    again = ds[BatchSpec(1, 0, (0, 1))]
    other = ds[BatchSpec(2, 0, (0, 1))]
    assert one.lengths.tolist() == [12_000, 12_000]
    assert torch.equal(one.waveforms, again.waveforms)
    assert not torch.equal(one.waveforms, other.waveforms)
    # every crop is a contiguous window of the file
    row = one.waveforms[0].numpy()
    start = int(np.argmin([np.abs(wav[s:s + 12_000] - row).max() for s in range(0, 18_001)]))
    assert np.allclose(wav[start:start + 12_000], row, atol=1e-4)
    crop = AudioDataset([tmp_path / "a.wav", tmp_path / "b.wav"], [30_000, 20_000], max_sample_size=12_000,
                        pad=False, seed=5)[BatchSpec(1, 0, (0, 1), crop_to=9_000)]
    assert crop.lengths.tolist() == [9_000, 9_000]
    (tmp_path / "c.wav").write_bytes(b"not audio")
    bad = AudioDataset([tmp_path / "c.wav"], [100], pad=True)[BatchSpec(1, 0, (0,))]
    assert isinstance(bad, LoadFailure)
    with pytest.raises(AudioError, match="c.wav"):
        raise_if_failed(bad)


def test_collate_length_quantum_pads_up_and_crops_down():
    """`quantum`: padded batches are widened to the next multiple (lengths and values kept), cropped batches cut to
    the multiple below (never below one quantum); 0 keeps the exact width."""
    wavs = [np.arange(1, 1301, dtype=np.float32), np.arange(1, 2201, dtype=np.float32)]
    padded = collate(wavs, pad=True, quantum=1000)
    assert padded.waveforms.shape == (2, 3000) and padded.lengths.tolist() == [1300, 2200]
    assert torch.equal(padded.waveforms[1, :2200], torch.as_tensor(wavs[1])) and padded.waveforms[:, 2200:].abs().sum() == 0
    cropped = collate(wavs, pad=False, quantum=1000)
    assert cropped.waveforms.shape == (2, 1000) and cropped.lengths.tolist() == [1000, 1000]
    assert torch.equal(cropped.waveforms[0], torch.as_tensor(wavs[0][:1000]))
    short = collate([wavs[0][:700], wavs[1]], pad=False, quantum=1000)  # shorter than one quantum: kept exact
    assert short.waveforms.shape == (2, 700)
    assert collate(wavs, pad=True).waveforms.shape == (2, 2200) and collate(wavs, pad=False).waveforms.shape == (2, 1300)


def test_length_quantum_config_is_checked():
    from w2v2cli.errors import ConfigError
    from w2v2cli.train.config import load_train_config

    assert load_train_config("tiny", overrides=["data.length_quantum=4000"]).data.length_quantum == 4000
    with pytest.raises(ConfigError, match="data.length_quantum"):
        load_train_config("tiny", overrides=["data.length_quantum=-1"])


def test_dataset_length_quantum_rounds_training_batches_and_defaults_off(tmp_path):
    """The constructor's `length_quantum` reaches collate: cropped batches are cut to the multiple below, padded ones
    widened to the multiple above; the default (0) keeps the exact widths (validation batches)."""
    rng = np.random.default_rng(0)
    paths = []
    for name, n in (("a", 13_000), ("b", 21_000)):
        sf.write(tmp_path / f"{name}.wav", rng.uniform(-0.5, 0.5, n).astype(np.float32), 16000, subtype="FLOAT")
        paths.append(tmp_path / f"{name}.wav")
    sizes = [13_000, 21_000]
    cropped = AudioDataset(paths, sizes, length_quantum=4_000)[BatchSpec(0, 0, (0, 1), crop_to=13_000)]
    assert cropped.waveforms.shape == (2, 12_000) and cropped.lengths.tolist() == [12_000, 12_000]
    padded = AudioDataset(paths, sizes, pad=True, length_quantum=4_000)[BatchSpec(0, 0, (0, 1))]
    assert padded.waveforms.shape == (2, 24_000) and padded.lengths.tolist() == [13_000, 21_000]
    exact = AudioDataset(paths, sizes, pad=True)[BatchSpec(0, 0, (0, 1))]
    assert exact.waveforms.shape == (2, 21_000)


def test_sorted_epochs_go_from_shortest_to_longest_then_shuffle():
    """SortaGrad: epochs 1..sorted_epochs yield the batches in ascending length, later epochs in a shuffled order;
    every epoch holds the same utterances either way."""
    s = _sampler(sorted_epochs=2)
    longest = [[max(min(SIZES[i], 40_000) for i in b) for b in s.global_batches(e)] for e in (1, 2, 3)]
    assert longest[0] == sorted(longest[0]) and longest[1] == sorted(longest[1])
    assert longest[2] != sorted(longest[2])
    assert sorted(i for b in s.global_batches(1) for i in b) == sorted(i for b in s.global_batches(3) for i in b)
    assert _sampler().global_batches(1) != s.global_batches(1)  # the default shuffles from the first epoch


def test_sorted_epochs_config_is_checked():
    from w2v2cli.errors import ConfigError
    from w2v2cli.train.config import load_train_config

    assert load_train_config("tiny_ctc", overrides=["data.sorted_epochs=3"]).data.sorted_epochs == 3
    with pytest.raises(ConfigError, match="data.sorted_epochs"):
        load_train_config("tiny_ctc", overrides=["data.sorted_epochs=-1"])

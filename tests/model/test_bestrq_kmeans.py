"""BEST-RQ with HuBERT-style k-means targets (`model.rq_targets: kmeans`): the nearest-centroid codes against numpy,
the fit against clusters we drew ourselves, seeding, the refusal of an unfitted quantizer, the config rules and the
checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from w2v2cli.errors import ConfigError
from w2v2cli.model import build_model, model_preset
from w2v2cli.model.bestrq import KMeansQuantizer, kmeans_plus_plus, nearest

SMALL = dict(encoder_layers=2, encoder_embed_dim=48, encoder_ffn_embed_dim=96, encoder_attention_heads=4,
             conv_pos=16, conv_pos_groups=4, conv_layers=[(80, 400, 160), (32, 3, 1), (32, 2, 2)],
             rq_codebook_size=16)


def _blobs(k: int = 8, per: int = 200, dim: int = 6, spread: float = 0.05, seed: int = 0):
    """`k` clusters of `per` points around centres 1 apart or more: (points [k*per, dim], centres [k, dim],
    labels [k*per])."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(-3, 4, size=(k, dim)).astype(np.float32)
    while len({tuple(c) for c in centres}) < k:
        centres = rng.integers(-3, 4, size=(k, dim)).astype(np.float32)
    labels = np.repeat(np.arange(k), per)
    points = centres[labels] + spread * rng.standard_normal((k * per, dim)).astype(np.float32)
    return torch.from_numpy(points), torch.from_numpy(centres), labels


def test_nearest_is_the_argmin_of_euclidean_distances_computed_with_numpy():
    rng = np.random.default_rng(1)
    x, c = rng.standard_normal((1000, 12)).astype(np.float32), rng.standard_normal((37, 12)).astype(np.float32)
    want = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
    got = nearest(torch.from_numpy(x), torch.from_numpy(c), chunk=300).numpy()  # 4 chunks
    assert (got == want).all()


def test_fit_recovers_clusters_drawn_by_hand():
    points, centres, labels = _blobs()
    q = KMeansQuantizer(6, 8, seed=3)
    fit = q.fit(points)
    assert fit.frames == 1600 and fit.smallest == fit.largest == 200  # every cluster found whole
    assert fit.inertia == pytest.approx(6 * 0.05**2, rel=0.15)  # the noise's variance x dims
    codes = q(points)[:, 0].numpy()
    # each drawn cluster maps to one code, and different clusters to different codes
    mapping = {int(lab): set(codes[labels == lab].tolist()) for lab in range(8)}
    assert all(len(v) == 1 for v in mapping.values()) and len({next(iter(v)) for v in mapping.values()}) == 8
    for lab, (code,) in mapping.items():
        assert torch.allclose(q.centroids[0, code], centres[lab], atol=0.02)


def test_fit_is_seeded_and_refits_the_same_centroids():
    points, _, _ = _blobs(k=5, spread=0.8, seed=4)  # overlapping: the seeding matters
    a, b, c = KMeansQuantizer(6, 12, seed=1), KMeansQuantizer(6, 12, seed=1), KMeansQuantizer(6, 12, seed=2)
    a.fit(points), b.fit(points), c.fit(points)
    assert torch.equal(a.centroids, b.centroids) and not torch.equal(a.centroids, c.centroids)
    seeds = kmeans_plus_plus(points, 12, torch.Generator().manual_seed(1))
    assert len({tuple(r.tolist()) for r in seeds}) == 12  # k-means++ picks distinct points


def test_an_unfitted_quantizer_refuses_and_bad_shapes_are_named():
    q = KMeansQuantizer(6, 4)
    with pytest.raises(RuntimeError, match="never fitted"):
        q(torch.randn(3, 6))
    with pytest.raises(ValueError, match=r"\[T, 6\]"):
        q.fit(torch.randn(10, 5))
    with pytest.raises(ValueError, match="at least as many frames"):
        q.fit(torch.randn(3, 6))
    q.fit(torch.randn(40, 6))
    assert bool(q.fitted) and q(torch.randn(2, 5, 6)).shape == (2, 5, 1)


@pytest.mark.parametrize("changes, key", [
    (dict(rq_targets="hubert"), "model.rq_targets"),
    (dict(rq_targets="kmeans", rq_num_codebooks=2), "model.rq_num_codebooks"),
])
def test_bad_kmeans_values_are_config_errors_naming_the_key(changes, key):
    with pytest.raises(ConfigError) as err:
        model_preset("tiny_fbank_km", **{**SMALL, **changes})
    assert key in err.value.message


def test_model_fits_on_its_own_log_mel_frames_and_the_checkpoint_keeps_the_centroids(tmp_path):
    from w2v2cli.checkpoint.io import load_checkpoint, save_checkpoint

    cfg = model_preset("tiny_fbank_km", **SMALL)
    model = build_model(cfg, "pretrain").eval()
    g = torch.Generator().manual_seed(5)
    t = torch.arange(24000) / 16000
    utts = [0.3 * torch.sin(2 * torch.pi * f * t) + 0.01 * torch.randn(24000, generator=g) for f in (200, 500, 900)]
    fit = model.fit_targets(utts)
    frames = int(model.wav2vec2.output_lengths(torch.tensor(24000)))
    assert fit.frames == 3 * frames  # every encoder frame of every utterance
    codes, valid = model.targets(torch.stack(utts), torch.full((3,), 24000))
    want = nearest(model.stacked_log_mel(torch.stack(utts), torch.full((3,), 24000), frames).reshape(-1, 160),
                   model.rq_quantizer.centroids[0])
    assert torch.equal(codes.reshape(-1), want) and valid.tolist() == [frames] * 3
    save_checkpoint(tmp_path / "ck", model, cfg, "pretrain")
    loaded = load_checkpoint(tmp_path / "ck").model
    assert bool(loaded.rq_quantizer.fitted)
    assert torch.equal(loaded.rq_quantizer.centroids, model.rq_quantizer.centroids)
    assert torch.equal(loaded.targets(torch.stack(utts), None)[0], codes)
    with pytest.raises(ConfigError, match="rq_targets: kmeans"):
        build_model(model_preset("tiny_fbank_rq", **SMALL), "pretrain").fit_targets(utts)

"""Fixtures for the fine-tuning tests: a 4-utterance labelled subset of `libri_manifests`, a pretraining checkpoint
made by `pretrain`, and a random transformers model saved with `save_pretrained`.

Every run uses one intra-op thread: on 2 shared cores, two OpenMP threads spin against other processes and make
tiny runs many times slower.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ft_helpers import FAST, copy_subset


@pytest.fixture(scope="module", autouse=True)
def _one_thread_here(one_thread):
    """Every fine-tuning test runs with one thread (tests/conftest.py: one_thread)."""
    yield


@pytest.fixture(scope="session")
def four(libri_manifests, tmp_path_factory) -> Path:
    """The 4 shortest training utterances (about 2 s each), labels and dict.ltr.txt beside them."""
    src = libri_manifests["train-clean-100"]
    entries = src.read_text(encoding="utf-8").splitlines()[1:]
    rows = sorted(sorted(range(len(entries)), key=lambda i: int(entries[i].split("\t")[1]))[:4])
    return copy_subset(src, tmp_path_factory.mktemp("ft-data") / "four.tsv", rows)


@pytest.fixture(scope="session")
def pretrain_ckpt(four, tmp_path_factory) -> Path:
    """Our pretraining checkpoint (tiny preset, 2 updates on `four`)."""
    from w2v2cli.train.pretrain import pretrain

    out = tmp_path_factory.mktemp("ft-pretrain")
    result = pretrain([four], out, config="tiny", overrides=FAST, max_updates=2)
    return result.last_checkpoint


@pytest.fixture(scope="session")
def hf_dir(tmp_path_factory) -> Path:
    """A random transformers Wav2Vec2ForPreTraining (small, group-norm conv, post-LN) saved with save_pretrained."""
    import transformers

    conv = [(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2
    cfg = transformers.Wav2Vec2Config(
        hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
        conv_dim=[c for c, _, _ in conv], conv_kernel=[k for _, k, _ in conv], conv_stride=[s for _, _, s in conv],
        conv_bias=False, feat_extract_norm="group", do_stable_layer_norm=False, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, num_codevectors_per_group=8, num_codevector_groups=2, codevector_dim=16,
        proj_codevector_dim=12, vocab_size=32)
    torch.manual_seed(3)
    model = transformers.Wav2Vec2ForPreTraining(cfg)
    out = tmp_path_factory.mktemp("ft-hf") / "hf-random"
    model.save_pretrained(out)
    return out

"""Sharded checkpoints (w2v2cli.checkpoint.shards) without a process group: joining, and damage named clearly."""

from __future__ import annotations

import json

import pytest
import torch

from w2v2cli.checkpoint.shards import (INDEX_FILE, check_shards, consolidated_state, index_bytes, read_shard,
                                       shard_file, tensor_entry, write_shard)
from w2v2cli.errors import CheckpointError


def _sharded(tmp_path, world: int = 2):
    """A 2-rank checkpoint as FSDP2 splits it: rows of dim 0 (uneven: 5 rows as 3 + 2), a replicated scalar."""
    full = {"w": torch.arange(15.0).view(5, 3), "b": torch.tensor([1.0, 2.0, 3.0]), "s": torch.tensor(7.0)}
    pieces = [{"w": full["w"][:3], "b": full["b"][:2], "s": full["s"]},
              {"w": full["w"][3:], "b": full["b"][2:], "s": full["s"]}]
    for rank, piece in enumerate(pieces):
        write_shard(tmp_path, rank, world, piece, {"w/exp_avg": piece["w"] * 0.5})
    model = {"w": tensor_entry((5, 3), True), "b": tensor_entry((3,), True), "s": tensor_entry((), False)}
    (tmp_path / INDEX_FILE).write_bytes(index_bytes(world, model, {"w/exp_avg": tensor_entry((5, 3), True)}))
    return full


def test_shards_join_to_the_full_tensors_and_each_rank_reads_its_own(tmp_path):
    full = _sharded(tmp_path)
    joined = consolidated_state(tmp_path)
    assert sorted(joined) == ["b", "s", "w"] and all(torch.equal(joined[k], full[k]) for k in full)
    model, optim = read_shard(tmp_path, 1, 2)
    assert torch.equal(model["w"], full["w"][3:]) and torch.equal(optim["w/exp_avg"], full["w"][3:] * 0.5)
    assert check_shards(tmp_path)["world_size"] == 2


def test_damage_and_another_world_size_are_named(tmp_path):
    _sharded(tmp_path)
    with pytest.raises(CheckpointError, match="written by 2 processes; this run has 4") as err:
        read_shard(tmp_path, 0, 4)
    assert "--nproc_per_node 2" in err.value.hint
    index = json.loads((tmp_path / INDEX_FILE).read_text())
    index["model"]["w"]["shape"] = [6, 3]
    (tmp_path / INDEX_FILE).write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"the shards of w make \[5, 3\], shards.json says \[6, 3\]"):
        consolidated_state(tmp_path)
    victim = tmp_path / shard_file("optim", 1, 2)
    victim.write_bytes(victim.read_bytes()[:40])  # truncated
    with pytest.raises(CheckpointError, match="optim-00001-of-00002.safetensors"):
        check_shards(tmp_path)
    victim.unlink()
    with pytest.raises(CheckpointError, match="optim-00001-of-00002.safetensors is missing"):
        check_shards(tmp_path)
    (tmp_path / INDEX_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="shards.json is not valid JSON"):
        consolidated_state(tmp_path)


def test_consolidate_refuses_a_checkpoint_that_is_not_sharded(tmp_path):
    from typer.testing import CliRunner

    from w2v2cli.checkpoint.io import save_checkpoint
    from w2v2cli.cli.app import app
    from w2v2cli.model import build_model, model_preset

    cfg = model_preset("tiny")
    save_checkpoint(tmp_path / "plain", build_model(cfg, "pretrain"), cfg, "pretrain")
    res = CliRunner().invoke(app, ["consolidate", str(tmp_path / "plain"), str(tmp_path / "out")])
    assert res.exit_code != 0 and "is not a sharded checkpoint" in str(res.exception)
    assert not (tmp_path / "out").exists()

"""`--shard true` in recipes/librispeech/run.sh and recipes/xlsr/run.sh at toy scale (stages 1-2, real processes):
stage 2 writes WebDataset shards of the pretraining audio with `w2v2 shard` and pretrains from them (the run's
config names the shard directories), and a re-run does nothing."""

from __future__ import annotations

import yaml

from recipe_helpers import RECIPES, TOY_TRAIN, ok, run_recipe, stages_run
from w2v2cli.data.manifest import read_manifest
from w2v2cli.data.shards import read_index
from w2v2cli.train.logging import read_metrics

TOY = ["--nj", "1", "--threads", "1", "--pretrain-config", "tiny", "--pretrain-updates", "5",
       "--pretrain-opts", TOY_TRAIN, "--stop-stage", "2", "--shard", "true", "--shard-minutes", "0.1"]


def _updates(run) -> int:
    return max(r["update"] for r in read_metrics(run) if r.get("split") == "train")


def test_librispeech_shard_true_pretrains_from_shards(ls_full, tmp_path):
    exp = tmp_path / "exp"
    args = ["--corpus", ls_full, "--dir", exp, "--download", "none", *TOY]
    out = ok(run_recipe(RECIPES / "librispeech" / "run.sh", *args))
    assert "WebDataset shards of the pretraining audio" in out
    data = exp / "data"
    index = read_index(data / "pretrain.shards")
    assert index.num_members == len(read_manifest(data / "pretrain.tsv")) and len(index.shards) > 1
    cfg = yaml.safe_load((exp / "pretrain_tiny" / "config.yaml").read_text())
    assert [s["path"] for s in cfg["data"]["train"]] == [str(data / "pretrain.shards")]
    assert _updates(exp / "pretrain_tiny") == 5
    assert stages_run(ok(run_recipe(RECIPES / "librispeech" / "run.sh", *args))) == set()  # a no-op re-run
    bad = run_recipe(RECIPES / "librispeech" / "run.sh", *args[:-2], "--shard", "yes")
    assert bad.returncode == 1 and "--shard must be true or false, got 'yes'" in bad.stderr


def test_xlsr_shard_true_pretrains_from_shards_of_each_language(xlsr_corpus, tmp_path):
    exp = tmp_path / "exp"
    args = ["--corpus", xlsr_corpus, "--dir", exp, "--langs", "en de:mls", *TOY]
    ok(run_recipe(RECIPES / "xlsr" / "run.sh", *args))
    data = exp / "data"
    cfg = yaml.safe_load((exp / "pretrain" / "config.yaml").read_text())
    assert [s["path"] for s in cfg["data"]["train"]] == [str(data / t / "train.shards") for t in ("cv_en", "mls_de")]
    for tag in ("cv_en", "mls_de"):
        index = read_index(data / tag / "train.shards")
        assert index.num_members == len(read_manifest(data / tag / "train.tsv")) and index.labels == ("ltr", "wrd")
    assert _updates(exp / "pretrain") == 5

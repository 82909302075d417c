"""The restricted unpickler: fairseq's harmless objects load, code-carrying pickles are refused unexecuted."""

from __future__ import annotations

import argparse
import os
import pickle
import numpy as np
import pytest
import torch

from ckpt_helpers import run_cli
from w2v2cli.checkpoint.safe_pickle import load_pickled
from w2v2cli.errors import CheckpointError


class _Payload:
    """Unpickling this runs a shell command (a classic malicious checkpoint)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _fairseq_like(**extra):
    return {
        "args": argparse.Namespace(arch="wav2vec2", encoder_layers=2, latent_temp="(2,0.5,0.999995)"),
        "model": {"mask_emb": torch.arange(4.0)},
        "optimizer_history": [{"criterion_name": "Wav2vecCriterion", "num_updates": 7}],
        "extra_state": {"best": np.float64(1.25), "meters": np.arange(3), "epoch": 2},
        **extra,
    }


@pytest.mark.parametrize("zip_format", [True, False])
def test_fairseq_objects_load(tmp_path, zip_format):
    path = tmp_path / "ckpt.pt"
    torch.save(_fairseq_like(), path, _use_new_zipfile_serialization=zip_format)
    state = load_pickled(path)
    assert isinstance(state["args"], argparse.Namespace) and state["args"].encoder_layers == 2
    assert torch.equal(state["model"]["mask_emb"], torch.arange(4.0))
    assert float(state["extra_state"]["best"]) == 1.25 and state["extra_state"]["meters"].tolist() == [0, 1, 2]
    assert state["optimizer_history"][-1]["num_updates"] == 7


@pytest.mark.parametrize("how", ["torch_zip", "torch_legacy", "raw_pickle"])
def test_payload_is_refused_and_never_runs(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    state = _fairseq_like(evil=_Payload(marker))
    if how == "raw_pickle":
        path.write_bytes(pickle.dumps(state, protocol=4))
    else:
        torch.save(state, path, _use_new_zipfile_serialization=(how == "torch_zip"))
    with pytest.raises(CheckpointError, match="refusing to load") as info:
        load_pickled(path)
    if how != "raw_pickle":
        assert "posix.system" in info.value.message  # the offending global is named
    assert not marker.exists()


def test_payload_via_cli_exits_nonzero_with_message(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save(_fairseq_like(evil=_Payload(marker)), path)
    code, err = run_cli("import", "fairseq", path, tmp_path / "out")
    assert code == 1 and "refusing to load" in err and "posix.system" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_truncated_and_missing_files(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save(_fairseq_like(), path)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_pickled(cut)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_pickled(tmp_path / "nope.pt")

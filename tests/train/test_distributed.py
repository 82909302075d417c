"""Distributed helpers (w2v2cli.train.distributed) in one process and in a real 2-process gloo group."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from w2v2cli.errors import ConfigError
from w2v2cli.train import distributed as D
from w2v2cli.train.config import DistributedConfig


def test_env_info_reads_torchrun_variables(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    info = D.env_info()
    assert (info.rank, info.world_size, info.local_rank) == (3, 4, 1)
    assert info.enabled and not info.is_main
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ConfigError, match="torchrun environment"):
        D.env_info()


def test_single_process_helpers_are_no_ops(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = D.init_distributed(DistributedConfig(), torch.device("cpu"))
    assert (info.rank, info.world_size, info.is_main, info.enabled) == (0, 1, True, False)
    assert D.pick_device("cpu", info) == torch.device("cpu")
    model = nn.Linear(2, 2)
    assert D.wrap_model(model, info, DistributedConfig(), torch.device("cpu"), find_unused=False) is model
    assert D.all_reduce_sum([1, 2.5], torch.device("cpu"), info) == [1.0, 2.5]
    assert D.all_reduce_sum_dict({"a": 1}, torch.device("cpu"), info) == {"a": 1.0}
    with D.no_sync(model, skip=True):  # a plain module has no no_sync: a null context
        pass
    D.barrier(info)


WORKER = textwrap.dedent('''
    import gc, json, sys
    import torch
    from torch import nn
    from w2v2cli.train import distributed as D
    from w2v2cli.train.config import DistributedConfig

    device = torch.device("cpu")
    info = D.init_distributed(DistributedConfig(), device)
    out = {"rank": info.rank, "world_size": info.world_size, "backend": info.backend}
    out["sum"] = D.all_reduce_sum([info.rank + 1, 0.5], device, info)
    # rank 0 saw a batch with key "a", rank 1 one with "b" only: missing keys count as 0
    out["dict"] = D.all_reduce_sum_dict({"a": 1.0} if info.rank == 0 else {"b": 2.0}, device, info)
    torch.manual_seed(0)
    model = D.wrap_model(nn.Linear(3, 1, bias=False), info, DistributedConfig(), device, find_unused=False)
    x = torch.full((1, 3), float(info.rank + 1))
    with D.no_sync(model, skip=True):  # accumulated locally, not averaged
        model(x).sum().backward()
    out["local_grad"] = model.module.weight.grad[0].tolist()
    model.zero_grad()
    with D.no_sync(model, skip=False):  # averaged over the 2 ranks
        model(x).sum().backward()
    out["synced_grad"] = model.module.weight.grad[0].tolist()
    D.barrier(info)
    # as the trainer's _release does: DDP's reducer holds the group, so drop the model before the group goes;
    # otherwise the group's threads are torn down at interpreter exit and a rank can abort (about 1 run in 35)
    del model
    gc.collect()
    D.shutdown()
    print(json.dumps(out))
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_reduce_and_sync(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=240)
        assert p.returncode == 0, stderr[-2000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    for rank, r in enumerate(results):
        assert (r["rank"], r["world_size"], r["backend"]) == (rank, 2, "gloo")
        assert r["sum"] == [3.0, 1.0]
        assert r["dict"] == {"a": 1.0, "b": 2.0}
        assert r["local_grad"] == [float(rank + 1)] * 3
        assert r["synced_grad"] == [1.5] * 3

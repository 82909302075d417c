"""Health warnings fire on what broken runs look like (codebook collapse, over-fitting) and stay quiet on the
curves of healthy ones; the figures are those seen on the synthetic demo corpus (BENCHMARKS.md)."""

from __future__ import annotations

from w2v2cli.train.config import load_train_config
from w2v2cli.train.logging import HealthMonitor
from w2v2cli.train.tasks import COLLAPSE_SHARE, PretrainTask


def _task() -> PretrainTask:
    return PretrainTask(load_train_config("tiny"))  # 2 codebooks x 64 entries, 30 warm-up updates


def test_collapse_fires_at_the_measured_collapse_and_not_on_a_healthy_codebook():
    task = _task()
    collapsed = {"contrastive": 1.2, "code_perplexity": 6.0}  # ~6 of 128 entries: the fast-decay collapse
    healthy = {"contrastive": 1.6, "code_perplexity": 19.5}  # a healthy tiny run at update 500
    keys = [k for k, _ in task.health(collapsed, update=500)]
    assert keys == ["collapse"]
    assert "6.00 of 2 x 64" in task.health(collapsed, update=500)[0][1]
    assert task.health(healthy, update=500) == []
    assert task.health(collapsed, update=10) == []  # warm-up: perplexity is still settling
    assert COLLAPSE_SHARE * 128 < 19.5


def test_overfitting_warning_on_rising_valid_loss_with_falling_train_loss():
    mon = HealthMonitor()
    out = []
    for update, train, valid in [(100, 2.0, 1.9), (200, 1.5, 1.6), (300, 1.2, 1.7), (400, 1.0, 1.8),
                                 (500, 0.9, 1.9)]:
        mon.check({"loss": train}, [])
        out.append(mon.check_valid(update, valid))
    assert out[0] == out[1] == out[2] == []
    assert len(out[3]) == 1 and "valid loss rose from 1.600 (update 200) to 1.800 (update 400)" in out[3][0]
    assert "training loss fell from 1.500 to 1.000" in out[3][0]
    assert len(out[4]) == 1 and "from 1.700 (update 300) to 1.900 (update 500)" in out[4][0]


def test_overfitting_quiet_on_a_healthy_or_noisy_curve():
    mon = HealthMonitor()
    curve = [(250, 2.35, 2.15), (500, 1.91, 1.76), (750, 1.41, 1.37), (1000, 1.23, 1.22),  # s1 of BENCHMARKS.md
             (1250, 1.20, 1.25), (1500, 1.10, 1.21)]  # one noisy rise, then better again
    for update, train, valid in curve:
        mon.check({"loss": train}, [])
        assert mon.check_valid(update, valid) == []


def test_both_losses_rising_is_not_overfitting():
    mon = HealthMonitor()
    for update, train, valid in [(100, 1.0, 1.0), (200, 1.2, 1.1), (300, 1.4, 1.3)]:
        mon.check({"loss": train}, [])
        assert mon.check_valid(update, valid) == []  # a bad learning rate, not over-fitting

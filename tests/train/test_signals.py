"""SIGTERM / SIGINT become a flag the trainer checks after each update (w2v2cli/train/signals.py); real signals,
sent to this process and to a real child process that plays a DataLoader worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from w2v2cli.train.signals import SIGNAL_EXIT_CODES, Stopper


def test_a_signal_sets_the_flag_and_the_old_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with Stopper() as stopper:
        assert stopper.signal is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stopper.signal == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before
    with Stopper() as stopper:
        os.kill(os.getpid(), signal.SIGINT)  # a first Ctrl-C: stop after the update
        assert stopper.signal == "SIGINT"
        with pytest.raises(KeyboardInterrupt):  # a second one: stop now
            os.kill(os.getpid(), signal.SIGINT)
    assert SIGNAL_EXIT_CODES == {"SIGINT": 128 + signal.SIGINT, "SIGTERM": 128 + signal.SIGTERM}


def test_a_worker_ignores_the_signals_its_process_group_gets():
    code = textwrap.dedent("""
        import os, signal, sys, time
        from w2v2cli.train.signals import leave_signals_to_main
        leave_signals_to_main(0)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        print("alive")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "alive", res.stderr

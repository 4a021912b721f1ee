"""SIGKILL at the worst moment of a ``daemon-reexec``: right after circusd answered it, while
the old image hands over or the new one starts. The workers outlive it; the next circusd
on the same config finds them through the crash state and adopts exactly them: the same
pids, none spawned beside them, none left unsupervised."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from circus.process import process_start_time
from circus.process.testing import wait_until


@pytest.mark.parametrize("delay", [0.0, 0.2, 0.6])
def test_sigkill_during_the_switch_then_restart_adopts_the_same_workers(
    circusd: Any, tmp_path: Path, delay: float
) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    daemon = circusd(
        f"[circus]\nruntime_dir = {run}\n\n[watcher:w]\ncmd = /bin/sleep 300\nnumprocesses = 3\n"
    )
    wait_until(lambda: len(daemon.pids("w")) == 3, 30, "3 workers")
    pids = daemon.pids("w")
    starts = {pid: process_start_time(pid) for pid in pids}
    wait_until(lambda: len(list(run.glob("*.state"))) == 1, 10, "the crash state written")
    daemon.track()
    answer = daemon.call("daemon-reexec", timeout=60)
    assert answer["status"] == "ok", answer
    time.sleep(delay)  # not a sync point: the moment of the kill, somewhere in the switch
    daemon.proc.kill()
    daemon.proc.wait(10)
    assert all(process_start_time(pid) == starts[pid] for pid in pids), "a worker died"
    daemon.close_client()
    daemon.start()
    wait_until(lambda: daemon.pids("w") == pids, 30, "the same 3 workers listed")
    spawned = [p.pid for p in psutil.Process(daemon.proc.pid).children() if p.name() == "sleep"]
    assert spawned == [], f"workers spawned beside the adopted ones: {spawned}"
    assert daemon.call("status", name="w")["status"] == "active"

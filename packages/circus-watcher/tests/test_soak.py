"""1,000 spawn/exit cycles leave no zombie and no fd behind."""

from __future__ import annotations

import os
from typing import Any

import psutil


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_thousand_respawn_cycles_leak_nothing(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        before = open_fds()
        w = make("true", numprocesses=2, **{"flapping.active": False})
        await w.start()
        await recorder.until(lambda: recorder.count("reap") >= 1000, within=60)
        await w.stop()
        assert recorder.count("spawn") >= 1000
        killed = {p["process_pid"] for p in recorder.of("kill")}  # the last ones, by stop()
        assert len(killed) <= 2
        assert all(
            p["exit_code"] == 0 for p in recorder.of("reap") if p["process_pid"] not in killed
        )
        zombies = [c for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]
        assert zombies == []
        assert open_fds() - before == set()
        assert w.pids == [] and len(recorder.of("spawn")) == recorder.count("reap")

    run_async(main)

"""A watcher whose processes are forked from the small-table thread (``circus.process``
forks from it once thousands of descriptors are open; here from the first spawn): start,
output, respawn after a kill and stop behave as from the loop's own thread."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from circus.process import _smalltable, _spawn


@pytest.fixture
def through_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_spawn, "SMALL_TABLE_FROM", 0)
    yield
    _smalltable.shutdown()


def test_a_watcher_spawning_through_the_thread(
    make: Any, recorder: Any, run_async: Any, through_thread: None
) -> None:
    lines: list[bytes] = []

    async def main() -> None:
        w = make(
            "sh -c 'echo started $$; exec sleep 300'",
            numprocesses=4,
            **{"flapping.active": False, "backoff_initial": 0},
        )
        w.add_output_observer(lambda pid, stream, data: lines.append(data))
        await w.start()
        pids = list(w.pids)
        assert len(pids) == 4
        assert all(os.getpgid(pid) == pid for pid in pids)  # each in its own session
        await recorder.until(lambda: sum(b"started" in line for line in lines) >= 4)
        os.kill(pids[0], signal.SIGKILL)
        await recorder.until(lambda: recorder.count("spawn") == 5)
        assert pids[0] not in w.pids and len(w.pids) == 4
        reaped = recorder.of("reap")
        assert [p["exit_code"] for p in reaped] == [-signal.SIGKILL]
        assert _smalltable._spawner is not None and _smalltable._spawner.alive()
        stopped = await w.stop()
        assert len(stopped) == 4

    run_async(main)

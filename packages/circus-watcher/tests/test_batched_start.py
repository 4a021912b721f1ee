"""A start of many processes spawns them in batches (``Process.spawn_many``), the loop run
between batches: each process gets its own worker id and ``spawn`` event, a stop that comes
during the start ends it at the next batch with nothing left running, and a spawn that
fails in a batch falls back to the one-by-one path (its retries, ``max_retry``)."""

from __future__ import annotations

import asyncio
import os
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from circus.process import _smalltable, _spawn
from circus.watcher import SpawnFailedError
from circus.watcher._spawner import BATCH


@pytest.fixture
def through_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_spawn, "SMALL_TABLE_FROM", 0)
    yield
    _smalltable.shutdown()


def test_a_start_in_batches_gives_each_process_its_wid_and_event(
    make: Any, recorder: Any, run_async: Any, through_thread: None
) -> None:
    count = 2 * BATCH + 5

    async def main() -> None:
        w = make("sleep 300", numprocesses=count)
        answer = await w.start()
        pids = answer["started"]
        assert len(pids) == len(set(pids)) == count == len(w.pids)
        assert [p["process_pid"] for p in recorder.of("spawn")] == pids  # in spawn order
        assert sorted(w._procs.find(pid, w.name).wid for pid in pids) == list(range(1, count + 1))
        assert all(os.getsid(pid) == pid for pid in pids)
        assert _smalltable._spawner is not None  # the batches went through the thread

    run_async(main)


def test_a_stop_during_a_batched_start_ends_it_with_nothing_left(
    make: Any, recorder: Any, run_async: Any, through_thread: None
) -> None:
    count = 8 * BATCH

    async def main() -> None:
        w = make("sleep 300", numprocesses=count)
        start = asyncio.ensure_future(w.start())
        # the first batch's events are out before the loop runs anything else
        await recorder.until(lambda: recorder.count("spawn") >= 1)
        stopped = await asyncio.wait_for(w.stop(), 60)
        answer = await start
        spawned = [p["process_pid"] for p in recorder.of("spawn")]
        assert len(spawned) < count  # the start gave up at a batch boundary
        assert sorted(answer["started"]) == sorted(spawned) == sorted(stopped)
        assert w.pids == [] and w.is_stopped()
        for pid in spawned:  # reaped, every one
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)

    run_async(main)


def test_a_command_that_cannot_exec_fails_the_start_as_before(
    make: Any, run_async: Any, tmp_path: Path, through_thread: None
) -> None:
    garbage = tmp_path / "not-a-program"
    garbage.write_bytes(b"\x7fELF\x00\x00garbage")
    garbage.chmod(0o755)

    async def main() -> None:
        w = make(str(garbage), numprocesses=BATCH + 3, max_retry=2, retry_in=0.01)
        with pytest.raises(SpawnFailedError):
            await w.start()
        assert w.pids == [] and w.is_stopped()

    run_async(main)


def test_a_batch_takes_output_pipes_only_within_the_descriptor_budget(
    make: Any, run_async: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from circus.process import _fdlimit
    from circus.watcher import _output

    monkeypatch.setattr(_output, "_room", None)  # no count cached by an earlier test
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    margin = 30  # above half the table: the pipes of 10 processes

    async def main() -> None:
        w = make("sleep 300", numprocesses=BATCH)
        w.add_output_observer(lambda pid, stream, data: None)  # pipes for observers only
        half = len(os.listdir("/proc/self/fd")) + margin
        resource.setrlimit(resource.RLIMIT_NOFILE, (2 * half, hard))
        _fdlimit.set_fd_reserve(4)
        try:
            await w.start()
        finally:
            _fdlimit.set_fd_reserve(0)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        procs = [w._procs.find(pid, w.name) for pid in w.pids]
        piped = sum(p.stdout is not None for p in procs)
        assert len(procs) == BATCH
        assert piped * 3 <= margin  # a batch is not given pipes past the budget

    run_async(main)

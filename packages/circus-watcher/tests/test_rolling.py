"""Rolling reload of a watcher with readiness: a new process must be ready before an old one
stops; a new one that is not ready ends the roll with the old ones still running."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from circus.process.testing import async_wait_until
from circus.watcher import NotReady, RolloutError

# Waits for the test's order in go.PID: "ready" (READY=1, then stays), "exit" (exit 3), or
# nothing (never ready). The processes of the first start are told "ready" at once by init.
CHILD = r"""
import os, socket, sys, time
from pathlib import Path

d = Path(sys.argv[1])
go = d / f"go.{os.getpid()}"
while True:
    if (d / "init").exists() and not (d / "started").exists():
        order = "ready"
        break
    if go.exists():
        order = go.read_text()
        break
    time.sleep(0.02)
if order == "exit":
    sys.exit(3)
if order == "ready":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
while True:
    time.sleep(1)
"""


def _watcher(make: Any, tmp_path: Path, n: int = 3, timeout: float = 60) -> Any:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return make(
        f"{sys.executable} {script} {tmp_path}", numprocesses=n, readiness="notify",
        readiness_timeout=timeout,
    )  # fmt: skip


async def _started(w: Any, tmp_path: Path) -> list[int]:
    (tmp_path / "init").write_text("")
    await w.start()
    await w.wait_ready()
    (tmp_path / "started").write_text("")  # from now on each process waits for its order
    return list(w.pids)


def _order(tmp_path: Path, pid: int, order: str) -> None:
    (tmp_path / f"go.{pid}.tmp").write_text(order)
    (tmp_path / f"go.{pid}.tmp").rename(tmp_path / f"go.{pid}")


def _spawned(recorder: Any) -> list[int]:
    return [p["process_pid"] for p in recorder.of("spawn")]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_each_old_process_stops_only_after_a_new_one_is_ready(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    async def main() -> None:
        w = _watcher(make, tmp_path)
        old = await _started(w, tmp_path)
        reload = asyncio.ensure_future(w.reload())
        for step in range(3):
            await recorder.until(lambda step=step: len(_spawned(recorder)) == 4 + step)
            new = _spawned(recorder)[-1]
            # one new process at a time, and the old ones it replaces not touched before
            assert w.health(new)["state"] == "starting"
            assert [pid for pid in old if pid not in w.pids] == old[:step]
            assert not reload.done()
            _order(tmp_path, new, "ready")
        info = await asyncio.wait_for(reload, 30)
        assert info["stopped"] == old
        assert info["started"] == _spawned(recorder)[3:]
        assert sorted(w.pids) == sorted(info["started"])
        assert all(w.health(pid)["state"] == "ready" for pid in w.pids)

    run_async(main)


@pytest.mark.parametrize("order", ["never", "exit"])
def test_a_new_process_not_ready_stops_the_roll_and_keeps_the_old_ones(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path, order: str
) -> None:
    async def main() -> None:
        w = _watcher(make, tmp_path, timeout=1.5)
        old = await _started(w, tmp_path)
        reload = asyncio.ensure_future(w.reload())
        await recorder.until(lambda: len(_spawned(recorder)) == 4)
        first = _spawned(recorder)[-1]
        _order(tmp_path, first, "ready")
        await recorder.until(lambda: len(_spawned(recorder)) == 5)
        failed = _spawned(recorder)[-1]
        if order == "exit":
            _order(tmp_path, failed, "exit")
        with pytest.raises(RolloutError) as caught:
            await asyncio.wait_for(reload, 30)
        exc = caught.value
        assert isinstance(exc, NotReady)  # what wait_ready raises: one except for both
        message = str(exc)
        assert str(failed) in message, message
        why = "exited with 3 before it was ready" if order == "exit" else "not ready after 1.5 s"
        assert why in message, message
        assert exc.reasons.keys() == {failed}
        assert exc.started == [first] and exc.stopped == [old[0]]
        assert exc.kept == old[1:]
        # the old ones not replaced keep running, the failed one is gone, none spawned for it
        assert sorted(w.pids) == sorted([*old[1:], first])
        assert _gone(failed)
        assert w.status() == "active" and w._spawner.pending == 0
        unready = [p for p in recorder.of("unready") if p["process_pid"] == failed]
        if order == "never":
            # stopped by the roll, reported once, not counted as a failed exit of the watcher
            assert [p["reason"] for p in unready] == ["not ready after 1.5 s"]
            assert w._policy.streak == 0 and w.crash_loop() is None

    run_async(main)


def test_a_stop_during_the_roll_does_not_wait_for_readiness(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    async def main() -> None:
        w = _watcher(make, tmp_path, n=2, timeout=120)
        await _started(w, tmp_path)
        reload = asyncio.ensure_future(w.reload())
        await recorder.until(lambda: len(_spawned(recorder)) == 3)
        # readiness_timeout is 2 minutes: the stop must not queue behind it
        stopped = await asyncio.wait_for(w.stop(), 30)
        assert len(stopped) == 3
        await asyncio.wait_for(reload, 30)
        assert w.is_stopped()
        await async_wait_until(lambda: all(_gone(p) for p in _spawned(recorder)), 10, "all gone")

    run_async(main)


def test_a_set_cmd_that_never_gets_ready_keeps_the_old_processes(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    async def main() -> None:
        w = _watcher(make, tmp_path, n=2, timeout=1.5)
        old = await _started(w, tmp_path)
        # the same child with one more argument: a new command, whose processes get no order
        with pytest.raises(RolloutError, match="not ready after 1.5 s"):
            await w.set_opt("cmd", f"{sys.executable} {tmp_path / 'child.py'} {tmp_path} v2")
        assert w.pids == old
        assert w.get_opt("cmd").endswith(" v2")  # as set: fix it, or set it back, and reload

    run_async(main)

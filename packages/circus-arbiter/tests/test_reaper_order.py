"""The orphan look a SIGCHLD brings runs after the exit events already there: a worker's
death is handled (reaped, replaced) first, the look over the adopted orphans comes next."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import pytest
from circus.arbiter import _reaper
from circus.process.testing import wait_until


@pytest.mark.timeout(60)
def test_a_workers_exit_event_runs_before_the_sigchld_orphan_look(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []
    looked: list[asyncio.Event] = []
    real_look = _reaper.reap_adopted

    def look() -> None:
        order.append("look")
        for event in looked:
            event.set()
        real_look()

    monkeypatch.setattr(_reaper, "reap_adopted", look)
    child = subprocess.Popen(["sleep", "300"], start_new_session=True)
    pidfd = os.pidfd_open(child.pid)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        exited = asyncio.Event()
        looked.append(asyncio.Event())

        def on_exit() -> None:
            loop.remove_reader(pidfd)
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
            order.append("exit")
            exited.set()

        loop.add_reader(pidfd, on_exit)
        undo = _reaper.watch_orphans(loop)
        try:
            # The loop is busy while the worker dies (this blocking wait): its SIGCHLD (the
            # handler runs in here) and its pidfd are both waiting when the loop looks next,
            # as in a daemon with work to do.
            child.kill()
            wait_until(lambda: _state(child.pid) == "Z", 30, "the worker is a zombie")
            await asyncio.wait_for(exited.wait(), 30)
            await asyncio.wait_for(looked[0].wait(), 30)  # within a pass or two
        finally:
            undo()

    try:
        asyncio.run(main())
    finally:
        os.close(pidfd)
        child.returncode = 0  # reaped above through the pidfd
    assert order[:2] == ["exit", "look"]
    assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None

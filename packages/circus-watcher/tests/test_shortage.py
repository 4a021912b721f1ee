"""A spawn that fails because the host ran short (EMFILE, ENFILE, EAGAIN, ENOMEM) is retried
later, with backoff, however many times: the watcher never stops for it. A bad option still
stops it after ``max_retry`` attempts.
"""

from __future__ import annotations

import errno
import os
import signal
from typing import Any

import pytest
from circus.process import SpawnError
from circus.watcher import SpawnFailedError


class Shortage:
    """A process factory failing like an exhausted host while ``failing`` is set."""

    def __init__(self, code: int = errno.EMFILE) -> None:
        self.code = code
        self.failing = False
        self.refused = 0

    def __call__(self, watcher: Any, wid: int) -> Any:
        from circus.watcher._procs import make_process

        if self.failing:
            self.refused += 1
            exc = SpawnError("cmd", "sleep", os.strerror(self.code))
            exc.errno = self.code
            raise exc
        watcher._factory = None
        try:
            return make_process(watcher, wid)
        finally:
            watcher._factory = self


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOMEM])
def test_respawn_short_of_resources_retried_until_it_works(
    make: Any, recorder: Any, code: int, run_async: Any
) -> None:
    async def main() -> None:
        shortage = Shortage(code)
        w = make("sleep 300", numprocesses=2, max_retry=1, process_factory=shortage)
        await w.start()
        victim = w.pids[0]
        shortage.failing = True
        os.kill(victim, signal.SIGKILL)
        # more failed attempts than max_retry allows for a real failure: still active
        await recorder.until(lambda: shortage.refused >= 4, within=20)
        assert w.status() == "active"
        assert len(w.pids) == 1
        shortage.failing = False
        await recorder.until(lambda: len(w.pids) == 2 and victim not in w.pids, within=20)
        assert w.status() == "active" and all(_alive(pid) for pid in w.pids)
        assert recorder.count("stop") == 0

    run_async(main)


@pytest.mark.slow
def test_start_short_of_resources_completes_later(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        shortage = Shortage()
        shortage.failing = True
        w = make("sleep 300", numprocesses=3, max_retry=1, process_factory=shortage)
        info = await w.start()  # returns: the processes come once the host has room again
        assert info["started"] == [] and w.status() == "active"
        await recorder.until(lambda: shortage.refused >= 3, within=20)
        shortage.failing = False
        await recorder.until(lambda: len(w.pids) == 3, within=20)
        assert w.status() == "active"

    run_async(main)


def test_stop_cancels_retries(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        shortage = Shortage()
        shortage.failing = True
        w = make("sleep 300", numprocesses=2, max_retry=1, process_factory=shortage)
        await w.start()
        await recorder.until(lambda: shortage.refused >= 2, within=20)
        await w.stop()
        refused = shortage.refused
        shortage.failing = False
        await w.start()
        assert len(w.pids) == 2
        assert shortage.refused == refused

    run_async(main)


def test_a_bad_option_still_stops_the_watcher(make: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("/nonexistent/program", numprocesses=1, max_retry=2)
        with pytest.raises(SpawnFailedError):
            await w.start()
        assert w.status() == "stopped"

    run_async(main)

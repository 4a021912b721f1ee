"""The orphan reaper's SIGCHLD handling survives a storm of child deaths on a busy loop.

Every signal delivered to a Python handler writes one byte to asyncio's wakeup socket, and
asyncio learns *which* signal arrived from those bytes. Hundreds of SIGCHLDs while the loop is
busy used to fill that socket: Python printed "Exception ignored ... wakeup fd" for each, and
the byte of any other signal sent then (SIGTERM to circusd) was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

import pytest
from circus.arbiter._reaper import watch_orphans

N = 800


def _fork_dying_children(n: int) -> list[int]:
    """``n`` children, the i-th exiting after i ms: a steady stream of SIGCHLDs."""
    pids = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            time.sleep(i * 0.001)
            os._exit(0)
        pids.append(pid)
    return pids


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_other_signals_survive_a_sigchld_storm_on_a_busy_loop(
    capfd: pytest.CaptureFixture[str],
) -> None:
    got: list[int] = []
    pids: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        arrived = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, lambda: (got.append(1), arrived.set()))
        undo = watch_orphans(loop)
        try:
            pids.extend(_fork_dying_children(N))
            time.sleep(N * 0.001 / 2)  # noqa: ASYNC251 - the loop is busy while half die...
            os.kill(os.getpid(), signal.SIGUSR1)  # ...and a signal comes in the middle
            time.sleep(N * 0.001)  # noqa: ASYNC251 - and still busy while the rest die
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), 10)
        finally:
            undo()
            loop.remove_signal_handler(signal.SIGUSR1)

    try:
        asyncio.run(main())
    finally:
        for pid in pids:
            os.waitpid(pid, 0)
    assert got == [1], "the SIGUSR1 delivered during the SIGCHLD storm was lost"
    assert "wakeup fd" not in capfd.readouterr().err
    assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL  # undo restored the default

"""A stop cancelled while a ``before_reap`` hook runs: the ending taken on after the cancel
still reports the reap of every process it ended (the one whose hook was cut included)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

SLEEP = "sleep 300"


def test_a_stop_cancelled_inside_a_reap_hook_still_reports_every_reap(
    make: Any, recorder: Any, run_async: Any
) -> None:
    async def main() -> None:
        entered = asyncio.Event()
        calls: list[int] = []

        async def before_reap(**kwargs: Any) -> bool:
            calls.append(kwargs["process_pid"])
            if len(calls) == 1:
                entered.set()
                await asyncio.Event().wait()  # until the stop is cancelled
            return True

        w = make(SLEEP, numprocesses=2, hooks={"before_reap": before_reap})
        await w.start()
        pids = w.pids
        stop = asyncio.ensure_future(w.stop())
        await asyncio.wait_for(entered.wait(), 30)
        stop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stop
        await asyncio.wait_for(w.stop(), 30)
        reaped = sorted(p["process_pid"] for p in recorder.of("reap"))
        assert reaped == sorted(pids), f"reaps reported {reaped}, processes ended {pids}"

    run_async(main)


def test_a_stop_cancelled_inside_a_signal_hook_asks_it_once_and_signals(
    make: Any, recorder: Any, run_async: Any
) -> None:
    """The process whose ``before_signal`` hook was cut gets its stop signal from the
    resumed ending, and the hook is not asked about it a second time."""

    async def main() -> None:
        entered = asyncio.Event()
        calls: list[int] = []

        async def before_signal(**kwargs: Any) -> bool:
            calls.append(kwargs["pid"])
            if len(calls) == 1:
                entered.set()
                await asyncio.Event().wait()  # until the stop is cancelled
            return True

        w = make(SLEEP, numprocesses=2, graceful_timeout=20, hooks={"before_signal": before_signal})
        await w.start()
        pids = w.pids
        stop = asyncio.ensure_future(w.stop())
        await asyncio.wait_for(entered.wait(), 30)
        stop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stop
        await asyncio.wait_for(w.stop(), 60)
        assert sorted(calls) == sorted(pids), f"hook asked {calls} for {pids}"
        codes = {p["process_pid"]: p["exit_code"] for p in recorder.of("reap")}
        assert codes == {pid: -signal.SIGTERM for pid in pids}, codes

    run_async(main)

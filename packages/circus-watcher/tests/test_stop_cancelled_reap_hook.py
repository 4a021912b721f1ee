"""A stop cancelled while a ``before_reap`` hook runs: the ending taken on after the cancel
still reports the reap of every process it ended (the one whose hook was cut included)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

SLEEP = "sleep 300"


@pytest.mark.xfail(
    strict=True,
    reason="the resumed ending skips the process whose reap hook was cancelled: "
    "ProcessSet.retired() already returned True for it, so its reap is never emitted",
)
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

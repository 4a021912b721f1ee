"""A stop (or decr) whose caller is cancelled while it waits: the processes it was ending are
still ended (SIGKILL after the graceful timeout), reported and closed, and the exit
countdown is left empty; the next stop waits for that ending."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

import pytest

SLEEP = "sleep 300"
# ``sleep`` ignores SIGWINCH (its default action): the stop waits its whole graceful timeout.
DEAF = {"stop_signal": int(signal.SIGWINCH), "graceful_timeout": 1.0}


def _reaped(pid: int) -> bool:
    """The pid is gone from the process table (reaped, not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _countdown_empty(w: Any) -> bool:
    procs = w._procs
    return not procs._groups and not procs.exits and not procs.retiring


async def _cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_a_cancelled_stop_still_ends_its_processes_and_the_next_stop_waits_for_them(
    make: Any, recorder: Any, run_async: Any
) -> None:
    async def main() -> None:
        w = make(SLEEP, numprocesses=3, **DEAF)
        await w.start()
        pids = w.pids
        stop = asyncio.ensure_future(w.stop())
        await recorder.until(lambda: recorder.count("kill") == 3)  # in its graceful wait
        await _cancel(stop)
        assert not any(_reaped(pid) for pid in pids)
        await asyncio.wait_for(w.stop(), 30)
        assert all(_reaped(pid) for pid in pids), "a cancelled stop's processes were left alive"
        reaps = {p["process_pid"]: p["exit_code"] for p in recorder.of("reap")}
        assert reaps == dict.fromkeys(pids, -9)
        assert _countdown_empty(w) and w._procs.idle
        assert recorder.names()[-1] == "stop"

    run_async(main)


@pytest.mark.slow
def test_a_cancelled_decr_still_ends_its_process(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make(SLEEP, numprocesses=2, **DEAF)
        await w.start()
        oldest = w.pids[0]
        decr = asyncio.ensure_future(w.decr(1))
        await recorder.until(lambda: recorder.count("kill") == 1)
        await _cancel(decr)
        # nobody awaits it any more: the ending runs on, SIGKILL after the timeout
        await recorder.until(lambda: recorder.count("reap") == 1, within=30)
        assert recorder.of("reap")[0]["process_pid"] == oldest
        assert _reaped(oldest)
        await recorder.until(lambda: _countdown_empty(w), within=10)
        assert len(w.pids) == 1 and oldest not in w.pids

    run_async(main)


def test_an_ending_given_up_half_way_leaves_no_countdown_entry(
    make: Any, recorder: Any, run_async: Any
) -> None:
    """The ending itself cancelled (as at loop shutdown): its exit futures and countdown
    entries are dropped, and a stop afterwards still ends the processes."""

    async def main() -> None:
        w = make(SLEEP, numprocesses=2, **DEAF)
        await w.start()
        pids = w.pids
        stop = asyncio.ensure_future(w.stop())
        await recorder.until(lambda: recorder.count("kill") == 2)
        await _cancel(stop)
        (ending,) = w._stopper._endings  # what took the cancelled stop's ending on
        await _cancel(ending)
        assert not w._procs._groups and not w._procs.exits
        assert set(w.ending) == set(pids)
        await asyncio.wait_for(w.stop(), 30)
        assert all(_reaped(pid) for pid in pids)
        assert _countdown_empty(w) and w._procs.idle

    run_async(main)


@pytest.mark.slow
def test_a_cancelled_tree_stop_still_ends_the_whole_tree(
    make: Any, recorder: Any, run_async: Any, tmp_path: Any
) -> None:
    """stop_children: a shell and its child both deaf to SIGTERM; the stop cancelled in its
    graceful wait still SIGKILLs the tree, and the next stop returns once both are gone."""

    async def main() -> None:
        child_file = tmp_path / "child"
        w = make(
            f"sh -c 'trap \"\" TERM; sleep 300 & echo $! > {child_file}; wait'",
            stop_children=True,
            graceful_timeout=1.0,
        )
        await w.start()
        shell = w.pids[0]
        await recorder.until(lambda: child_file.exists() and child_file.read_text().strip() != "")
        child = int(child_file.read_text())
        stop = asyncio.ensure_future(w.stop())
        await recorder.until(lambda: recorder.count("kill") >= 2)  # the tree signalled
        await _cancel(stop)
        await asyncio.wait_for(w.stop(), 30)
        assert _reaped(shell)
        await recorder.until(lambda: _reaped(child), within=10)  # reaped by init or us
        assert _countdown_empty(w) and w._procs.idle

    run_async(main)

"""A child's exit is seen at once while output floods: the shared reader's flood pauses hold
output back, never an exit (one pause per FLOOD_BATCH flooding fds would put a reap, and so a
respawn or a stop, behind every chatty pipe: 0.7 s behind 2,000)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from circus.process import Process, _mux

FLOODING = 20 * _mux.FLOOD_BATCH  # a pidfd behind all of them would wait ~20 pauses


def test_an_exit_is_not_held_behind_flooding_pipes(monkeypatch: Any) -> None:
    pauses = 0
    original = _mux.FdMux._pause

    def counted(self: _mux.FdMux) -> None:
        nonlocal pauses
        pauses += 1
        original(self)

    monkeypatch.setattr(_mux.FdMux, "_pause", counted)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        pipes = [os.pipe() for _ in range(FLOODING)]
        proc = Process("t", 1, "sleep", args=["300"], exact_tree=False)
        exited = loop.create_future()
        mux = _mux.mux_for(loop)
        try:
            for r, w in pipes:
                os.write(w, b"x")  # never read: readable for ever, a flood
                mux.add(r, lambda: True)
            proc.add_exit_callback(lambda p: exited.done() or exited.set_result(pauses))
            for _ in range(3 * FLOODING // _mux.FLOOD_BATCH):  # flood mode for sure
                await asyncio.sleep(0)
            assert pauses > 0
            before = pauses
            os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
            seen_at = await asyncio.wait_for(exited, 60)
            return seen_at - before
        finally:
            for r, w in pipes:
                _mux.release(loop, r)
                os.close(r)
                os.close(w)
            if proc.returncode is None:
                os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
                proc.wait(10)
            proc.close()

    assert asyncio.run(main()) <= 2, "the exit waited behind the flooding pipes"


def test_a_mass_exit_is_served_in_batches() -> None:
    """Exits too are served MAX_EVENTS at a time: the loop gets a turn between batches (a
    control request is not held behind a thousand reaps and their respawns)."""

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        pipes = [os.pipe() for _ in range(3 * _mux.MAX_EVENTS)]
        served = 0
        passes: list[int] = []  # exits served so far, at each loop pass
        all_served = asyncio.Event()

        def on_exit(r: int) -> None:
            nonlocal served
            served += 1
            _mux.release(loop, r)
            if served == len(pipes):
                all_served.set()

        def tick() -> None:
            passes.append(served)
            if not all_served.is_set():
                loop.call_soon(tick)

        try:
            for r, w in pipes:
                os.write(w, b"x")
                _mux.mux_for(loop).add(r, on_exit, r, exit_fd=True)
            loop.call_soon(tick)
            await asyncio.wait_for(all_served.wait(), 30)
            return next(n for n in passes if n), served
        finally:
            for r, w in pipes:
                _mux.release(loop, r)
                os.close(r)
                os.close(w)

    first, total = asyncio.run(main())
    assert total == 3 * _mux.MAX_EVENTS
    assert first <= 2 * _mux.MAX_EVENTS, "every exit was served in one loop pass"

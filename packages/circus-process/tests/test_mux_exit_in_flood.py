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

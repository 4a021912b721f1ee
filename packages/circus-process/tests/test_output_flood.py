"""A flood of output pauses the shared epoll reader between batches: a control request's few
loop hops run with no output work between them, and no line is lost or torn meanwhile."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any

from circus.process import OutputRedirector, _mux
from circus.process.streams import FileStream
from circus.process.testing import async_wait_until

HOPS = 3  # a control request: socket readable -> receiving task -> handler task


def _request_hops(loop: asyncio.AbstractEventLoop, mark: Any, done: asyncio.Event) -> None:
    """Run ``HOPS`` callbacks one loop pass after another, as a request's path does."""

    def hop(left: int) -> None:
        if left:
            loop.call_soon(hop, left - 1)
        else:
            mark("answered")
            done.set()

    hop(HOPS)


def test_a_full_batch_of_busy_fds_pauses_the_reader(monkeypatch) -> None:
    """After a batch in which many callbacks moved output, the next passes of the loop run no
    output callback (until PAUSE ends); then every fd is served again until drained."""
    monkeypatch.setattr(_mux, "PAUSE", 2.0)  # generous: the hops take microseconds
    count = 2 * _mux.MAX_EVENTS

    async def main() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        pipes = [os.pipe() for _ in range(count)]
        served = 0
        at: dict[str, int] = {}
        answered = asyncio.Event()
        drained = asyncio.Event()
        left = {r: 20 for r, _ in pipes}  # 20 bytes each, read one at a time: stays readable
        try:

            def on_pipe(r: int) -> bool:
                nonlocal served
                os.read(r, 1)
                served += 1
                left[r] -= 1
                if served == _mux.MAX_EVENTS:  # the first batch ends: a request arrives
                    at["asked"] = served
                    loop.call_soon(
                        _request_hops, loop, lambda k: at.setdefault(k, served), answered
                    )
                if not left[r]:
                    mux.remove(r)
                if not any(left.values()):
                    drained.set()
                return bool(left[r])

            mux = _mux.mux_for(loop)
            for r, w in pipes:
                os.write(w, b"x" * 20)
                mux.add(r, on_pipe, r)
            await asyncio.wait_for(answered.wait(), 30)
            _mux.PAUSE = 0.001  # measured; the rest just drains (monkeypatch restores it)
            await asyncio.wait_for(drained.wait(), 60)
        finally:
            for fd in (fd for p in pipes for fd in p):
                os.close(fd)
        return at["asked"], at["answered"], served

    asked, answered, served = asyncio.run(main())
    assert answered - asked == 0, f"{answered - asked} output callbacks ran between the hops"
    assert served == count * 20  # nothing skipped once the pause ended


def test_a_request_waits_for_one_batch_at_most_and_no_line_is_lost(
    spawn, tmp_path: Path, monkeypatch
) -> None:
    """Real children flood one shared FileStream: a request arriving mid-batch is answered
    before another batch starts, and the file holds every line of every child, whole."""
    monkeypatch.setattr(_mux, "PAUSE", 1.0)
    monkeypatch.setattr(_mux, "FLOOD_MIN", 8)
    children, lines = 24, 60_000
    dispatches = 0
    chunks = 0  # of the dispatch under way
    real_dispatch = _mux.FdMux._dispatch

    def counting_dispatch(self: _mux.FdMux) -> None:
        nonlocal dispatches, chunks
        dispatches += 1
        chunks = 0
        real_dispatch(self)

    monkeypatch.setattr(_mux.FdMux, "_dispatch", counting_dispatch)
    target = tmp_path / "shared.log"
    gate_r, gate_w = os.pipe()
    try:
        procs = [
            spawn(
                "/bin/sh",
                args=["-c", f"read x; exec seq 1 {lines}"],
                stdin_fd=gate_r,
                pipe_stderr=False,
            )
            for _ in range(children)
        ]
    finally:
        os.close(gate_r)

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        file_stream = FileStream(str(target))
        redirector = OutputRedirector()
        at: dict[str, int] = {}
        answered = asyncio.Event()
        ctl_r, ctl_w = os.pipe()

        def on_control() -> None:
            os.read(ctl_r, 1)
            loop.remove_reader(ctl_r)
            _request_hops(loop, lambda k: at.setdefault(k, dispatches), answered)

        def stream(chunk: dict[str, Any]) -> None:
            nonlocal chunks
            file_stream(chunk)
            chunks += 1
            if "asked" not in at and dispatches >= 2 and chunks == _mux.FLOOD_MIN:
                at["asked"] = dispatches  # mid-batch, the flood under way
                os.write(ctl_w, b"?")

        for attr in ("attach", "end"):
            setattr(stream, attr, getattr(file_stream, attr))
        loop.add_reader(ctl_r, on_control)
        try:
            for proc in procs:
                redirector.add(proc, stream)
            os.close(gate_w)  # every child starts now
            await asyncio.wait_for(answered.wait(), 60)
            _mux.PAUSE = 0.001  # measured; the rest just drains (monkeypatch restores it)
            for proc in procs:
                assert await asyncio.wait_for(proc.wait_async(), 60) == 0
            await async_wait_until(lambda: not redirector.processes, 60, "every EOF read")
        finally:
            loop.remove_reader(ctl_r)
            os.close(ctl_r)
            os.close(ctl_w)
            redirector.close()
            file_stream.close()
        return at["asked"], at["answered"]

    asked, answered = asyncio.run(main())
    # the batch under way when the request came ends; no other one starts before the answer
    assert answered == asked, f"{answered - asked} more batches of output before the answer"
    counts = Counter(target.read_bytes().split(b"\n"))
    assert counts.pop(b"") == 1  # the file ends with a newline, nothing after it
    assert counts == Counter({str(i).encode(): children for i in range(1, lines + 1)})

"""A flood of output pauses the shared epoll reader between batches: a control request's few
loop hops run with no output work between them, and no line is lost or torn meanwhile."""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import termios
from collections import Counter
from pathlib import Path
from typing import Any

from circus.process import OutputRedirector, _mux
from circus.process.streams import FileStream
from circus.process.testing import async_wait_until, wait_until

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


def test_real_children_flooding_a_shared_file_pause_the_reader_and_lose_no_line(
    spawn, tmp_path: Path, monkeypatch
) -> None:
    """Children whose pipes are full when the reader starts make it pause between batches
    (their readable callbacks say they moved output), and the shared file still holds every
    line of every child, whole, once they are done."""
    monkeypatch.setattr(_mux, "PAUSE", 0.002)
    monkeypatch.setattr(_mux, "MAX_EVENTS", 16)  # 24 children: a flood at 8 busy pipes
    children, lines = 24, 60_000
    paused = 0
    real_dispatch = _mux.FdMux._dispatch

    def counting_dispatch(self: _mux.FdMux) -> None:
        nonlocal paused
        real_dispatch(self)
        paused += getattr(self, "_resume_at", None) is not None

    monkeypatch.setattr(_mux.FdMux, "_dispatch", counting_dispatch)
    target = tmp_path / "shared.log"
    procs = [spawn("seq", args=["1", str(lines)], pipe_stderr=False) for _ in range(children)]

    def waiting(fd: int) -> int:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]

    # every pipe full (seq then blocks), so the first batch is a flood
    wait_until(lambda: all(waiting(p.stdout) >= 32 * 1024 for p in procs), 30, "pipes full")

    async def main() -> None:
        stream = FileStream(str(target))
        redirector = OutputRedirector()
        try:
            for proc in procs:
                redirector.add(proc, stream)
            for proc in procs:
                assert await asyncio.wait_for(proc.wait_async(), 60) == 0
            await async_wait_until(lambda: not redirector.processes, 60, "every EOF read")
        finally:
            redirector.close()
            stream.close()

    asyncio.run(main())
    assert paused, "the reader never paused"
    counts = Counter(target.read_bytes().split(b"\n"))
    assert counts.pop(b"") == 1  # the file ends with a newline, nothing after it
    assert counts == Counter({str(i).encode(): children for i in range(1, lines + 1)})

"""The shared epoll reader: many fds, one loop registration, nothing left open afterwards."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from circus.process import _mux


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def test_callbacks_run_with_their_args_until_removed() -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        seen: list[Any] = []
        got = asyncio.Event()
        r, w = os.pipe()
        try:

            def on_ready(tag: str) -> None:
                seen.append((tag, os.read(r, 100)))
                got.set()

            _mux.mux_for(loop).add(r, on_ready, "pipe")
            os.write(w, b"x")
            await asyncio.wait_for(got.wait(), 5)
            _mux.release(loop, r)
            os.write(w, b"y")  # no longer watched: stays in the pipe
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert os.read(r, 100) == b"y"
        finally:
            os.close(r)
            os.close(w)
        return seen

    assert asyncio.run(main()) == [("pipe", b"x")]


def test_one_loop_reader_for_many_fds_and_closed_when_empty() -> None:
    before = _open_fds()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pipes = [os.pipe() for _ in range(50)]
        try:
            mux = _mux.mux_for(loop)
            for r, _ in pipes:
                mux.add(r, lambda: None)
            assert _mux.mux_for(loop) is mux and len(mux) == 50
            # asyncio itself watches its self-pipe and our one epoll fd, not 50 pipes
            assert len(loop._selector.get_map()) <= 3  # type: ignore[attr-defined]
            for r, _ in pipes:
                _mux.release(loop, r)
            assert _mux.mux_for(loop) is not mux  # the empty one was closed
            _mux.release(loop, -1)
        finally:
            for r, w in pipes:
                os.close(r)
                os.close(w)
        mux = _mux.mux_for(loop)
        _mux.release(loop, 12345)  # unknown fd: a no-op that still closes the empty mux

    asyncio.run(main())
    assert _open_fds() <= before


def test_a_failing_callback_is_reported_and_others_still_run() -> None:
    async def main() -> tuple[list[dict[str, Any]], bool]:
        loop = asyncio.get_running_loop()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        ok = asyncio.Event()
        (r1, w1), (r2, w2) = os.pipe(), os.pipe()
        try:

            def boom() -> None:
                os.read(r1, 10)
                raise RuntimeError("bad callback")

            def fine() -> None:
                os.read(r2, 10)
                ok.set()

            mux = _mux.mux_for(loop)
            mux.add(r1, boom)
            mux.add(r2, fine)
            os.write(w1, b"1")
            os.write(w2, b"2")
            await asyncio.wait_for(ok.wait(), 5)
            _mux.release(loop, r1)
            _mux.release(loop, r2)
        finally:
            for fd in (r1, w1, r2, w2):
                os.close(fd)
        return errors, ok.is_set()

    errors, ok = asyncio.run(main())
    assert ok
    assert [str(e["exception"]) for e in errors] == ["bad callback"]


def test_the_loop_gets_a_turn_between_batches_of_busy_fds(monkeypatch) -> None:
    """A control request (another reader of the loop) waits for a batch of callbacks, not for
    a pass over every busy pipe; and every pipe is still served."""
    monkeypatch.setattr(_mux, "MAX_EVENTS", 8)
    count = 100

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        pipes = [os.pipe() for _ in range(count)]
        ctl_r, ctl_w = os.pipe()
        served: list[int] = []
        before_control: list[int] = []
        done = asyncio.Event()
        try:

            def on_pipe(r: int) -> None:
                os.read(r, 10)
                if not served:
                    os.write(ctl_w, b"?")  # a request arrives while the flood is served
                served.append(r)
                if len(served) == count:
                    done.set()

            def on_control() -> None:
                os.read(ctl_r, 10)
                before_control.append(len(served))
                loop.remove_reader(ctl_r)

            loop.add_reader(ctl_r, on_control)
            mux = _mux.mux_for(loop)
            for r, w in pipes:
                os.write(w, b"x")
                mux.add(r, on_pipe, r)
            await asyncio.wait_for(done.wait(), 10)
            for r, _ in pipes:
                _mux.release(loop, r)
        finally:
            for fd in (ctl_r, ctl_w, *(fd for p in pipes for fd in p)):
                os.close(fd)
        assert sorted(served) == sorted(r for r, _ in pipes)  # each once
        return before_control[0], len(served)

    first_seen_at, total = asyncio.run(main())
    assert total == count
    # at most two loop passes' worth of batches before the request is read (not all 100)
    assert first_seen_at <= 4 * 8, first_seen_at


def test_fds_that_stay_readable_are_served_in_turn(monkeypatch) -> None:
    """With more always-readable fds than one batch holds, none is skipped for long."""
    monkeypatch.setattr(_mux, "MAX_EVENTS", 8)
    count = 50

    async def main() -> dict[int, int]:
        loop = asyncio.get_running_loop()
        pipes = [os.pipe() for _ in range(count)]
        calls: dict[int, int] = {}
        snapshot: dict[int, int] = {}
        done = asyncio.Event()
        try:

            def on_pipe(r: int) -> None:  # never drained: readable at every poll
                calls[r] = calls.get(r, 0) + 1
                if len(calls) == count and not done.is_set():
                    snapshot.update(calls)  # when the last fd is first reached
                    done.set()

            mux = _mux.mux_for(loop)
            for r, w in pipes:
                os.write(w, b"x")
                mux.add(r, on_pipe, r)
            await asyncio.wait_for(done.wait(), 10)
            for r, _ in pipes:
                _mux.release(loop, r)
        finally:
            for fd in (fd for p in pipes for fd in p):
                os.close(fd)
        return snapshot

    calls = asyncio.run(main())
    assert len(calls) == count
    assert max(calls.values()) <= 2, calls  # every fd reached before any is served a third time


def test_an_fd_made_readable_by_a_callback_is_served_in_the_same_dispatch() -> None:
    """A dying child's pipes report EOF just before its pidfd turns readable: the mux asks
    epoll again after its callbacks, so the later fd is served in the same loop pass."""

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        order: list[str] = []
        (r1, w1), (r2, w2) = os.pipe(), os.pipe()
        try:

            def first() -> None:
                os.read(r1, 10)
                order.append("first")
                os.write(w2, b"2")  # readable only after the dispatch's first poll

            def second() -> None:
                os.read(r2, 10)
                order.append("second")

            mux = _mux.mux_for(loop)
            mux.add(r1, first)
            mux.add(r2, second)
            os.write(w1, b"1")
            mux._dispatch()  # one dispatch, as the loop runs it when the epoll fd is readable
            _mux.release(loop, r1)
            _mux.release(loop, r2)
        finally:
            for fd in (r1, w1, r2, w2):
                os.close(fd)
        return order

    assert asyncio.run(main()) == ["first", "second"]


def test_a_dispatch_that_empties_and_refills_the_mux_keeps_it() -> None:
    """A respawn releases the dead child's fd and adds its replacement's in one callback: the
    same epoll set serves both (not closed and made again); a dispatch that leaves the mux
    empty still closes it, and nothing is left open."""
    before = _open_fds()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        (r1, w1), (r2, w2) = os.pipe(), os.pipe()
        replaced = asyncio.Event()
        done = asyncio.Event()
        try:
            mux = _mux.mux_for(loop)

            def dead() -> None:  # the old fd goes, the new one comes, in one callback
                _mux.release(loop, r1)
                _mux.mux_for(loop).add(r2, new)
                replaced.set()

            def new() -> None:
                os.read(r2, 10)
                _mux.release(loop, r2)  # the mux is empty when this dispatch ends
                done.set()

            mux.add(r1, dead)
            os.close(w1)  # EOF: readable
            w1 = -1
            await asyncio.wait_for(replaced.wait(), 5)
            assert _mux.mux_for(loop) is mux and len(mux) == 1
            os.write(w2, b"x")
            await asyncio.wait_for(done.wait(), 5)
            assert _mux._muxes.get(loop) is None  # closed at the end of that dispatch
        finally:
            for fd in (r1, w1, r2, w2):
                if fd >= 0:
                    os.close(fd)

    asyncio.run(main())
    assert _open_fds() <= before

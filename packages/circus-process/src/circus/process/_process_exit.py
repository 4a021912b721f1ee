"""Noticing and awaiting a child's exit: poll, wait, exit callbacks and ``wait_async``.

The part of :class:`~circus.process.Process` that reaps. Death is seen through kernel
events, never by polling: the pidfd goes straight into the running loop's epoll set
(``_mux``), or, without pidfds, a SIGCHLD handler checks the watched children
(``_exitwatch``). A blocking :meth:`ExitWatching.wait` polls the pidfd with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import select
import time
from collections.abc import Callable
from typing import Any, Self

from . import _mux
from ._attach import foreign_exit
from ._errors import ProcessStateError
from ._exitwatch import unwatch_exit, watch_exit
from ._process_fields import ProcessFields
from ._reaping import registry, try_reap

__all__ = ["ExitWatching"]


class ExitWatching(ProcessFields):
    """Reaping the child and telling whoever waits for it (see :class:`Process`)."""

    __slots__ = ()

    def poll(self) -> int | None:
        """Reap the child if it has exited (never blocks); return its returncode or None."""
        if self.returncode is not None or self.pid is None:
            return self.returncode
        if self._foreign:
            rc = foreign_exit(self.pid, self.pidfd, self._start_ticks, block=False)
        else:
            rc = try_reap(self.pid, self.pidfd)
        if rc is not None:
            self._reaped(rc)
        return self.returncode

    def is_alive(self) -> bool:
        """True while the child has not been reaped and has not exited."""
        return self.pid is not None and self.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Block until the child exits and is reaped; return its returncode.

        Raises:
            TimeoutError: still running after ``timeout`` seconds.
        """
        pid = self._require_pid()
        rc = self.poll()
        if rc is not None:
            return rc
        if timeout is None and self._foreign:
            rc = foreign_exit(pid, self.pidfd, self._start_ticks, block=True)
            if rc is None:  # pragma: no cover - a blocking poll returns on exit only
                raise ProcessStateError(f"{self!r}: its pidfd said nothing")
            self._reaped(rc)
            return rc
        if timeout is None:
            while rc is None:  # None only if interrupted, which PEP 475 retries anyway
                rc = try_reap(pid, self.pidfd, block=True)
            self._reaped(rc)
            return rc
        deadline = time.monotonic() + timeout
        if self.pidfd is not None:
            poller = select.poll()
            poller.register(self.pidfd, select.POLLIN)
            while (rc := self.poll()) is None:
                remaining = deadline - time.monotonic()
                expired = remaining <= 0 or not poller.poll(remaining * 1000)
                if expired and self.poll() is None:
                    raise TimeoutError(f"{self!r} still running after {timeout}s")
            return rc
        delay = 0.0005  # no pidfd: back off like Popen.wait does
        while (rc := self.poll()) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self!r} still running after {timeout}s")
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.05)
        return rc

    # -- asyncio ------------------------------------------------------------------------------

    def _ensure_watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._watch_undo is not None:
            if self._watch_loop is loop:
                return
            if self._watch_loop is not None and not self._watch_loop.is_closed():
                raise ProcessStateError(f"{self!r} is already watched by another event loop")
            self._unwatch()
        self._watch_loop = loop
        if self.pidfd is not None:
            # Straight into the loop's epoll set: no undo closure to keep per child.
            _mux.mux_for(loop).add(self.pidfd, self._on_exit_event, exit_fd=True)
            self._watch_undo = _PIDFD_WATCHED
        else:
            self._watch_undo = watch_exit(loop, self, self._on_exit_event)

    def _unwatch(self) -> None:
        undo, self._watch_undo = self._watch_undo, None
        if undo is _PIDFD_WATCHED:
            if self._watch_loop is not None and self.pidfd is not None:
                _mux.release(self._watch_loop, self.pidfd)
        else:
            unwatch_exit(undo)

    def _on_exit_event(self) -> None:
        # Called by the loop itself: exit callbacks may run right here instead of one more
        # loop iteration later (what respawn latency is made of).
        self._in_exit_event = True
        try:
            self.poll()
        finally:
            self._in_exit_event = False

    def add_exit_callback(self, cb: Callable[[Self], None]) -> None:
        """Call ``cb(process)`` once, on the running asyncio loop, after the child is reaped.

        Death is noticed by events (pidfd reader, or SIGCHLD), never by polling. A callback
        added after the exit is scheduled at once.
        """
        self._require_pid()
        loop = asyncio.get_running_loop()
        if self.returncode is not None:
            loop.call_soon(cb, self)
            return
        # flat (loop, cb, loop, cb, ...), remade on change: two callbacks a child as a rule,
        # one small tuple instead of a list of pairs (thousands of children)
        self._exit_callbacks = (*self._exit_callbacks, loop, cb)
        self._ensure_watch(loop)

    async def wait_async(self) -> int:
        """Await the child's exit (event-driven) and return its returncode."""
        self._require_pid()
        rc = self.poll()
        if rc is not None:
            return rc
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        if not self._waiters:
            self._waiters = []
        self._waiters.append(fut)
        self._ensure_watch(loop)
        try:
            return await fut
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)

    def _reaped(self: Self, rc: int) -> None:
        self.returncode = rc
        if self.pid is not None:
            other = registry.pop(self.pid, None)
            if other is not None and other is not self:
                registry[self.pid] = other  # not ours (a pid reused): put back
        self._unwatch()
        self._sigchld_cb = None
        fd = self.pidfd
        if fd is not None:
            self.pidfd = None
            os.close(fd)
        if self._waiters:
            for fut in self._waiters:
                if not fut.done():
                    _call_on(fut.get_loop(), _set_result, fut, rc)
        callbacks, self._exit_callbacks = iter(self._exit_callbacks), ()
        inline = self._in_exit_event
        for loop, cb in zip(callbacks, callbacks, strict=False):  # the (loop, cb) pairs
            if inline and loop is self._watch_loop and loop is not None:
                try:
                    cb(self)
                except Exception as exc:
                    loop.call_exception_handler(
                        {"message": f"exit callback {cb!r} failed", "exception": exc}
                    )
            else:
                _call_on(loop, cb, self)


def _PIDFD_WATCHED() -> None:  # noqa: N802 - a marker: "watched through the loop's mux"
    """Marks a pidfd watched in the loop's epoll set (undone by ``ExitWatching._unwatch``)."""


def _set_result(fut: asyncio.Future[int], rc: int) -> None:
    if not fut.done():
        fut.set_result(rc)


def _call_on(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """Schedule ``fn(*args)`` on ``loop`` from whatever thread we are in."""
    if loop.is_closed():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        loop.call_soon(fn, *args)
    else:
        loop.call_soon_threadsafe(fn, *args)

"""One asyncio reader for many file descriptors: an epoll set registered once per loop.

``loop.add_reader`` costs a Handle, a SelectorKey and a selector-map entry per fd, plus a few
microseconds of Python per registration. A manager watches up to three fds per child (pidfd,
stdout, stderr), so with thousands of children that is megabytes and milliseconds. Here the
children's fds live in one epoll instance (kernel memory) that is itself one reader on the
loop; per fd we keep only a dict entry. Level-triggered, like asyncio's own selector.
"""

from __future__ import annotations

import asyncio
import select
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["FdMux", "mux_for"]

_READ = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP
_ROUNDS = 2  # epoll polls per dispatch: the second catches what the first one's callbacks met
# Most fds served per dispatch. The loop gets a turn between batches, so a control request
# waits for at most this many callbacks rather than for a pass over every busy pipe (1,000
# chatty children left ``status`` seconds behind on a starved CPU share). Level-triggered
# epoll moves the fds it reports to the back of its ready list: those not reported this time
# come first in the next poll, so every fd is served in turn.
MAX_EVENTS = 64
# A flood (at least half of one dispatch's callbacks said they moved output and their fd
# stays open) makes the mux stop watching for PAUSE seconds, and serve at most FLOOD_BATCH
# fds per dispatch while the flood lasts: the loop runs what else is ready (a control
# request's few hops) with no output work between them, then sleeps; a sleeping circusd is
# woken at once when a request arrives, where one that is always runnable waits behind the
# writers for a CPU, and shorter bursts of work wait less (1,000 chatty children on 2 cores:
# the main thread sat on the run queue for most of each slow ``status``; bench/README.md,
# "Chatty, session 4"). Output is not lost meanwhile: it waits in the pipes, and reads get
# bigger. Exits (pidfds, added with ``exit_fd=True``) are in an epoll set of their own that is
# never paused and is served first: held behind the flooding pipes' turns, a reap (and so a
# respawn or a stop) waited one PAUSE per FLOOD_BATCH of them (0.7 s behind 2,000 pipes).
# A dispatch that is mostly pipes at EOF (a mass stop) ends the flood mode at once.
FLOOD_BATCH = 16
PAUSE = 0.005


class FdMux:
    """Call ``callback(*args)`` on the loop whenever a registered fd is readable (or hung up).

    A callback returning ``True`` says it moved data and its fd may have more (output, not an
    exit): when half of a dispatch's callbacks do, the mux pauses for :data:`PAUSE` seconds
    and serves :data:`FLOOD_BATCH` fds per dispatch until a dispatch is not a flood (see
    there). Only the loop's thread may use it. Remove an fd before closing it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop_ref = weakref.ref(loop)
        self._epoll = select.epoll()  # close-on-exec, so children never inherit it
        self._exits = select.epoll()  # exit fds: never paused (see FLOOD_BATCH)
        self._callbacks: dict[int, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
        self._exit_fds: set[int] = set()  # the fds in ``_exits``; the rest are in ``_epoll``
        self._dispatching = False
        self._resume_at: asyncio.TimerHandle | None = None  # set while paused
        self._flooding = False
        loop.add_reader(self._epoll.fileno(), self._dispatch)
        loop.add_reader(self._exits.fileno(), self._dispatch_exits)

    def __len__(self) -> int:
        return len(self._callbacks)

    def add(self, fd: int, callback: Callable[..., Any], *args: Any, exit_fd: bool = False) -> None:
        """Watch ``fd``; replaces an earlier callback for the same fd. ``exit_fd``: a
        process's exit (a pidfd), served first and never held back by a flood pause."""
        if fd in self._callbacks:
            self._callbacks[fd] = (callback, args)
            return
        if exit_fd:
            self._exits.register(fd, _READ)
            self._exit_fds.add(fd)
        else:
            self._epoll.register(fd, _READ)
        self._callbacks[fd] = (callback, args)

    def remove(self, fd: int) -> None:
        """Stop watching ``fd`` (a no-op if it is not watched)."""
        if self._callbacks.pop(fd, None) is None:
            return
        # Only the set it is in: trying both cost a failed epoll_ctl and a raised OSError for
        # each of a child's three fds (6,000 of them in a stop of 1,000).
        if fd in self._exit_fds:
            self._exit_fds.discard(fd)
            epoll = self._exits
        else:
            epoll = self._epoll
        try:
            epoll.unregister(fd)
        except (OSError, ValueError):
            pass  # closed already (the kernel dropped it), or the set is closed

    def _dispatch(self) -> None:
        # An fd released by a callback leaves the mux open until the dispatch ends: a dead
        # child's replacement, spawned in its exit callback, reuses it (no epoll set closed
        # and made again, no loop reader removed and added again, per respawn).
        self._dispatching = True
        busy = 0
        budget = FLOOD_BATCH if self._flooding else MAX_EVENTS
        try:
            busy = self._dispatch_rounds(budget)
        finally:
            self._flooding = 2 * busy >= budget
            self._dispatching = False
            if not self._close_if_unused() and self._flooding:
                self._pause()

    def _close_if_unused(self) -> bool:
        """Close this mux (and forget it for its loop) once no fd is left; True if closed."""
        if self._callbacks:
            return False
        loop = self._loop_ref()
        if loop is not None and _muxes.get(loop) is self:
            del _muxes[loop]
        self.close()
        return True

    def _dispatch_exits(self) -> None:
        self._dispatching = True
        try:
            self._serve_exits()
        finally:
            self._dispatching = False
            self._close_if_unused()

    def _serve_exits(self, limit: int = MAX_EVENTS) -> int:
        # At most ``limit`` exits: a mass exit (and the respawns it starts) gives the loop
        # a turn between batches, as output does.
        if limit <= 0:
            return 0
        try:
            ready = self._exits.poll(0, limit)
        except InterruptedError:
            return 0
        self._run(ready)
        return len(ready)

    def _pause(self) -> None:
        loop = self._loop_ref()
        if loop is None or loop.is_closed() or self._epoll.closed or self._resume_at is not None:
            return
        loop.remove_reader(self._epoll.fileno())
        self._resume_at = loop.call_later(PAUSE, self._resume)

    def _resume(self) -> None:
        self._resume_at = None
        loop = self._loop_ref()
        if loop is not None and not loop.is_closed() and not self._epoll.closed:
            loop.add_reader(self._epoll.fileno(), self._dispatch)

    def _dispatch_rounds(self, budget: int) -> int:
        # A dying child's pipes report EOF a few microseconds before its pidfd is readable
        # (the kernel closes its files, then reports the exit): asking again after the
        # callbacks usually finds the pidfd, handled in this pass rather than one loop pass
        # later. At most ``budget`` callbacks in all, so a flood of output cannot keep the
        # loop here. Returns how many callbacks said they moved output (see the class).
        busy = 0
        exits = MAX_EVENTS  # exits served in this dispatch, whatever the rounds
        for _ in range(_ROUNDS):
            exits -= self._serve_exits(exits)
            try:
                ready = self._epoll.poll(0, budget)
            except InterruptedError:
                return busy
            if not ready:
                return busy
            budget -= len(ready)
            busy += self._run(ready)
            if budget <= 0:
                break
        self._serve_exits(exits)  # the exits of children whose pipes this dispatch saw close
        return busy

    def _run(self, ready: list[tuple[int, int]]) -> int:
        busy = 0
        for fd, _events in ready:
            entry = self._callbacks.get(fd)
            if entry is None:
                continue
            callback, args = entry
            try:
                if callback(*args) is True:
                    busy += 1
            except Exception as exc:  # one bad callback must not starve the others
                loop = self._loop_ref()
                if loop is not None:
                    loop.call_exception_handler(
                        {"message": f"fd {fd} callback {callback!r} failed", "exception": exc}
                    )
        return busy

    def close(self) -> None:
        """Unregister from the loop and close the epoll fd."""
        if self._resume_at is not None:
            self._resume_at.cancel()
            self._resume_at = None
        loop = self._loop_ref()
        for epoll in (self._epoll, self._exits):
            if loop is not None and not loop.is_closed() and not epoll.closed:
                try:
                    loop.remove_reader(epoll.fileno())
                except (RuntimeError, ValueError, OSError):
                    pass
            epoll.close()
        self._callbacks.clear()
        self._exit_fds.clear()


_muxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FdMux] = weakref.WeakKeyDictionary()


def mux_for(loop: asyncio.AbstractEventLoop) -> FdMux:
    """The loop's shared :class:`FdMux`, created on first use and closed when it empties.

    Closing an empty mux keeps a finished event loop from holding an epoll fd.
    """
    mux = _muxes.get(loop)
    if mux is None:
        mux = FdMux(loop)
        _muxes[loop] = mux
    return mux


def release(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Remove ``fd`` from ``loop``'s mux; close the mux when nothing is left in it."""
    mux = _muxes.get(loop)
    if mux is None:
        return
    mux.remove(fd)
    if not mux._callbacks and not mux._dispatching:  # else closed when the dispatch ends
        del _muxes[loop]
        mux.close()

"""Reaping adopted orphans as soon as they exit (circusd is a child subreaper).

A grandchild orphaned by a worker (double fork, a shell's background job) is re-parented to
circusd. When it exits, the kernel sends circusd SIGCHLD and nothing else: no pidfd was ever
opened for it. Without a handler it stayed a zombie until some watcher process happened to be
reaped (found by tests/reliability/test_orphans.py), forever on a quiet daemon.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

from ._orphans import reap_adopted

__all__ = ["watch_orphans"]


def _pidfds_work() -> bool:
    # With pidfds the process layer never installs its own SIGCHLD handler (its fallback for
    # old kernels), so ours cannot replace it.
    try:
        fd = os.pidfd_open(os.getpid())
    except (AttributeError, OSError):
        return False
    os.close(fd)
    return True


def watch_orphans(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Reap adopted orphans after SIGCHLDs delivered while ``loop`` runs; returns the undo.

    Does nothing (and returns a no-op) where the process layer needs SIGCHLD itself. Must be
    called from the main thread (signal handlers live there).
    """
    if not _pidfds_work():
        return lambda: None

    # Not loop.add_signal_handler: every delivered signal writes a byte to the loop's wakeup
    # socket, and a thousand workers exiting together overflow it ("Exception ignored ...
    # wakeup fd"), which can also swallow the byte of a SIGTERM sent at that moment. So the
    # first SIGCHLD switches SIGCHLD back to its default (not delivered, children are not
    # auto-reaped) and schedules one look; the look re-arms the handler *before* it scans,
    # so a death in between is still found. At most one SIGCHLD byte per loop pass.
    def on_sigchld(signum: int, frame: object) -> None:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        try:
            loop.call_soon_threadsafe(after_ready)
        except RuntimeError:  # the loop is closed: nothing left to reap for
            pass

    # The SIGCHLD of a worker's death comes with its pidfd turning readable: the look waits
    # one loop pass so that the worker's reap (and respawn) already queued in this pass run
    # first; the look itself costs the same, it is just off that path.
    def after_ready() -> None:
        loop.call_soon(reap_once)

    armed = True

    def reap_once() -> None:
        if armed:
            signal.signal(signal.SIGCHLD, on_sigchld)
            reap_adopted()

    signal.signal(signal.SIGCHLD, on_sigchld)

    def undo() -> None:
        nonlocal armed
        armed = False
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    return undo

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
    """Reap adopted orphans on every SIGCHLD delivered to ``loop``; returns the undo function.

    Does nothing (and returns a no-op) where the process layer needs SIGCHLD itself.
    """
    if not _pidfds_work():
        return lambda: None
    pending = False

    def reap_once() -> None:
        nonlocal pending
        pending = False
        reap_adopted()

    def on_sigchld() -> None:
        # A stop of N workers brings up to N SIGCHLDs, and each look lists every child: the
        # signals of one loop pass share a single look.
        nonlocal pending
        if not pending:
            pending = True
            loop.call_soon(reap_once)

    loop.add_signal_handler(signal.SIGCHLD, on_sigchld)

    def undo() -> None:
        try:
            loop.remove_signal_handler(signal.SIGCHLD)
        except (RuntimeError, ValueError):  # pragma: no cover - loop already closed
            pass

    return undo

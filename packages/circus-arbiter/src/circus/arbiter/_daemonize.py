"""``--daemon``: detach from the terminal with a double fork (spec/architecture.md §9)."""

from __future__ import annotations

import os

__all__ = ["daemonize"]


def daemonize() -> None:
    """Double-fork into a new session; stdio on ``/dev/null``; returns in the grandchild.

    The working directory is kept, so relative config paths still resolve as the user typed
    them (as upstream). Inherited fds above 2 are closed.
    """
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
    os.closerange(3, _max_fd())


def _max_fd() -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else soft
    return limit if 0 < limit < 65536 else 65536

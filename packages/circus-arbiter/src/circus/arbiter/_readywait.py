"""``waiting`` means ready: after ``start``, ``restart``, ``reload`` or ``incr`` with
``waiting: true``, the answer waits until the processes it started pass their readiness check.

Upstream's ``waiting`` (spec/protocol.md §1.4) answers once the command's coroutine is done,
which for upstream is once the processes are spawned. For a watcher with ``readiness`` we wait
one step further, so a deploy script's ``circusctl reload web --waiting`` returns when the new
version serves. A watcher without readiness answers as before (its processes count as ready
once spawned). Not ready in ``readiness_timeout``, or exited first: ``NotReady`` (a
``WatcherError``, errno 5), whose message names each process and why.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["until_ready"]


async def until_ready(watchers: Iterable[Any], pids: Iterable[int] | None = None) -> None:
    """Return once the given processes (``pids``: of the one watcher given; None: every
    current process of each watcher) are ready.

    Raises:
        circus.watcher.NotReady: some are not ready in time, or exited first.
    """
    wanted = None if pids is None else list(pids)
    for watcher in watchers:
        wait = getattr(watcher, "wait_ready", None)
        if wait is None or watcher.is_stopped():
            continue
        await wait(wanted)

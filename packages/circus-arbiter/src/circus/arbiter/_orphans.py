"""Grandchildren adopted by circusd (it is a child subreaper): reaped as they exit, and
stopped at shutdown so that no process outlives the daemon."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

__all__ = ["reap_adopted", "stop_adopted"]

log = logging.getLogger("circus.arbiter")


def _subreaper() -> bool:
    try:
        from circus.process import is_subreaper

        return is_subreaper()
    except (ImportError, OSError):  # pragma: no cover - not Linux
        return False


def reap_adopted() -> None:
    """Reap adopted orphans that have exited (no-op unless we are a subreaper)."""
    if not _subreaper():
        return
    from circus.process import reap_orphans

    try:
        reaped = reap_orphans()
    except OSError:  # pragma: no cover
        return
    if reaped:
        log.debug("reaped adopted orphans %s", reaped)


async def stop_adopted(grace: float = 3.0) -> None:
    """SIGTERM every adopted orphan, SIGKILL those still alive after ``grace``, reap all."""
    if not _subreaper():
        return
    from circus.process import adopted_orphans, reap_orphans

    pids = adopted_orphans()
    if not pids:
        return
    log.info("stopping %d orphaned grandchildren", len(pids))
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    # Shutdown only: orphans have no pidfd registered with us, so poll briefly with a deadline.
    while time.monotonic() < deadline:
        reap_orphans()
        if not adopted_orphans():
            return
        await asyncio.sleep(0.05)
    _signal(adopted_orphans(), signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while adopted_orphans() and time.monotonic() < deadline:
        reap_orphans()
        await asyncio.sleep(0.02)


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

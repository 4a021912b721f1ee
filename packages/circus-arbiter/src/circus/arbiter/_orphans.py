"""Grandchildren adopted by circusd (it is a child subreaper): reaped as they exit, and
stopped at shutdown so that no process outlives the daemon."""

from __future__ import annotations

import contextlib
import logging
import os
import signal

__all__ = ["reap_adopted", "stop_adopted"]

log = logging.getLogger("circus.arbiter")


def _subreaper() -> bool:
    try:
        from circus.process import is_subreaper

        return is_subreaper()
    except (ImportError, OSError):  # pragma: no cover - not Linux
        return False


def reap_adopted() -> None:
    """Reap adopted orphans that have exited (no-op unless we are a subreaper).

    Runs after every SIGCHLD and every worker reap, so it must not cost the size of the host:
    the kernel names exited children one by one (no listing). A worker's zombie still waiting
    for its pidfd reader ends the look there: that reap brings the next look. Only a child
    that is nobody's event (our own session's) makes us list our children.
    """
    if not _subreaper():
        return
    from circus.process import reap_orphans, reap_waiting_orphans

    try:
        reaped, blocked_by = reap_waiting_orphans()
        if blocked_by == "other":
            reaped.update(reap_orphans())
    except OSError:  # pragma: no cover
        return
    if reaped:
        log.debug("reaped adopted orphans %s", reaped)


async def stop_adopted(grace: float = 3.0) -> None:
    """SIGTERM every adopted orphan, SIGKILL those still alive after ``grace``, reap all.

    Orphans are listed (a scan of the host where the kernel keeps no children lists) and
    pinned by pidfd; their exits are awaited as events, not by listing again. Orphans of
    those orphans, adopted meanwhile, get a SIGKILL in a second, shorter round.
    """
    if not _subreaper():
        return
    from circus.process import adopted_orphans, reap_orphans

    signum, wait = signal.SIGTERM, grace
    for _ in range(3):
        pinned = _pin(adopted_orphans())
        if not pinned:
            break
        if signum == signal.SIGTERM:
            log.info("stopping %d orphaned grandchildren", len(pinned))
        try:
            _signal(pinned, signum)
            if not await _exited(pinned, wait):
                _signal(pinned, signal.SIGKILL)
                await _exited(pinned, 2.0)
            _reap(pinned)
        finally:
            for fd in pinned.values():
                os.close(fd)
        signum, wait = signal.SIGKILL, 2.0
    reap_orphans()


def _pin(pids: list[int]) -> dict[int, int]:
    pinned = {}
    for pid in pids:
        try:
            pinned[pid] = os.pidfd_open(pid)
        except OSError:  # gone meanwhile
            continue
    return pinned


async def _exited(pinned: dict[int, int], limit: float) -> bool:
    """Wait up to ``limit`` s until every pinned process has exited (a pidfd is readable then)."""
    from circus.process._tree import wait_pidfds

    return await wait_pidfds(set(pinned.values()), limit)


def _reap(pinned: dict[int, int]) -> None:
    for fd in pinned.values():
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)


def _signal(pinned: dict[int, int], signum: int) -> None:
    for fd in pinned.values():
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(fd, signum)

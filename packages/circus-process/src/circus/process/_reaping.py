"""Collecting a child's exit status without races, and the registry of our live children.

A pid is only waited for through its pidfd when we have one (``waitid(P_PIDFD)`` cannot hit a
recycled pid); the registry lets :func:`reap_orphans` tell our children from adopted orphans.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._process import Process

__all__ = ["status_to_returncode", "try_reap", "registry", "LOST_STATUS"]

# Reported when the status was consumed by someone else (another waitpid(-1) user).
LOST_STATUS = 255

# pid -> Process for every spawned, not yet reaped child.
registry: weakref.WeakValueDictionary[int, Process] = weakref.WeakValueDictionary()

_HAS_PIDFD_WAIT = hasattr(os, "P_PIDFD")


def status_to_returncode(status: int) -> int:
    """Convert a waitpid status to Popen's convention (-signum when killed)."""
    return os.waitstatus_to_exitcode(status)


def try_reap(pid: int, pidfd: int | None, *, block: bool = False) -> int | None:
    """Reap ``pid`` if it has exited; return its returncode, or None if still running.

    Returns LOST_STATUS when the child was already reaped elsewhere.
    """
    flags = 0 if block else os.WNOHANG
    try:
        if pidfd is not None and _HAS_PIDFD_WAIT:
            result = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | flags)
            if result is None:
                return None
            if result.si_code == os.CLD_EXITED:
                return result.si_status
            return -result.si_status
        wpid, status = os.waitpid(pid, flags)
    except ChildProcessError:
        return LOST_STATUS
    except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for safety
        return None
    if wpid == 0:
        return None
    return status_to_returncode(status)

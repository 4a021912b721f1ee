"""The child subreaper and the orphans it adopts: listing them, reaping them, attributing them.

A double-forked daemon has no parent left in its tree: the kernel hands it to init, or to the
nearest child subreaper. Once this process is one (:func:`enable_subreaper`), such orphans
become our children; :func:`adopted_orphans` tells them from the children we spawned or that
other code in this process started, :func:`reap_orphans` collects their exit statuses, and
:func:`attributed_orphans` guesses which of them a given :class:`Process` left behind (what
``stop(stop_children=True)`` ends when cgroups cannot say it exactly).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ._children import children_of, stat_fields
from ._reaping import registry

if TYPE_CHECKING:
    from ._process import Process

__all__ = [
    "adopted_orphans",
    "attributed_orphans",
    "disable_subreaper",
    "enable_subreaper",
    "is_subreaper",
    "reap_orphans",
]

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


def enable_subreaper() -> None:
    """Make this process a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER, 1)``).

    Orphans of our children (a shell wrapper's background job, a double-forked daemon) are
    then reparented to us instead of to init, so stopping a tree can kill *and reap* them.
    The caller then owns those zombies: call :func:`reap_orphans` on SIGCHLD or after stops.
    """
    from ._prctl import prctl  # its _ctypes only for those who ask

    prctl(_PR_SET_CHILD_SUBREAPER, 1)


def disable_subreaper() -> None:
    """Undo :func:`enable_subreaper`."""
    from ._prctl import prctl

    prctl(_PR_SET_CHILD_SUBREAPER, 0)


def is_subreaper() -> bool:
    """Whether this process is currently a child subreaper."""
    from ._prctl import prctl_read_int

    return bool(prctl_read_int(_PR_GET_CHILD_SUBREAPER))


def _direct_children() -> list[int]:
    """Pids whose parent is this process."""
    kids = children_of(os.getpid())
    if kids is None:
        import psutil  # only where /proc cannot tell: it weighs ~5 MiB of RSS

        return [p.pid for p in psutil.Process().children()]
    return kids


def adopted_orphans() -> list[int]:
    """Our children that circus.process did not spawn and that are not from our session.

    With a subreaper these are orphans the kernel reparented to us. Children that other code
    in this process started without a new session (plain ``subprocess.run``) share our session
    and are never listed, so their statuses are never stolen.
    """
    ours = os.getsid(0)
    out = []
    for pid in _direct_children():
        if pid in registry:
            continue
        try:
            if os.getsid(pid) == ours:
                continue
        except ProcessLookupError:
            continue
        out.append(pid)
    return out


def reap_orphans(exclude: Iterable[int] = ()) -> dict[int, int]:
    """Reap exited adopted orphans; return ``{pid: returncode}`` of those reaped.

    Only zombies are touched, only those listed by :func:`adopted_orphans`, and never a pid in
    ``exclude`` or one a live :class:`Process` owns.
    """
    skip = set(exclude)
    reaped: dict[int, int] = {}
    for pid in adopted_orphans():
        if pid in skip:
            continue
        fields = stat_fields(pid)
        if fields is None or fields[0] != b"Z":
            continue
        try:
            wpid, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if wpid:
            reaped[pid] = os.waitstatus_to_exitcode(status)
    return reaped


def _create_time(pid: int) -> float | None:
    import psutil  # lazily: spawning never pays for it

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _born(proc: Process) -> float:
    """psutil's create time of a live Process, cached on it (it never changes)."""
    born = proc._ps_create_time
    if born is None:
        born = _create_time(proc.pid or 0) or float("inf")
        proc._ps_create_time = born
    return born


def attributed_orphans(root_pid: int, started: float, env: Mapping[str, str]) -> list[int]:
    """Adopted orphans that can only have come from the process ``root_pid``.

    No kernel record links a double-forked daemon to its original ancestor, so this is a
    heuristic: born after ``root_pid``, with exactly its environment, and no other live
    circus process born before it with that same environment could claim it. Birth times
    all come from psutil, so they share the same (boot-time based) error.
    """
    import psutil  # lazily: spawning never pays for it

    orphans = adopted_orphans()
    if not orphans:
        return []
    root_born = _create_time(root_pid) or started
    others = [p for p in registry.values() if p.pid != root_pid and p.returncode is None]
    out = []
    for pid in orphans:
        try:
            ps = psutil.Process(pid)
            born = ps.create_time()
            if born < root_born:
                continue
            if ps.environ() != env:
                continue
            rivals = [p for p in others if p.child_env == env and _born(p) <= born]
            if rivals:
                continue
            out.append(pid)
        except psutil.Error:
            continue
    return out

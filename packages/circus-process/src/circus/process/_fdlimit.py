"""The file-descriptor limit of a supervisor and of the children it spawns.

A supervisor holds a descriptor or three per child plus whatever its clients connect with,
so it raises its own soft ``RLIMIT_NOFILE`` to the hard limit (:func:`raise_nofile_limit`).
Its children must not see that change: a program started by hand gets the usual soft limit
(often 1,024, the ``select()``-safe value), and one started under the supervisor gets the
same. So once the limit was raised, every child starts with the soft limit the supervisor
had before, unless its own ``rlimits`` set ``nofile``. That takes a ``preexec_fn`` in the
child, which costs CPython its vfork fast path (about 1 ms more per spawn); when the soft
limit already was the hard one, nothing is raised and nothing is paid.

:func:`set_fd_reserve` makes every spawn refuse to start (``SpawnError`` with
``errno == EMFILE``, a transient failure) while fewer descriptors than the reserve are free,
so that spawning never takes the last ones: other parts of the supervisor (a ZeroMQ listener
accepting a connection) cannot survive running out.
"""

from __future__ import annotations

import errno
import os
import resource
import time

__all__ = [
    "child_nofile",
    "check_fd_reserve",
    "fd_reserve",
    "free_fds",
    "raise_nofile_limit",
    "set_fd_reserve",
]

_child_soft: int | None = None  # the soft limit children get back; None: they inherit ours
_reserve = 0


def raise_nofile_limit() -> tuple[int, int]:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit.

    Children spawned afterwards get the soft limit this process had before (see the module
    docstring). Calling it again changes nothing.

    Returns:
        ``(soft before, soft now)``.
    """
    global _child_soft
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _child_soft is not None:
        return _child_soft, soft
    if soft == hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # e.g. an infinite hard limit above fs.nr_open
        return soft, soft
    _child_soft = soft
    return soft, hard


def child_nofile() -> int | None:
    """The soft ``RLIMIT_NOFILE`` children are given back, ``None`` if they inherit ours."""
    return _child_soft


def set_fd_reserve(count: int) -> None:
    """Refuse spawns while fewer than ``count`` descriptors are free (0: never refuse)."""
    global _reserve
    _reserve = max(0, int(count))


def fd_reserve() -> int:
    """The reserve :func:`set_fd_reserve` set."""
    return _reserve


def free_fds(at_least: int = 0, status: bytes | None = None) -> int:
    """How many descriptors this process can still open (at most the soft limit).

    Exact when the answer is below ``at_least``; otherwise possibly an underestimate that
    is still ``>= at_least``. Cheap (a read of ``/proc/self/status``, or ``status``: that
    file's text, already read) while the descriptor table is far from the limit; a
    listing of ``/proc/self/fd`` otherwise.
    """
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:  # pragma: no cover - not on Linux
        return at_least
    table = _table_size(status)
    if table is not None and soft - table >= at_least:
        return soft - table  # at most ``table`` descriptors are open
    try:
        in_use = len(os.listdir("/proc/self/fd")) - 1  # minus the listing's own
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            return 0
        return at_least  # pragma: no cover - no /proc: cannot tell, do not refuse
    return max(0, soft - in_use)


def check_fd_reserve(status: bytes | None = None) -> int | None:
    """``None`` when a spawn may proceed, else the number of free descriptors (below the
    reserve). ``status``: the text of ``/proc/self/status`` (or ``thread-self``) if the
    caller has just read it (the table size is taken from it).

    Once the table is too large for the cheap estimate, counting means listing every open
    descriptor (milliseconds at 10,000): an exact count far above the reserve is then
    reused for the next spawns, for at most a second, each assumed to take
    :data:`_PER_SPAWN` of it, and counted again before it could reach the reserve.
    """
    global _known, _spent
    if _reserve <= 0:
        return None
    if _known is not None:
        free, at = _known
        _spent += _PER_SPAWN
        if free - _spent >= 2 * _reserve and time.monotonic() - at < _REUSE_S:
            return None
        _known = None
    if status is None:
        status = _read_status()
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    table = _table_size(status)
    if table is not None and soft - table >= 4 * _reserve:
        return None  # the usual case, far from the limit: what free_fds would say, for less
    free = free_fds(_reserve, status)
    if free >= 4 * _reserve and not _cheap(status) and (table or 0) >= _COSTLY_TABLE:
        _known, _spent = (free, time.monotonic()), 0
    return None if free >= _reserve else free


_PER_SPAWN = 4  # descriptors a spawn keeps at most (pidfd, stdout and stderr pipes), and one
_REUSE_S = 1.0
# Below this table size a listing costs well under a millisecond: always count exactly (a
# small table near its limit, as under a connection flood, must never spawn on a stale count).
_COSTLY_TABLE = 4096
_known: tuple[int, float] | None = None  # an exact free count and when it was taken
_spent = 0


def _cheap(status: bytes | None = None) -> bool:
    """True while :func:`free_fds` answers from ``/proc/self/status`` alone."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    table = _table_size(status)
    return table is not None and soft - table >= _reserve


def _read_status() -> bytes | None:
    try:
        fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 8192)
    except OSError:  # pragma: no cover
        return None
    finally:
        os.close(fd)


def _table_size(status: bytes | None = None) -> int | None:
    # FDSize: the size of the kernel's descriptor table, which only grows, and is above the
    # highest descriptor open, hence above the number open.
    data = _read_status() if status is None else status
    if data is None:
        return None
    start = data.find(b"FDSize:")
    if start < 0:  # pragma: no cover - not Linux
        return None
    end = data.find(b"\n", start)
    try:
        return int(data[start + 7 : end])
    except ValueError:  # pragma: no cover
        return None

"""Who the children of a pid are, at a cost that does not grow with the host.

Linux lists a task's children in ``/proc/<pid>/task/<tid>/children`` when it is built with
``CONFIG_PROC_CHILDREN``: reading those files costs what the process owns. Without them the
only source is the parent field of every ``/proc/<pid>/stat`` on the machine, which is what
``psutil.Process.children()`` reads on *every* call: with 3,000 unrelated processes that is
~35 ms per call, and a ``stats`` asking it once per worker took the daemon's loop for seconds.

So, without the files, one scan of /proc builds a parent -> children index shared by every
caller, and each caller says how old an index it accepts. A scan is not atomic either (its
first and last reads are its duration apart), so by default a caller reuses an index no older
than the scan took: that is never staler than doing a scan of its own. Callers that show
figures (``stats``) accept up to a second. An index never vouches for a parent it did not see,
or for a pid recycled since: such a parent gets a new scan.

No psutil here: this module is on the stop path, which never pays psutil's import.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

__all__ = [
    "CHILDREN_FILES",
    "children_of",
    "is_child_of",
    "parent_of",
    "scan_count",
    "stat_fields",
]

#: The kernel lists children itself (CONFIG_PROC_CHILDREN).
CHILDREN_FILES = os.path.exists(f"/proc/self/task/{os.getpid()}/children")

# An index is reused at least this long after its scan ended, even if the scan was quicker.
_MIN_REUSE = 0.02


class _Index(NamedTuple):
    ended: float  # time.monotonic() when the scan finished
    cost: float  # how long it took
    kids: dict[int, list[int]]  # ppid -> pids
    born: dict[int, int]  # pid -> start time (clock ticks after boot)


_index: _Index | None = None
_scans = 0


def scan_count() -> int:
    """How many full /proc scans this process made (0 where the kernel lists children)."""
    return _scans


def _stat(pid: int | str) -> tuple[int, int] | None:
    """``(ppid, start time)`` from /proc/<pid>/stat; None if the process is gone."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name may hold spaces and ')': the fields start after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split(b" ", 20)
    try:
        return int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def stat_fields(pid: int) -> list[bytes] | None:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, session, ...]."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _scan() -> _Index:
    global _index, _scans
    start = time.monotonic()
    kids: dict[int, list[int]] = {}
    born: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        facts = _stat(name)
        if facts is None:
            continue  # exited while we listed
        pid = int(name)
        born[pid] = facts[1]
        kids.setdefault(facts[0], []).append(pid)
    end = time.monotonic()
    index = _Index(end, end - start, kids, born)
    _scans += 1
    current = _index
    if current is None or current.ended < end:  # another thread may have scanned meanwhile
        _index = index
    return index


def _from_index(pid: int, max_age: float | None) -> list[int]:
    index = _index
    now = time.monotonic()
    facts = _stat(pid)
    if facts is None:
        return []
    if (
        index is None
        or now - index.ended > (max(index.cost, _MIN_REUSE) if max_age is None else max_age)
        or index.born.get(pid) != facts[1]  # a parent born after the scan, or a recycled pid
    ):
        index = _scan()
        if index.born.get(pid) != facts[1]:
            return []  # it died (and maybe was recycled) during the scan
    # A child older than its parent means the pid was recycled between two reads of the scan.
    return [kid for kid in index.kids.get(pid, ()) if index.born.get(kid, 0) >= facts[1]]


def _from_files(pid: int) -> list[int] | None:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []
    except OSError:
        return None
    kids: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                kids.extend(int(p) for p in fh.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # that thread or the process just exited
    return kids


def children_of(pid: int, *, max_age: float | None = None) -> list[int] | None:
    """Pids of the direct children of ``pid`` (``[]`` once it is gone).

    Args:
        pid: the parent.
        max_age: where the kernel does not list children, how old (seconds) a shared /proc
            index may be; None: no older than a scan takes (as fresh as scanning now).

    Returns:
        The children, or None when /proc cannot be read at all (not Linux, no /proc).
    """
    if CHILDREN_FILES:
        kids = _from_files(pid)
        if kids is not None:
            return kids
    try:
        return _from_index(pid, max_age)
    except OSError:
        return None


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` (one /proc read), or None if it is gone."""
    facts = _stat(pid)
    return None if facts is None else facts[0]


def is_child_of(child: int, parent: int) -> bool:
    """Whether ``child`` is a direct child of ``parent`` now (two /proc reads, no scan).

    A child started before its parent is a recycled pid, not a child.
    """
    kid = _stat(child)
    if kid is None or kid[0] != parent:
        return False
    dad = _stat(parent)
    return dad is not None and kid[1] >= dad[1]

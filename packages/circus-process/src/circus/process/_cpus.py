"""``usable_cpus()``: how many CPUs this process may really use.

``os.cpu_count()`` counts the machine's CPUs; a container or a systemd unit usually gets
fewer. The usable count is the smallest of: the CPUs in this process's affinity mask, and
every CPU quota on the way from its cgroup to the root, rounded up (cgroup2 ``cpu.max``,
cgroup v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``). Never less than 1. Standard library
only; each file read is small, and a missing or unreadable one counts as "no quota".
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

__all__ = ["usable_cpus"]


def usable_cpus() -> int:
    """The CPUs available to this process: affinity mask and cgroup CPU quotas (>= 1)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    for quota in _quotas():
        count = min(count, quota)
    return max(1, count)


def _quotas() -> list[int]:
    """Every CPU quota (in whole CPUs, rounded up) above this process, v2 and v1 alike."""
    found: list[int] = []
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as handle:
            memberships = handle.read().splitlines()
        with open("/proc/self/mountinfo", encoding="utf-8") as handle:
            mounts = handle.read().splitlines()
    except OSError:
        return found
    for line in memberships:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            base = _mount_of(mounts, "cgroup2", None)
            found += _walk(base, path, _v2_quota)
        elif "cpu" in controllers.split(","):
            base = _mount_of(mounts, "cgroup", "cpu")
            found += _walk(base, path, _v1_quota)
    return found


def _mount_of(mounts: list[str], fstype: str, option: str | None) -> tuple[str, str] | None:
    """``(mount point, root inside the hierarchy)`` of a cgroup mount, or None."""
    for line in mounts:
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] != fstype:
            continue
        if option is not None and option not in tail[2].split(","):
            continue
        return fields[4], fields[3]
    return None


def _walk(base: tuple[str, str] | None, path: str, read: Callable[[str], int | None]) -> list[int]:
    if base is None:
        return []
    point, root = base
    relative = path[len(root) :] if root != "/" and path.startswith(root) else path
    directory = os.path.normpath(point + "/" + relative.lstrip("/"))
    quotas = []
    while True:
        quota = read(directory)
        if quota is not None:
            quotas.append(quota)
        if directory == point or len(directory) <= len(point):
            break
        directory = os.path.dirname(directory)
    return quotas


def _v2_quota(directory: str) -> int | None:
    text = _read(os.path.join(directory, "cpu.max"))
    if text is None:
        return None
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _ceil(fields[0], fields[1])


def _v1_quota(directory: str) -> int | None:
    quota = _read(os.path.join(directory, "cpu.cfs_quota_us"))
    period = _read(os.path.join(directory, "cpu.cfs_period_us"))
    if quota is None or period is None:
        return None
    return _ceil(quota, period)


def _ceil(quota: str, period: str) -> int | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:
        return None
    return max(1, math.ceil(q / p))


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read(256).strip()
    except (OSError, UnicodeDecodeError):
        return None

"""Reading and writing cgroup2 files, and where a process's cgroup is: the kernel side.

Small unbuffered reads and writes of kernfs files (one system call each where the file is
small), the cgroup2 mount from /proc/self/mountinfo, and the threads and processes of a
cgroup. Nothing here keeps state or an open descriptor.
"""

from __future__ import annotations

import os
import threading

__all__ = [
    "cgroup_of",
    "mount",
    "processes",
    "read",
    "tgid",
    "threads",
    "this_thread",
    "write",
]


def read(path: str) -> bytes:
    """The whole content of a /proc or cgroup file."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 65536)
        if len(data) < 4000:
            return data
        chunks = [data]  # kernfs answers a page at a time
        while data:
            data = os.read(fd, 65536)
            chunks.append(data)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write(path: str, data: bytes) -> None:
    """One write of ``data`` (a cgroup file takes one value per write)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def this_thread() -> bytes:
    """The calling thread's id, as written to ``cgroup.threads``."""
    return b"%d" % threading.get_native_id()


def cgroup_of(pid: int | str) -> str | None:
    """The cgroup2 path of ``pid`` (as /proc shows it to us), or None."""
    try:
        for line in read(f"/proc/{pid}/cgroup").splitlines():
            if line.startswith(b"0::"):
                return line[3:].decode()
    except OSError:
        pass
    return None


def mount() -> tuple[str, str] | None:
    """``(mount point, root within the hierarchy)`` of the first cgroup2 mount, or None."""
    try:
        data = read("/proc/self/mountinfo")
    except OSError:
        return None
    for line in data.decode(errors="replace").splitlines():
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        if sep + 1 < len(fields) and fields[sep + 1] == "cgroup2":
            # mountinfo escapes blanks as octal (\040); cgroup mounts have none in practice
            return fields[4].encode().decode("unicode_escape"), fields[3]
    return None


def tgid(tid: int) -> int | None:
    """The process (thread group) id of thread ``tid``, or None if it is gone."""
    try:
        for line in read(f"/proc/{tid}/status").splitlines():
            if line.startswith(b"Tgid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def threads(path: str) -> list[int]:
    """Every thread id in ``path`` and in the cgroups below it."""
    try:
        out = [int(t) for t in read(f"{path}/cgroup.threads").split()]
    except OSError:
        return []
    try:
        with os.scandir(path) as entries:
            subdirs = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        subdirs = []
    for sub in subdirs:  # a nested user of this module (a circusd started by one of ours)
        out.extend(threads(sub))
    return out


def processes(path: str, exclude: int) -> set[int]:
    """The process ids owning the threads of ``path`` (and below), minus ``exclude``."""
    pids: set[int] = set()
    for thread in threads(path):
        owner = thread if thread in pids else tgid(thread)
        if owner is not None:
            pids.add(owner)
    pids.discard(exclude)
    return pids

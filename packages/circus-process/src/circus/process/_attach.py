"""Supervising a process this one did not spawn (or spawned before an exec): ``attach``.

A pid alone names nothing for long: it is reused once its process is reaped. A process is
identified here by its pid *and* its kernel start time (field 22 of ``/proc/<pid>/stat``,
clock ticks since boot), optionally qualified by the boot id so a state file written before a
reboot matches nothing. :func:`attach` opens a pidfd first and reads the start time after:
the pidfd pins one process, and a start time that still matches proves it is the recorded
one (a pid reused before the ``pidfd_open`` has another start time and is refused).

Two kinds of attached process:

- a real child of this process (after an ``exec`` of the daemon, children stay children):
  its exit status is read with ``waitid(P_PIDFD)``, exactly as for a spawned one;
- a non-child (the children of a SIGKILLed daemon, now reparented to init or a subreaper):
  its exit is noticed when its pidfd becomes readable, but only its parent may collect the
  status. When the kernel still shows it as a zombie, the exit code is read from
  ``/proc/<pid>/stat``; otherwise its ``returncode`` is :data:`UNKNOWN_RETURNCODE` (255).
"""

from __future__ import annotations

import os
import select
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _cgroup
from ._cgroup_leaf import Leaf
from ._errors import ProcessError, ProcessGoneError
from ._reaping import LOST_STATUS, registry

if TYPE_CHECKING:
    from ._process import Process

__all__ = [
    "UNKNOWN_RETURNCODE",
    "attach",
    "boot_id",
    "claim_cgroup",
    "sibling_leaves",
    "take_socket",
    "foreign_exit",
    "process_is",
    "process_start_time",
    "reopen_pipe",
]

#: ``returncode`` of an attached non-child whose exit status the kernel did not show us.
UNKNOWN_RETURNCODE = LOST_STATUS

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_after_name(pid: int) -> list[bytes] | None:
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name may hold spaces and ')': the fields start after the last ')'.
    return data[data.rfind(b")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """The kernel start time of ``pid`` in clock ticks since boot, or None if it is gone.

    With the pid, it names one process for the life of the system: a reused pid has a
    later start time.
    """
    fields = _stat_after_name(pid)
    try:
        return None if fields is None else int(fields[19])
    except (IndexError, ValueError):
        return None


def process_is(pid: int, start_time: int) -> bool:
    """Whether ``pid`` runs (not a zombie) and is the process started at ``start_time``."""
    fields = _stat_after_name(pid)
    if fields is None or _is_zombie(fields):
        return False
    try:
        return int(fields[19]) == start_time
    except (IndexError, ValueError):
        return False


def _is_zombie(fields: list[bytes] | None) -> bool:
    return fields is None or fields[0] in (b"Z", b"X")


def boot_id() -> str:
    """This boot's id (``/proc/sys/kernel/random/boot_id``), or ``""`` where unreadable."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _boot_time() -> float:
    try:
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0.0


def _epoch(ticks: int) -> float:
    boot = _boot_time()
    return boot + ticks / _TICKS if boot else time.time()


def foreign_exit(pid: int, pidfd: int | None, start_time: int | None, *, block: bool) -> int | None:
    """The returncode of an exited non-child, or None while it runs.

    ``block`` waits for the exit. The status itself is read from a zombie's
    ``/proc/<pid>/stat`` (the exit code field) when its start time still matches; a process
    already reaped by its parent gives :data:`UNKNOWN_RETURNCODE`.
    """
    if pidfd is not None:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(-1 if block else 0):
            return None
    else:
        # No pidfd left (closed): only /proc can tell, and a gone pid is an exit.
        fields = _stat_after_name(pid)
        if fields is not None and not _is_zombie(fields):
            try:
                if start_time is None or int(fields[19]) == start_time:
                    return None
            except (IndexError, ValueError):
                pass
    fields = _stat_after_name(pid)
    if fields is not None and fields[0] == b"Z" and len(fields) > 49:
        try:
            if start_time is None or int(fields[19]) == start_time:
                return os.waitstatus_to_exitcode(int(fields[49]))
        except ValueError:
            pass
    return UNKNOWN_RETURNCODE


def reopen_pipe(pid: int, fd: int, inode: int) -> int | None:
    """A new read end (non-blocking) of the pipe that ``pid`` holds as its descriptor ``fd``,
    if it is still the pipe ``inode`` (``os.fstat(read_end).st_ino`` when it was spawned).

    A pipe lives as long as one writer holds it: when the reader (a SIGKILLed daemon) is
    gone, opening the writer's end through ``/proc/<pid>/fd/<fd>`` gives the pipe a reader
    again, so output written from then on flows, and so does what was still buffered in it.
    What was written while nobody read failed with EPIPE (or SIGPIPE) in the writer. None
    when the descriptor is not that pipe any more or /proc does not let us open it (another
    user's process, a non-dumpable one).
    """
    path = f"/proc/{pid}/fd/{fd}"
    try:
        st = os.stat(path)
        if not stat.S_ISFIFO(st.st_mode) or st.st_ino != inode:
            return None
        # O_NOCTTY: the process may swap a tty of its own in between the stat and the open,
        # and a session leader without a terminal (circusd under systemd) would take it as
        # its controlling terminal: the process could then ^C/^Z/hang up circusd
        new = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        return None
    try:
        same = os.fstat(new).st_ino == inode  # the descriptor may have changed meanwhile
    except OSError:
        same = False
    if not same:
        os.close(new)
        return None
    return new


_PIDFD_GETFD = 438  # the system call's number, the same on every architecture Linux has


def take_socket(pid: int, start_time: int, fd: int, inode: int) -> int | None:
    """A copy (close-on-exec) of the socket that process ``pid`` holds as its descriptor
    ``fd``, if that process is still the one started at ``start_time`` and the descriptor
    is still the socket ``inode``; None otherwise.

    For a daemon taking over from a dead predecessor: the listening socket its workers
    inherited is still bound (they hold it), so binding the address again fails; this
    takes the socket itself (``pidfd_getfd``, Linux >= 5.6, which needs the right to trace
    the process: root, or the same user where ptrace is allowed).
    """
    path = f"/proc/{pid}/fd/{fd}"
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISSOCK(st.st_mode) or st.st_ino != inode:
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        if process_start_time(pid) != start_time:
            return None  # the pid was reused: its descriptors are not ours to take
        new = _pidfd_getfd(pidfd, fd)
    finally:
        os.close(pidfd)
    if new is None:
        return None
    try:
        same = stat.S_ISSOCK(os.fstat(new).st_mode) and os.fstat(new).st_ino == inode
    except OSError:
        same = False
    if not same:
        os.close(new)
        return None
    return new


def _pidfd_getfd(pidfd: int, fd: int) -> int | None:
    getfd = getattr(os, "pidfd_getfd", None)  # not in the os module of every Python
    try:
        if getfd is not None:
            return int(getfd(pidfd, fd))
        import ctypes  # only here: a daemon taking sockets over after a crash

        libc = ctypes.CDLL(None, use_errno=True)
        new = int(libc.syscall(_PIDFD_GETFD, pidfd, fd, 0))
    except (OSError, AttributeError):
        return None
    return new if new >= 0 else None


def _checked_leaf(path: str | None, pid: int) -> Leaf | None:
    """The cgroup leaf at ``path`` if ``pid`` is in it now, claimed against sweeps."""
    if not path:
        return None
    from . import _cgroup_fs

    path = os.path.normpath(path)
    if pid not in _cgroup_fs.threads(path):
        return None
    _cgroup.claim(path)
    return Leaf(path)


def claim_cgroup(path: str, pid: int) -> bool:
    """Keep the cgroup leaf at ``path`` from the sweep of dead daemons' subtrees, if ``pid``
    is in it now; True when claimed.

    For a daemon about to :meth:`~circus.process.Process.attach` processes of a dead
    predecessor: call it before ``tree_tracking()`` first runs (which sweeps).
    """
    return _checked_leaf(path, pid) is not None


def sibling_leaves(leaves: Iterable[str]) -> dict[str, set[int]]:
    """The other populated leaves of the subtrees that hold ``leaves``, with their processes.

    For a daemon taking over from a dead predecessor whose record names ``leaves``: a child
    it spawned after its last record lives in a leaf beside them. Each one found is claimed
    (kept from the sweep of dead daemons' subtrees), like :func:`claim_cgroup`.
    """
    from . import _cgroup_fs

    known = {os.path.normpath(path) for path in leaves}
    found: dict[str, set[int]] = {}
    for subtree in {os.path.dirname(path) for path in known}:
        if not os.path.basename(subtree).startswith("circus."):
            continue  # not a daemon's subtree: nothing of ours to look at beside it
        try:
            with os.scandir(subtree) as entries:
                names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        for name in names:
            path = os.path.join(subtree, name)
            if not name.isdigit() or path in known:
                continue
            members = _cgroup_fs.processes(path, os.getpid())
            if members:
                _cgroup.claim(path)
                found[path] = members
    return found


def attach(
    cls: type[Process],
    pid: int,
    start_time: int,
    *,
    name: str = "",
    wid: int = 0,
    cmd: str = "",
    started: float | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    cgroup: str | None = None,
    env: Mapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
    watcher: Any = None,
) -> Process:
    """See :meth:`circus.process.Process.attach`."""
    if not hasattr(os, "pidfd_open"):
        raise ProcessError("attaching to a running process needs pidfd_open (Linux >= 5.3)")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or pid == os.getpid():
        raise ProcessGoneError(f"cannot attach to pid {pid!r}: not another process")
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise ProcessGoneError(f"cannot attach to pid {pid}: no such process") from None
    except OSError as exc:
        raise ProcessError(f"cannot attach to pid {pid}: {exc.strerror or exc}") from None
    try:
        fields = _stat_after_name(pid)
        try:
            now = None if fields is None else int(fields[19])
        except (IndexError, ValueError):
            now = None
        if now != start_time:
            raise ProcessGoneError(
                f"cannot attach to pid {pid}: it is not the process started at tick "
                f"{start_time} (now {'gone' if now is None else f'started at tick {now}'})"
            )
        if _is_zombie(fields):
            raise ProcessGoneError(f"cannot attach to pid {pid}: it has exited")
        parent = int(fields[1]) if fields is not None else 0
        leaf = _checked_leaf(cgroup, pid)
    except BaseException:
        os.close(pidfd)
        raise
    proc = cls(name, wid, cmd, watcher=watcher, spawn=False, env=env)
    proc.pid = pid
    proc.pidfd = pidfd
    proc.started = _epoch(start_time) if started is None else started
    proc.stdout = stdout
    proc.stderr = stderr
    proc.argv = list(argv) if argv is not None else _cmdline(pid)
    proc.child_env = dict(env) if env else {}
    proc._start_ticks = start_time
    proc._foreign = parent != os.getpid()
    proc._cgroup = leaf
    if pid not in registry:  # a Process spawned here keeps its place
        registry[pid] = proc
    return proc


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]

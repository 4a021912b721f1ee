"""Process trees: snapshotting descendants, signalling them, subreaper support, orphan reaping.

Upstream Circus only signals direct children, so grandchildren of a shell wrapper and
double-forked daemons outlive a stop (spec/architecture.md §7, §10.5). We pin every member of
the tree with a pidfd *before* signalling anything (a dying parent reparents its children, and
a setsid'd daemon is out of the process group), kill the process group too, and - when the
daemon is a child subreaper - reap the orphans the kernel hands back to us.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import select
import signal
import time
from collections.abc import Iterable

import psutil

from ._reaping import registry

__all__ = [
    "ProcessTree",
    "enable_subreaper",
    "disable_subreaper",
    "is_subreaper",
    "reap_orphans",
    "adopted_orphans",
]

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


def _prctl(option: int, arg: int | ctypes.c_int | ctypes._Pointer[ctypes.c_int]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def enable_subreaper() -> None:
    """Make this process a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER, 1)``).

    Orphans of our children (a shell wrapper's background job, a double-forked daemon) are
    then reparented to us instead of to init, so stopping a tree can kill *and reap* them.
    The caller then owns those zombies: call :func:`reap_orphans` on SIGCHLD or after stops.
    """
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def disable_subreaper() -> None:
    """Undo :func:`enable_subreaper`."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 0)


def is_subreaper() -> bool:
    """Whether this process is currently a child subreaper."""
    value = ctypes.c_int(0)
    _prctl(_PR_GET_CHILD_SUBREAPER, ctypes.pointer(value))
    return bool(value.value)


def _direct_children() -> list[int]:
    """Pids whose parent is this process (every thread's children)."""
    me = os.getpid()
    pids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{me}/task")
        for tid in tasks:
            try:
                with open(f"/proc/{me}/task/{tid}/children", "rb") as fh:
                    pids.extend(int(p) for p in fh.read().split())
            except FileNotFoundError:
                continue
        return pids
    except OSError:
        return [p.pid for p in psutil.Process(me).children()]


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
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                continue
            wpid, status = os.waitpid(pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            continue
        if wpid:
            reaped[pid] = os.waitstatus_to_exitcode(status)
    return reaped


def _open_pidfd(proc: psutil.Process) -> int | None:
    try:
        fd = os.pidfd_open(proc.pid)
    except (ProcessLookupError, OSError):
        return None
    # The pid may have been recycled between the snapshot and pidfd_open.
    try:
        same = proc.is_running()
    except psutil.Error:
        same = False
    if not same:
        os.close(fd)
        return None
    return fd


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _attributed_orphans(root_pid: int, started: float, env: dict[str, str]) -> list[int]:
    """Adopted orphans that can only have come from the process ``root_pid``.

    No kernel record links a double-forked daemon to its original ancestor, so this is a
    heuristic: born after ``root_pid``, with exactly its environment, and no other live
    circus process born before it with that same environment could claim it. Birth times
    all come from psutil, so they share the same (boot-time based) error.
    """
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
            rivals = [
                p
                for p in others
                if p.child_env == env and (_create_time(p.pid or 0) or float("inf")) <= born
            ]
            if rivals:
                continue
            out.append(pid)
        except psutil.Error:
            continue
    return out


class ProcessTree:
    """The descendants of one process, each pinned by a pidfd at snapshot time.

    Signals go through ``pidfd_send_signal``, so a member that died and whose pid was
    recycled is never hit by mistake.
    """

    def __init__(self, pgid: int | None, members: dict[int, int]) -> None:
        self.pgid = pgid
        self.members = members  # pid -> pidfd

    @classmethod
    def snapshot(
        cls,
        root_pid: int,
        *,
        started: float = 0.0,
        env: dict[str, str] | None = None,
        with_orphans: bool = False,
    ) -> ProcessTree:
        """Pin every current descendant of ``root_pid`` (and, optionally, its orphans)."""
        members: dict[int, int] = {}
        try:
            procs = psutil.Process(root_pid).children(recursive=True)
        except psutil.Error:
            procs = []
        if with_orphans and env is not None:
            for pid in _attributed_orphans(root_pid, started, env):
                with contextlib.suppress(psutil.Error):
                    procs.append(psutil.Process(pid))
                    procs.extend(psutil.Process(pid).children(recursive=True))
        for proc in procs:
            if proc.pid in members:
                continue
            fd = _open_pidfd(proc)
            if fd is not None:
                members[proc.pid] = fd
        return cls(root_pid, members)

    def merge(self, other: ProcessTree) -> None:
        """Adopt the members of ``other`` that we do not already have."""
        for pid, fd in other.members.items():
            if pid in self.members:
                os.close(fd)
            else:
                self.members[pid] = fd
        other.members = {}

    def signal(self, signum: int, *, group: bool = True) -> list[int]:
        """Send ``signum`` to the process group and to every live member; return pids hit."""
        if group and self.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signum)
        hit = []
        for pid, fd in self.members.items():
            try:
                signal.pidfd_send_signal(fd, signum)
                hit.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
        return hit

    def alive(self) -> list[int]:
        """Members that have not exited yet."""
        if not self.members:
            return []
        poller = select.poll()
        for fd in self.members.values():
            poller.register(fd, select.POLLIN)
        dead = {fd for fd, _ in poller.poll(0)}
        return [pid for pid, fd in self.members.items() if fd not in dead]

    def wait(self, timeout: float) -> bool:
        """Block until every member has exited or ``timeout`` passes; True if all gone."""
        deadline = time.monotonic() + max(timeout, 0.0)
        pending = {fd for pid, fd in self.members.items() if pid in set(self.alive())}
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            poller = select.poll()
            for fd in pending:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll(remaining * 1000):
                pending.discard(fd)
        return True

    async def wait_async(self, limit: float) -> bool:
        """Await every member's exit (pidfd readers on the running loop) up to ``limit`` s."""
        alive = set(self.alive())
        if not alive:
            return True
        loop = asyncio.get_running_loop()
        pending = {self.members[pid] for pid in alive}
        done = loop.create_future()

        def on_ready(fd: int) -> None:
            loop.remove_reader(fd)
            pending.discard(fd)
            if not pending and not done.done():
                done.set_result(None)

        for fd in pending:
            loop.add_reader(fd, on_ready, fd)
        try:
            await asyncio.wait_for(asyncio.shield(done), limit)
            return True
        except TimeoutError:
            return False
        finally:
            for fd in list(pending):
                loop.remove_reader(fd)

    def reap(self) -> None:
        """Reap the members that have become our zombies (we are their subreaper)."""
        for fd in self.members.values():
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)

    def close(self) -> None:
        """Release the pidfds."""
        for fd in self.members.values():
            os.close(fd)
        self.members = {}

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
import os
import select
import signal
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._children import children_of
from ._reaping import registry

if TYPE_CHECKING:
    from ._cgroup import Leaf
    from ._process import Process

__all__ = [
    "ProcessTree",
    "enable_subreaper",
    "disable_subreaper",
    "is_subreaper",
    "reap_orphans",
    "adopted_orphans",
    "descendants",
]

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


_prctl_binding: tuple[Any, Any] | None = None


def _binding() -> tuple[Any, Any]:
    """``(prctl, c_int)``, bound with the ``_ctypes`` extension directly.

    circusd calls prctl at every start; the ``ctypes`` package on top of ``_ctypes`` would
    add about 0.13 MiB to every daemon's resident memory for these few lines.
    """
    global _prctl_binding
    if _prctl_binding is None:
        import _ctypes

        class CInt(_ctypes._SimpleCData):  # what ctypes.c_int is
            _type_ = "i"

        class Prctl(_ctypes.CFuncPtr):  # int prctl(int, ...), errno kept for get_errno
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = CInt

        symbol = _ctypes.dlsym(_ctypes.dlopen(None, os.RTLD_NOW), "prctl")
        _prctl_binding = (Prctl(symbol), CInt)
    return _prctl_binding


def _prctl(option: int, arg: Any = 0) -> None:
    """``prctl(option, arg, 0, 0, 0)``; OSError on failure."""
    if _binding()[0](option, arg, 0, 0, 0) != 0:
        import _ctypes

        err = _ctypes.get_errno()
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
    import _ctypes

    value = _binding()[1](0)
    _prctl(_PR_GET_CHILD_SUBREAPER, _ctypes.byref(value))
    return bool(value.value)


def _children_of(pid: int) -> list[int] | None:
    """Direct children of ``pid``, as fresh as a scan; None when /proc cannot tell.

    The kernel's own children lists where it keeps them, else one /proc scan shared by every
    lookup made within a scan's duration (see ``_children``): a tree walk costs one scan of
    the host, not one per member.
    """
    return children_of(pid)


def _stat_fields(pid: int) -> list[bytes] | None:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, session, ...]."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _direct_children() -> list[int]:
    """Pids whose parent is this process."""
    kids = _children_of(os.getpid())
    if kids is None:
        import psutil  # only where /proc cannot tell: it weighs ~5 MiB of RSS

        return [p.pid for p in psutil.Process().children()]
    return kids


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid``, walking /proc children lists (O(tree), or one scan)."""
    first = _children_of(pid)
    if first is None:
        import psutil  # only where /proc cannot tell: it weighs ~5 MiB of RSS

        try:
            return [p.pid for p in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []
    out: list[int] = []
    seen = {pid}
    stack = list(first)
    while stack:
        kid = stack.pop()
        if kid in seen:
            continue
        seen.add(kid)
        out.append(kid)
        stack.extend(_children_of(kid) or ())
    return out


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
        fields = _stat_fields(pid)
        if fields is None or fields[0] != b"Z":
            continue
        try:
            wpid, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if wpid:
            reaped[pid] = os.waitstatus_to_exitcode(status)
    return reaped


def _open_pidfd(pid: int, parent: int | None = None) -> int | None:
    """A pidfd for ``pid`` if it is still the process we saw (its parent is ``parent``)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    if parent is not None:
        # The pid may have been recycled between listing and pidfd_open: check the parent.
        fields = _stat_fields(pid)
        if fields is None or int(fields[1]) != parent:
            os.close(fd)
            return None
    return fd


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


def _attributed_orphans(root_pid: int, started: float, env: dict[str, str]) -> list[int]:
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


def _psutil_children(pid: int) -> list[int]:
    # Only where /proc cannot tell (_children_of gave None): psutil scans the whole host.
    import psutil  # lazily: spawning never pays for it

    try:
        return [p.pid for p in psutil.Process(pid).children()]
    except psutil.Error:
        return []


# Signal rounds over a cgroup leaf: each round pins and signals the members the previous
# one did not know (forked meanwhile); a tree that keeps forking faster is left to SIGKILL.
_LEAF_ROUNDS = 20


class ProcessTree:
    """The descendants of one process, each pinned by a pidfd at snapshot time.

    Signals go through ``pidfd_send_signal``, so a member that died and whose pid was
    recycled is never hit by mistake.

    With a cgroup ``leaf`` (see ``tree_tracking()``) the members are exactly the processes
    in the leaf, whatever their parentage, session or environment: every signal, ``alive``
    and ``wait`` reads the leaf again, so members forked after the snapshot are found too,
    and after a SIGKILL each of them gets one as soon as it is seen.
    """

    def __init__(
        self,
        pgid: int | None,
        members: dict[int, int],
        leaf: Leaf | None = None,
        root_pid: int | None = None,
    ) -> None:
        self.pgid = pgid
        self.members = members  # pid -> pidfd
        self.leaf = leaf
        self._exclude = {os.getpid(), root_pid}  # never a member: ourselves, the root
        self._kill = False  # a SIGKILL was sent: members found later get one too

    @classmethod
    def snapshot(
        cls,
        root_pid: int,
        *,
        started: float = 0.0,
        env: dict[str, str] | None = None,
        with_orphans: bool = False,
        leaf: Leaf | None = None,
    ) -> ProcessTree:
        """Pin every current descendant of ``root_pid`` (and, optionally, its orphans).

        With ``leaf`` (the cgroup ``root_pid`` was born in), every process in it but the root.
        """
        if leaf is not None and os.path.isdir(leaf.path):
            tree = cls(root_pid, {}, leaf, root_pid)
            tree._pin()
            return tree
        members: dict[int, int] = {}
        roots = [root_pid]
        if with_orphans and env is not None:
            roots.extend(_attributed_orphans(root_pid, started, env))
        for top in roots:
            if top != root_pid and top not in members:
                fd = _open_pidfd(top)
                if fd is not None:
                    members[top] = fd
            # Walk parent by parent so each pidfd is checked against the parent we saw.
            stack = [top]
            while stack:
                parent = stack.pop()
                kids = _children_of(parent)
                for kid in _psutil_children(parent) if kids is None else kids:
                    if kid in members:
                        continue
                    fd = _open_pidfd(kid, parent)
                    if fd is not None:
                        members[kid] = fd
                        stack.append(kid)
        return cls(root_pid, members)

    def merge(self, other: ProcessTree) -> None:
        """Adopt the members of ``other`` that we do not already have."""
        for pid, fd in other.members.items():
            if pid in self.members:
                os.close(fd)
            else:
                self.members[pid] = fd
        other.members = {}

    def _group_reserved(self) -> bool:
        # A pgid number cannot be reused while a process still belongs to that group; once
        # the leader is reaped, only a live pinned member in the group proves it is still ours.
        for pid in self.alive():
            fields = _stat_fields(pid)
            if fields is not None and int(fields[2]) == self.pgid:
                return True
        return False

    def _pin(self) -> dict[int, int]:
        """Pin the leaf's members we do not know yet (SIGKILL them after a kill)."""
        assert self.leaf is not None
        new = self.leaf.pin(self.members, self._exclude)  # type: ignore[arg-type]
        self.members.update(new)
        if self._kill:
            for fd in new.values():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
        return new

    def _signal_leaf(self, signum: int) -> list[int]:
        hit = []
        targets = dict(self.members)
        for _ in range(_LEAF_ROUNDS):
            for pid, fd in targets.items():
                try:
                    signal.pidfd_send_signal(fd, signum)
                    hit.append(pid)
                except (ProcessLookupError, PermissionError):
                    pass
            if signum == signal.SIGKILL:
                self._kill = True  # _pin kills what it finds from now on
                self._pin()
                break
            targets = self._pin()
            if not targets:
                break
        return hit

    def signal(self, signum: int, *, group: bool = True, leader_reaped: bool = False) -> list[int]:
        """Send ``signum`` to the process group and to every live member; return pids hit.

        With ``leader_reaped`` the group is signalled only if a pinned member proves the
        group still exists (its number could otherwise have been recycled). With a leaf,
        then every process in the leaf, including those forked while we signal.
        """
        if group and self.pgid is not None and (not leader_reaped or self._group_reserved()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signum)
        if self.leaf is not None:
            return self._signal_leaf(signum)
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
        if self.leaf is not None:
            self._pin()
        return self._alive_pinned()

    def _alive_pinned(self) -> list[int]:
        if not self.members:
            return []
        poller = select.poll()
        for fd in self.members.values():
            poller.register(fd, select.POLLIN)
        dead = {fd for fd, _ in poller.poll(0)}
        return [pid for pid, fd in self.members.items() if fd not in dead]

    def wait(self, timeout: float) -> bool:
        """Block until every member has exited or ``timeout`` passes; True if all gone.

        With a leaf: until the leaf holds nobody but the root (once the root is gone: until
        it is empty), waiting on the members' pidfds and reading the leaf again after.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        while self._wait_pinned(deadline):
            if self.leaf is None or not self._pin():
                return True  # nothing new in the leaf: all its members are dead
        return False

    def _wait_pinned(self, deadline: float) -> bool:
        pending = {fd for pid, fd in self.members.items() if pid in set(self._alive_pinned())}
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
        """Await every member's exit (pidfd readers on the running loop) up to ``limit`` s.

        With a leaf, as :meth:`wait`: until the leaf holds nobody but the root.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(limit, 0.0)
        while await self._wait_pinned_async(deadline - loop.time()):
            if self.leaf is None or not self._pin():
                return True
        return False

    async def _wait_pinned_async(self, limit: float) -> bool:
        alive = set(self._alive_pinned())
        if not alive:
            return True
        if limit <= 0:
            return False
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

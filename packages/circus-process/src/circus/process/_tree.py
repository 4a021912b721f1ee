"""Process trees: pinning a process's descendants, then signalling, waiting on and reaping them.

Upstream Circus only signals direct children, so grandchildren of a shell wrapper and
double-forked daemons outlive a stop (spec/architecture.md §7, §10.5). We pin every member of
the tree with a pidfd *before* signalling anything (a dying parent reparents its children, and
a setsid'd daemon is out of the process group), kill the process group too, and - when the
daemon is a child subreaper (``_subreaper``) - reap the orphans the kernel hands back to us.
With a cgroup leaf (``_cgroup``) the members are read from the leaf instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._children import children_of, stat_fields
from ._subreaper import attributed_orphans

if TYPE_CHECKING:
    from ._cgroup_leaf import Leaf

__all__ = ["ProcessTree", "descendants"]


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid``, walking /proc children lists (O(tree), or one scan)."""
    first = children_of(pid)
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
        stack.extend(children_of(kid) or ())
    return out


def _open_pidfd(pid: int, parent: int | None = None) -> int | None:
    """A pidfd for ``pid`` if it is still the process we saw (its parent is ``parent``)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    if parent is not None:
        # The pid may have been recycled between listing and pidfd_open: check the parent.
        fields = stat_fields(pid)
        if fields is None or int(fields[1]) != parent:
            os.close(fd)
            return None
    return fd


def _psutil_children(pid: int) -> list[int]:
    # Only where /proc cannot tell (children_of gave None): psutil scans the whole host.
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
        # never a member: ourselves, the root
        self._exclude = {os.getpid()} if root_pid is None else {os.getpid(), root_pid}
        self._kill = False  # a SIGKILL was sent: members found later get one too

    @classmethod
    def snapshot(
        cls,
        root_pid: int,
        *,
        started: float = 0.0,
        env: Mapping[str, str] | None = None,
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
            roots.extend(attributed_orphans(root_pid, started, env))
        for top in roots:
            if top != root_pid and top not in members:
                fd = _open_pidfd(top)
                if fd is not None:
                    members[top] = fd
            # Walk parent by parent so each pidfd is checked against the parent we saw.
            stack = [top]
            while stack:
                parent = stack.pop()
                kids = children_of(parent)
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
            fields = stat_fields(pid)
            if fields is not None and int(fields[2]) == self.pgid:
                return True
        return False

    def _pin(self) -> dict[int, int]:
        """Pin the leaf's members we do not know yet (SIGKILL them after a kill)."""
        assert self.leaf is not None
        new = self.leaf.pin(self.members, self._exclude)
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
        return await wait_pidfds({self.members[pid] for pid in alive}, limit)

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


async def wait_pidfds(fds: set[int], limit: float) -> bool:
    """Wait up to ``limit`` s until every pidfd in ``fds`` is readable (its process has
    exited), as loop events; ``True`` if they all did in time."""
    loop = asyncio.get_running_loop()
    pending = set(fds)
    if not pending:
        return True
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

"""Signalling a child and stopping it with its tree: the graceful stop and the SIGKILL after.

The part of :class:`~circus.process.Process` that ends things. The tree is pinned before
any signal (``_tree.ProcessTree``: from the child's cgroup leaf when it has one, else from
/proc and, as subreaper, the orphans attributed to it), so a dying parent's reparented
children and a setsid'd daemon are still found; everything goes through pidfds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

from . import _cgroup
from ._process_exit import ExitWatching
from ._subreaper import is_subreaper
from ._tree import ProcessTree

__all__ = ["Stopping"]


class Stopping(ExitWatching):
    """Signals, ``stop`` and ``astop``, and the cgroup leaf's removal (see :class:`Process`)."""

    __slots__ = ()

    def send_signal(self, signum: int, *, children: bool = False, recursive: bool = False) -> None:
        """Send ``signum`` as upstream's ``signal`` command does.

        Default: the process only. ``children``: its direct children only (all descendants
        with ``recursive``). ``recursive`` alone: the process and all its descendants.
        A child that is already reaped is silently skipped.
        """
        if self.returncode is not None or self.pid is None:
            return
        if not (children or recursive):
            self._signal_self(signum)
            return
        tree = ProcessTree.snapshot(self.pid)  # pinned before anything is signalled
        try:
            if not children:
                # The process first: a parent seeing its child die first may exit on its own.
                self._signal_self(signum)
            if children and not recursive:
                direct = set(self.children())
                for pid, fd in tree.members.items():
                    if pid in direct:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            signal.pidfd_send_signal(fd, signum)
            else:
                tree.signal(signum, group=False)
        finally:
            tree.close()

    def children(self) -> list[int]:
        """Pids of the direct children of the child (empty once it is gone)."""
        from ._info import children_pids

        return children_pids(self)

    def _signal_self(self, signum: int) -> None:
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signum)
            elif self.returncode is None and self.pid is not None:
                os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def _stop_begin(self, stop_signal: int, stop_children: bool) -> ProcessTree:
        pid = self._require_pid()
        # Pin the tree before any signal: once the parent dies its children are reparented.
        leaf = self._cgroup
        if leaf is not None:
            tree = ProcessTree.snapshot(pid, leaf=leaf)  # exact: every member of the leaf
        else:
            tree = ProcessTree.snapshot(
                pid,
                started=self.started or 0.0,
                env=self.child_env,
                # A non-child's orphans went to its own parent's reaper, never to us.
                with_orphans=is_subreaper() and not self._foreign,
            )
        if self.returncode is None:
            if stop_children:
                tree.signal(stop_signal)
            self._signal_self(stop_signal)
        elif stop_children:
            tree.signal(stop_signal, leader_reaped=True)
        return tree

    def _stop_kill(self, tree: ProcessTree, stop_children: bool) -> None:
        pid = self._require_pid()
        if self.returncode is None or stop_children:
            late = None
            if self.returncode is None and tree.leaf is None:
                late = ProcessTree.snapshot(pid)
            if late is not None:
                tree.merge(late)
                late.close()
            tree.signal(signal.SIGKILL, leader_reaped=self.returncode is not None)
            self._signal_self(signal.SIGKILL)

    def stop(
        self,
        graceful_timeout: float = 30.0,
        stop_signal: int = signal.SIGTERM,
        stop_children: bool = False,
    ) -> int:
        """Stop the child and return its returncode (blocking).

        Sends ``stop_signal`` (to the whole tree with ``stop_children``), waits up to
        ``graceful_timeout``, then SIGKILLs the process, its process group and every
        descendant pinned before signalling, and reaps. Members of the tree that we adopted
        as subreaper are reaped too, so no zombie is left.
        """
        self._require_pid()
        deadline = time.monotonic() + graceful_timeout
        tree = self._stop_begin(stop_signal, stop_children)
        try:
            if self.returncode is None:
                with contextlib.suppress(TimeoutError):
                    self.wait(max(deadline - time.monotonic(), 0.0))
            if stop_children:
                tree.wait(max(deadline - time.monotonic(), 0.0))
            rc = self.returncode
            if rc is None or (stop_children and tree.alive()):
                self._stop_kill(tree, stop_children)
                rc = self.wait()
                tree.wait(5.0)
            tree.reap()
        finally:
            tree.close()
        self._drop_empty_leaf()
        return rc

    async def astop(
        self,
        graceful_timeout: float = 30.0,
        stop_signal: int = signal.SIGTERM,
        stop_children: bool = False,
    ) -> int:
        """:meth:`stop` for asyncio: same sequence, awaiting pidfd events instead of blocking."""
        self._require_pid()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + graceful_timeout
        tree = self._stop_begin(stop_signal, stop_children)
        try:
            if self.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wait_async(), max(deadline - loop.time(), 0.0))
            if stop_children:
                await tree.wait_async(max(deadline - loop.time(), 0.0))
            rc = self.returncode
            if rc is None or (stop_children and tree.alive()):
                self._stop_kill(tree, stop_children)
                rc = await self.wait_async()
                await tree.wait_async(5.0)
            tree.reap()
        finally:
            tree.close()
        self._drop_empty_leaf()
        return rc

    def _drop_empty_leaf(self) -> None:
        # rmdir fails (EBUSY) while any process is inside: then the leaf waits for close().
        leaf = self._cgroup
        if leaf is not None and self.returncode is not None and leaf.remove():
            self._cgroup = None

    def _release_leaf(self) -> None:
        leaf = self._cgroup
        if leaf is None or self.returncode is None:
            return  # a live child keeps its leaf (the subtree is cleaned at exit)
        if not leaf.remove():
            # Survivors (stop without stop_children, or the child died on its own): moved
            # to the subtree's root, never killed, and the leaf goes.
            _cgroup.adopt(leaf)
            leaf.remove()
        self._cgroup = None

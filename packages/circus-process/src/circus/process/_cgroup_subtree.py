"""This process's delegated cgroup2 subtree: making it, leaves in it, cleaning it up.

``<our cgroup>/circus.<pid>/`` holds this process and one threaded leaf per spawned child.
Whatever is left inside when it is released is moved back to the cgroup we came from, never
killed, and so is everything in a subtree whose owner died (found by :func:`sweep_stale`).
"""

from __future__ import annotations

import errno
import os
import threading

from . import _cgroup_fs as _fs
from ._cgroup_leaf import CLAIMED, Leaf

__all__ = ["PREFIX", "Subtree", "sweep_stale"]

PREFIX = "circus."


class Subtree:
    """This process's delegated cgroup subtree: where it lives and its children's leaves."""

    __slots__ = ("path", "rel", "home", "home_rel", "_seq", "_lock")

    def __init__(self, home: str, home_rel: str) -> None:
        self.home = home  # the cgroup we came from, where leftovers go back to
        self.home_rel = home_rel
        name = f"{PREFIX}{os.getpid()}"
        self.path = os.path.join(home, name)
        self.rel = f"{home_rel.rstrip('/')}/{name}"
        self._seq = 0
        self._lock = threading.Lock()

    def create(self) -> None:
        """Sweep dead owners' subtrees beside ours, make ours, move in and probe a leaf."""
        sweep_stale(self.home, self.home_rel)
        if os.path.isdir(self.path):  # our pid's previous owner died: it is stale
            _clean(self.path, self.rel, self.home)
        os.mkdir(self.path)
        try:
            # Under another threaded cgroup a new cgroup starts "domain invalid".
            if _fs.read(f"{self.path}/cgroup.type").strip() == b"domain invalid":
                _fs.write(f"{self.path}/cgroup.type", b"threaded")
            _fs.write(f"{self.path}/cgroup.procs", b"0")
            if _fs.cgroup_of("self") != self.rel:  # another cgroup namespace than the mount's
                raise OSError(errno.EXDEV, f"{self.path} is not where /proc says we are")
            probe = self.new_leaf()
            try:
                probe.enter()
                self.leave()
            finally:
                probe.remove()
        except BaseException:
            self.release()
            raise

    def new_leaf(self) -> Leaf:
        """A new empty threaded leaf; OSError when the kernel refuses one."""
        with self._lock:
            self._seq += 1
            path = f"{self.path}/{self._seq}"
        os.mkdir(path)
        try:
            _fs.write(f"{path}/cgroup.type", b"threaded")
        except OSError:
            os.rmdir(path)
            raise
        return Leaf(path)

    def leave(self) -> None:
        """Move the calling thread back from a leaf to the subtree's root."""
        # Opened each time rather than kept: a library must not hold an fd of its own.
        _fs.write(f"{self.path}/cgroup.threads", _fs.this_thread())

    def adopt(self, pids: set[int]) -> None:
        """Move whole processes into the subtree's root (they leave their leaf)."""
        for pid in pids:
            try:
                _fs.write(f"{self.path}/cgroup.procs", b"%d" % pid)
            except OSError:
                pass

    def release(self) -> None:
        """Move every process still inside (ourselves too) back home and remove the subtree.

        A nested subtree whose owner is still alive is left alone, and so is ours then.
        """
        if os.path.isdir(self.path):
            try:
                _fs.write(f"{self.home}/cgroup.procs", b"0")
            except OSError:
                pass
            _clean(self.path, self.rel, self.home)


def _owner_alive(path: str, rel: str) -> bool:
    """Whether the process named by ``circus.<pid>`` is still inside its subtree."""
    name = os.path.basename(path)
    pid = name[len(PREFIX) :]
    if not pid.isdigit():
        return False
    where = _fs.cgroup_of(pid)
    return where is not None and (where == rel or where.startswith(rel + "/"))


def _clean(path: str, rel: str, home: str) -> bool:
    """Move the processes of ``path`` and below to ``home`` and rmdir it all, bottom-up.

    Subtrees of live owners below are kept (and so is ``path``). Returns True if removed.
    """
    keep = False
    try:
        with os.scandir(path) as entries:
            subdirs = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return True
    except OSError:
        return False
    for name in subdirs:
        sub, sub_rel = os.path.join(path, name), f"{rel}/{name}"
        if sub in CLAIMED:  # a process attached from a dead owner's subtree lives there
            keep = True
            continue
        live_owner = name.startswith(PREFIX) and _owner_alive(sub, sub_rel)
        if live_owner or not _clean(sub, sub_rel, home):
            keep = True
    if keep:
        return False
    for _ in range(10):  # a process forking while we move it leaves a child behind
        pids = _fs.processes(path, -1)
        if not pids:
            break
        for pid in pids:
            try:
                _fs.write(f"{home}/cgroup.procs", b"%d" % pid)
            except OSError:
                pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def sweep_stale(home: str, home_rel: str) -> int:
    """Remove the ``circus.<pid>`` subtrees in ``home`` whose owner is gone; return how many.

    Their processes are moved to ``home``, never killed: they may belong to somebody.
    """
    removed = 0
    try:
        with os.scandir(home) as entries:
            names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return 0
    for name in names:
        if not name.startswith(PREFIX) or not name[len(PREFIX) :].isdigit():
            continue
        path, rel = os.path.join(home, name), f"{home_rel.rstrip('/')}/{name}"
        if int(name[len(PREFIX) :]) == os.getpid() or _owner_alive(path, rel):
            continue
        if _clean(path, rel, home):
            removed += 1
    return removed

"""One child's cgroup2 leaf: entering it for a fork, listing and pinning its members, removing it.

A leaf is a threaded cgroup (see ``_cgroup``): it has no ``cgroup.kill`` and no readable
``cgroup.procs``, so members are read from ``cgroup.threads`` (thread ids, mapped to their
processes) and pinned with pidfds before anything signals them.
"""

from __future__ import annotations

import errno
import os

from . import _cgroup_fs as _fs

__all__ = ["CLAIMED", "Leaf"]

#: Leaves of a dead daemon's subtree that a live process of ours was attached in (see
#: ``Process.attach``): the sweep of dead owners' subtrees leaves them (and their subtree)
#: alone until they are removed.
CLAIMED: set[str] = set()


class Leaf:
    """One child's cgroup: the child and everything it forks, whatever they do after.

    Only the owning :class:`Subtree` creates leaves; :class:`~circus.process.ProcessTree`
    reads, signals and waits on one.
    """

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"<Leaf {self.path}>"

    def enter(self) -> None:
        """Move the calling thread in: what it forks now is born in this leaf."""
        _fs.write(f"{self.path}/cgroup.threads", _fs.this_thread())

    def pin(self, pinned: dict[int, int], exclude: set[int]) -> dict[int, int]:
        """Open a pidfd for every member not in ``pinned`` or ``exclude``; return the new ones.

        A listed pid could die and be reused before its pidfd is open: a second listing
        keeps only pidfds of processes still seen in the leaf afterwards.
        """
        first = _fs.threads(self.path)
        new: dict[int, int] = {}
        checked: set[int] = set()  # pinned through /proc/<tgid>/task/<tid>: already verified
        for tid in first:
            if tid in pinned or tid in exclude or tid in new:
                continue
            try:
                new[tid] = os.pidfd_open(tid)
                continue
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    continue  # gone
            # EINVAL: not a thread-group leader; pin its process
            tgid = _fs.tgid(tid)
            if tgid is None or tgid in pinned or tgid in exclude or tgid in new:
                continue
            try:
                fd = os.pidfd_open(tgid)
            except OSError:
                continue
            if os.path.exists(f"/proc/{tgid}/task/{tid}"):
                new[tgid] = fd
                checked.add(tgid)
            else:
                os.close(fd)
        if len(new) > len(checked):
            second = set(_fs.threads(self.path))
            for pid in list(new):
                if pid not in checked and pid not in second:
                    os.close(new.pop(pid))
        return new

    def members(self) -> set[int]:
        """Process ids currently in the leaf or below it (never this process)."""
        return _fs.processes(self.path, os.getpid())

    def populated(self) -> bool:
        """Whether any live process is in the leaf or below it (zombies do not count)."""
        try:
            return b"populated 1" in _fs.read(f"{self.path}/cgroup.events")
        except FileNotFoundError:
            return False
        except OSError:
            return True

    def remove(self) -> bool:
        """rmdir the leaf (and empty cgroups below it); False while a process is inside."""
        try:
            with os.scandir(self.path) as entries:
                subdirs = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return True
        except OSError:
            subdirs = []
        for sub in subdirs:
            Leaf(sub).remove()
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass
        except OSError:
            return False
        if self.path in CLAIMED:
            CLAIMED.discard(self.path)
            # The dead owner's subtree goes with its last claimed leaf, if nothing else is in.
            parent = os.path.dirname(self.path)
            owner = os.path.basename(parent)
            if owner != f"circus.{os.getpid()}" and not any(
                p.startswith(parent + "/") for p in CLAIMED
            ):
                try:
                    os.rmdir(parent)
                except OSError:
                    pass
        return True

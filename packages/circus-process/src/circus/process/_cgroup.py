"""Exact process trees on Linux: one cgroup2 leaf per child, joined before the child runs.

A double-forked daemon that changes its session, group and environment leaves no kernel
record linking it to the process that started it, except its cgroup: a forked process is
born in its parent's cgroup and only a privileged write can move it out. So when this
process may create cgroups on a cgroup2 hierarchy, every :class:`~circus.process.Process`
gets a leaf of its own and stopping the tree means emptying that leaf.

Placement without a race and without slowing spawns down. A child that joins its leaf
after exec could fork before the write; a ``preexec_fn`` that joins it before exec costs
about 1 ms per spawn (it forbids CPython's vfork path and runs the interpreter in the
child). Instead the *spawning thread* moves into the leaf for the duration of the fork: a
new process is born in the cgroup of the thread that forks it. Moving one thread needs
cgroup2's threaded mode, so the layout is::

    <cgroup2 mount><our cgroup>/circus.<pid>/     we move in here ("domain threaded")
        <n>/                                        one threaded leaf per spawned child

Costs per spawn: a mkdir, two small writes to create the threaded leaf, and two writes
moving our thread in and out: ~60 us of system calls, ~165 us on average, because about
half of the moves into a new leaf wait ~0.8 ms in the kernel (longer the later they come
after the previous move: an RCU grace period, it seems). Threaded cgroups have
no ``cgroup.kill`` and no readable ``cgroup.procs``: members are read from
``cgroup.threads`` and signalled through pidfds (see :class:`Leaf`).

Nothing here kills a process it did not start: leftovers are *moved* out of a subtree
before it is removed, at exit and when a dead owner's subtree is found at start.

This module holds the process-wide decision (cgroups or not, and why) and what the rest of
the package calls: the leaf for the next spawn, entering and leaving it. The kernel files
are read and written in ``_cgroup_fs``, a leaf is ``_cgroup_leaf.Leaf``, and our subtree,
with the sweep of dead owners' subtrees, is ``_cgroup_subtree.Subtree``.
"""

from __future__ import annotations

import atexit
import errno
import os
import threading

from . import _cgroup_fs as _fs
from ._cgroup_leaf import Leaf
from ._cgroup_subtree import PREFIX, Subtree

__all__ = [
    "Entered",
    "adopt",
    "claim",
    "leave",
    "new_leaf",
    "release_tree_tracking",
    "resume_tree_tracking",
    "set_tree_tracking",
    "subtree",
    "tree_tracking",
    "tree_tracking_reason",
]

MODE_ENV = "CIRCUS_TREE_TRACKING"
MODES = ("auto", "process-tree")
PROCESS_TREE = "process-tree"

# The process-wide state: one subtree per process, decided on first use.

_lock = threading.Lock()
_mode: str | None = None  # None: not decided yet (MODE_ENV, then "auto")
_subtree: Subtree | None = None
_probed = False  # auto mode tried to make a subtree (successfully or not)
_why = ""  # why we fell back to the process tree


def _create() -> Subtree | None:
    global _why
    found = _fs.mount()
    if found is None:
        _why = "no cgroup2 mount"
        return None
    mountpoint, mount_root = found
    rel = _fs.cgroup_of("self")
    if rel is None:
        _why = "not in a cgroup2 hierarchy"
        return None
    if mount_root != "/" and not (rel == mount_root or rel.startswith(mount_root + "/")):
        _why = f"our cgroup {rel} is outside the cgroup2 mount {mountpoint}"
        return None
    inside = rel[len(mount_root) :] if mount_root != "/" else rel
    home = mountpoint.rstrip("/") + inside if inside != "/" else mountpoint
    if not os.path.isdir(home):
        _why = f"{home} (our cgroup) is not on the cgroup2 mount"
        return None
    try:
        tree = Subtree(home, rel)
        tree.create()
    except OSError as exc:
        _why = f"{home}: {exc.strerror or exc}"
        return None
    atexit.register(_release_at_exit)
    return tree


def subtree() -> Subtree | None:
    """The subtree new children go into, created on first use; None on the fallback."""
    global _probed, _subtree, _mode
    if _probed:
        return _subtree
    with _lock:
        if not _probed:
            if _mode is None:
                env = os.environ.get(MODE_ENV, "auto").strip() or "auto"
                _mode = env if env in MODES else "auto"
            if _mode == "auto":
                _subtree = _create()
            _probed = True
    return _subtree


def new_leaf() -> Leaf | None:
    """A leaf for the next child, or None (fallback: the process-tree method)."""
    tree = subtree()
    if tree is None or _mode != "auto":
        return None
    try:
        return tree.new_leaf()
    except OSError:
        return None  # e.g. cgroup.max.descendants reached: this child is tracked the old way


def leave() -> None:
    """Move the calling thread out of the leaf it entered; never raises.

    Should the kernel refuse, the thread stays in that leaf (whose stop never signals us),
    and later children fall back to the process-tree method.
    """
    global _mode, _why
    tree = _subtree
    try:
        if tree is None:
            raise OSError(errno.ENOENT, "the subtree was released")
        tree.leave()
    except OSError as exc:
        _mode = PROCESS_TREE
        _why = f"could not leave a leaf, cgroups turned off: {exc.strerror or exc}"


class Entered:
    """``with Entered(leaf) as leaf:`` the calling thread is in ``leaf`` inside the block.

    Yields None (and removes the leaf) when the kernel refuses the move; the thread always
    leaves at the end of the block, whatever happens in it.
    """

    __slots__ = ("leaf", "_in")

    def __init__(self, leaf: Leaf | None) -> None:
        self.leaf = leaf
        self._in = False

    def __enter__(self) -> Leaf | None:
        if self.leaf is not None:
            try:
                self.leaf.enter()
                self._in = True
            except OSError:
                self.leaf.remove()
                self.leaf = None
        return self.leaf

    def __exit__(self, *exc: object) -> None:
        if self._in:
            self._in = False
            leave()


def adopt(leaf: Leaf) -> None:
    """Move the processes still in ``leaf`` to the subtree's root (they are not killed)."""
    tree = _subtree
    if tree is not None:
        tree.adopt(leaf.members())


def claim(path: str) -> None:
    """Keep the leaf at ``path`` (of a dead daemon's subtree) from the sweep of stale
    subtrees while a process attached in it is ours; released when the leaf is removed."""
    from ._cgroup_leaf import CLAIMED

    CLAIMED.add(os.path.normpath(path))


def tree_tracking() -> str:
    """How trees are tracked for children spawned from now on.

    ``"cgroup2:<path of our subtree>"``, or ``"process-tree"`` (descendants found through
    /proc, orphans by the subreaper heuristics) when cgroups are disabled or unusable.
    """
    tree = subtree()
    if tree is None or _mode != "auto":
        return PROCESS_TREE
    return f"cgroup2:{tree.path}"


def tree_tracking_reason() -> str:
    """Why :func:`tree_tracking` says ``process-tree`` (empty when it does not)."""
    if tree_tracking() != PROCESS_TREE:
        return ""
    if _mode == PROCESS_TREE and not _why:
        return f"turned off ({MODE_ENV}=process-tree or set_tree_tracking)"
    return _why


def set_tree_tracking(mode: str) -> str:
    """Choose ``"auto"`` (cgroup2 when writable) or ``"process-tree"``; return the result.

    Applies to children spawned afterwards; a child keeps the leaf it was born in.
    """
    global _mode, _probed
    if mode not in MODES:
        raise ValueError(f"tree tracking mode must be one of {', '.join(MODES)}: {mode!r}")
    global _why
    with _lock:
        _mode = mode
        _why = ""
        if mode == "auto" and _subtree is None:
            _probed = False  # try (again)
    return tree_tracking()


def resume_tree_tracking(where: str) -> bool:
    """After this process exec'd itself (``daemon-reexec``): take back the subtree the
    previous image of this pid made, ``where`` being what its :func:`tree_tracking` said
    (``"cgroup2:<path>"``). Children spawned from now on get leaves there again (numbered
    after the existing ones) and the subtree is released at exit. False, and nothing
    changed, when ``where`` is not such a subtree of ours that we are in.
    """
    global _subtree, _probed, _mode, _why
    path = where[len("cgroup2:") :] if where.startswith("cgroup2:") else ""
    rel = _fs.cgroup_of("self")
    if not path or rel is None or os.path.basename(path) != f"{PREFIX}{os.getpid()}":
        return False
    if not os.path.isdir(path) or os.path.basename(rel) != os.path.basename(path):
        return False
    tree = Subtree(os.path.dirname(path), os.path.dirname(rel) or "/")
    if tree.path != path or tree.rel != rel:
        return False
    try:
        with os.scandir(path) as entries:
            leaves = [int(e.name) for e in entries if e.is_dir() and e.name.isdigit()]
    except OSError:
        return False
    tree._seq = max(leaves, default=0)
    with _lock:
        _subtree, _probed, _mode, _why = tree, True, "auto", ""
    atexit.register(_release_at_exit)
    return True


def release_tree_tracking() -> None:
    """Remove our subtree now (survivors are moved out, never killed); done at exit too."""
    global _subtree, _probed
    with _lock:
        tree, _subtree = _subtree, None
        _probed = False
    if tree is not None:
        tree.release()


def _release_at_exit() -> None:
    if _subtree is not None and _subtree.path.endswith(f"{PREFIX}{os.getpid()}"):
        release_tree_tracking()


def _forget_in_child() -> None:
    # A forked copy of us is not the owner: it must neither use nor remove our subtree.
    global _subtree, _probed
    _subtree = None
    _probed = False


os.register_at_fork(after_in_child=_forget_in_child)

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
"""

from __future__ import annotations

import atexit
import errno
import os
import threading

__all__ = [
    "Entered",
    "Leaf",
    "Subtree",
    "adopt",
    "leave",
    "new_leaf",
    "release_tree_tracking",
    "set_tree_tracking",
    "subtree",
    "tree_tracking",
    "tree_tracking_reason",
]

MODE_ENV = "CIRCUS_TREE_TRACKING"
MODES = ("auto", "process-tree")
PROCESS_TREE = "process-tree"
_PREFIX = "circus."


def _read(path: str) -> bytes:
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


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _tid() -> bytes:
    return b"%d" % threading.get_native_id()


def _cgroup_of(pid: int | str) -> str | None:
    """The cgroup2 path of ``pid`` (as /proc shows it to us), or None."""
    try:
        for line in _read(f"/proc/{pid}/cgroup").splitlines():
            if line.startswith(b"0::"):
                return line[3:].decode()
    except OSError:
        pass
    return None


def _mount() -> tuple[str, str] | None:
    """``(mount point, root within the hierarchy)`` of the first cgroup2 mount, or None."""
    try:
        data = _read("/proc/self/mountinfo")
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


def _tgid(tid: int) -> int | None:
    try:
        for line in _read(f"/proc/{tid}/status").splitlines():
            if line.startswith(b"Tgid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _threads(path: str) -> list[int]:
    """Every thread id in ``path`` and in the cgroups below it."""
    try:
        out = [int(t) for t in _read(f"{path}/cgroup.threads").split()]
    except OSError:
        return []
    try:
        with os.scandir(path) as entries:
            subdirs = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        subdirs = []
    for sub in subdirs:  # a nested user of this module (a circusd started by one of ours)
        out.extend(_threads(sub))
    return out


def _processes(path: str, exclude: int) -> set[int]:
    """The process ids owning the threads of ``path`` (and below), minus ``exclude``."""
    pids: set[int] = set()
    for tid in _threads(path):
        tgid = tid if tid in pids else _tgid(tid)
        if tgid is not None:
            pids.add(tgid)
    pids.discard(exclude)
    return pids


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
        _write(f"{self.path}/cgroup.threads", _tid())

    def pin(self, pinned: dict[int, int], exclude: set[int]) -> dict[int, int]:
        """Open a pidfd for every member not in ``pinned`` or ``exclude``; return the new ones.

        A listed pid could die and be reused before its pidfd is open: a second listing
        keeps only pidfds of processes still seen in the leaf afterwards.
        """
        first = _threads(self.path)
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
            tgid = _tgid(tid)
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
            second = set(_threads(self.path))
            for pid in list(new):
                if pid not in checked and pid not in second:
                    os.close(new.pop(pid))
        return new

    def members(self) -> set[int]:
        """Process ids currently in the leaf or below it (never this process)."""
        return _processes(self.path, os.getpid())

    def populated(self) -> bool:
        """Whether any live process is in the leaf or below it (zombies do not count)."""
        try:
            return b"populated 1" in _read(f"{self.path}/cgroup.events")
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
            return True
        except OSError:
            return False
        return True


class Subtree:
    """This process's delegated cgroup subtree: where it lives and its children's leaves."""

    __slots__ = ("path", "rel", "home", "home_rel", "_seq", "_lock")

    def __init__(self, home: str, home_rel: str) -> None:
        self.home = home  # the cgroup we came from, where leftovers go back to
        self.home_rel = home_rel
        name = f"{_PREFIX}{os.getpid()}"
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
            if _read(f"{self.path}/cgroup.type").strip() == b"domain invalid":
                _write(f"{self.path}/cgroup.type", b"threaded")
            _write(f"{self.path}/cgroup.procs", b"0")
            if _cgroup_of("self") != self.rel:  # another cgroup namespace than the mount's
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
            _write(f"{path}/cgroup.type", b"threaded")
        except OSError:
            os.rmdir(path)
            raise
        return Leaf(path)

    def leave(self) -> None:
        """Move the calling thread back from a leaf to the subtree's root."""
        # Opened each time rather than kept: a library must not hold an fd of its own.
        _write(f"{self.path}/cgroup.threads", _tid())

    def adopt(self, pids: set[int]) -> None:
        """Move whole processes into the subtree's root (they leave their leaf)."""
        for pid in pids:
            try:
                _write(f"{self.path}/cgroup.procs", b"%d" % pid)
            except OSError:
                pass

    def release(self) -> None:
        """Move every process still inside (ourselves too) back home and remove the subtree.

        A nested subtree whose owner is still alive is left alone, and so is ours then.
        """
        if os.path.isdir(self.path):
            try:
                _write(f"{self.home}/cgroup.procs", b"0")
            except OSError:
                pass
            _clean(self.path, self.rel, self.home)


def _owner_alive(path: str, rel: str) -> bool:
    """Whether the process named by ``circus.<pid>`` is still inside its subtree."""
    name = os.path.basename(path)
    pid = name[len(_PREFIX) :]
    if not pid.isdigit():
        return False
    where = _cgroup_of(pid)
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
        live_owner = name.startswith(_PREFIX) and _owner_alive(sub, sub_rel)
        if live_owner or not _clean(sub, sub_rel, home):
            keep = True
    if keep:
        return False
    for _ in range(10):  # a process forking while we move it leaves a child behind
        pids = _processes(path, -1)
        if not pids:
            break
        for pid in pids:
            try:
                _write(f"{home}/cgroup.procs", b"%d" % pid)
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
        if not name.startswith(_PREFIX) or not name[len(_PREFIX) :].isdigit():
            continue
        path, rel = os.path.join(home, name), f"{home_rel.rstrip('/')}/{name}"
        if int(name[len(_PREFIX) :]) == os.getpid() or _owner_alive(path, rel):
            continue
        if _clean(path, rel, home):
            removed += 1
    return removed


# -- the process-wide state ---------------------------------------------------------------

_lock = threading.Lock()
_mode: str | None = None  # None: not decided yet (MODE_ENV, then "auto")
_subtree: Subtree | None = None
_probed = False  # auto mode tried to make a subtree (successfully or not)
_why = ""  # why we fell back to the process tree


def _create() -> Subtree | None:
    global _why
    found = _mount()
    if found is None:
        _why = "no cgroup2 mount"
        return None
    mountpoint, mount_root = found
    rel = _cgroup_of("self")
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


def release_tree_tracking() -> None:
    """Remove our subtree now (survivors are moved out, never killed); done at exit too."""
    global _subtree, _probed
    with _lock:
        tree, _subtree = _subtree, None
        _probed = False
    if tree is not None:
        tree.release()


def _release_at_exit() -> None:
    if _subtree is not None and _subtree.path.endswith(f"{_PREFIX}{os.getpid()}"):
        release_tree_tracking()


def _forget_in_child() -> None:
    # A forked copy of us is not the owner: it must neither use nor remove our subtree.
    global _subtree, _probed
    _subtree = None
    _probed = False


os.register_at_fork(after_in_child=_forget_in_child)

"""The Process class: one supervised child, from spawn to reap.

Process is built in layers that share one set of slots (``_process_fields``): reaping and
waiting (``_process_exit``), signals and the graceful stop (``_process_stop``), and, here,
the options, the spawn and what is left: identity, status, ``info()`` and ``close()``. The
spawn path is this module's ``spawn`` calling ``_spawn.launch`` inside the cgroup leaf.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from . import _cgroup
from ._errors import ProcessStateError, SpawnError
from ._process_stop import Stopping
from ._reaping import registry
from ._smalltable import kill_all
from ._spawn import Launched, SpawnPlan, launch, launch_many, plan_spawn

__all__ = ["Process", "RUNNING", "DEAD_OR_ZOMBIE", "UNEXISTING", "OTHER"]

# Upstream's status constants.
RUNNING = 0
DEAD_OR_ZOMBIE = 1
UNEXISTING = 2
OTHER = 3


class Process(Stopping):
    """One child process, spawned in its own session, reaped through its pidfd.

    The constructor keeps upstream Circus's keywords (positional order included), so code
    written against ``circus.process.Process`` keeps working. With ``spawn=True`` (the default)
    the child is started at once; :class:`SpawnError` means nothing was left behind.

    Args:
        name: label (the watcher's name).
        wid: worker id, available as ``$(circus.wid)``.
        cmd: the command line (shlex-split) or, with ``shell``, the shell text.
        args: extra arguments, a string (shlex-split) or a list.
        working_dir: the child's cwd.
        shell: run through ``/bin/sh -c``; ``shell_args`` are appended after the text.
        uid, gid: user/group by name or number (needs root); supplementary groups follow uid.
        env: the child's environment, exactly (nothing inherited unless ``copy_env``).
        rlimits: ``{name: value}``; soft = hard = value; empty/-1 = infinity.
        executable: program to exec instead of argv[0] (argv[0] is kept).
        use_fds: pass the ``sockets`` fds to the child (nothing else leaks in any case).
        watcher: the owning watcher, kept for callers.
        pipe_stdout, pipe_stderr: capture the stream through a pipe (``.stdout``/``.stderr``).
        close_child_stdin/stdout/stderr: connect that stream to /dev/null.
        umask: the child's umask (int, or octal string).
        sockets: ``{name: fd}`` for ``$(circus.sockets.NAME)`` and ``use_fds``.
        stdin_fd: an fd to become the child's stdin (upstream's ``stdin_socket``).
        template_vars: extra ``$(circus.KEY)`` values.
        copy_env: start from this process's environment.
        exact_tree: when trees are tracked with cgroup2 (see ``tree_tracking()``), give the
            child a cgroup leaf of its own, so that ``stop(stop_children=True)`` ends exactly
            what it and its descendants started. False saves the ~0.17 ms a leaf costs per
            spawn on average; the tree is then found through /proc (as without cgroups).

    ``env`` and ``template_vars`` are copied, except a read-only ``types.MappingProxyType``,
    which is kept as given: a manager running thousands of children passes one shared view.
    """

    __slots__ = ()  # all in ProcessFields

    def __init__(
        self,
        name: str,
        wid: int,
        cmd: str,
        args: str | Sequence[str] | None = None,
        working_dir: str | os.PathLike[str] | None = None,
        shell: bool = False,
        uid: int | str | None = None,
        gid: int | str | None = None,
        env: Mapping[str, object] | None = None,
        rlimits: Mapping[str, object] | None = None,
        executable: str | None = None,
        use_fds: bool = False,
        watcher: Any = None,
        spawn: bool = True,
        pipe_stdout: bool = True,
        pipe_stderr: bool = True,
        close_child_stdin: bool = True,
        close_child_stdout: bool = False,
        close_child_stderr: bool = False,
        *,
        umask: int | str | None = None,
        shell_args: str | Sequence[str] | None = None,
        sockets: Mapping[str, int] | None = None,
        stdin_fd: int | None = None,
        template_vars: Mapping[str, object] | None = None,
        copy_env: bool = False,
        exact_tree: bool = True,
    ) -> None:
        self.name = name
        self.wid = wid
        self.cmd = cmd
        self.args = args
        self.working_dir = working_dir
        self.shell = shell
        self.shell_args = shell_args
        self.uid = uid
        self.gid = gid
        self.env = _shared_or_copy(env)
        # empty: one shared read-only mapping, not a dict per child (thousands of children)
        self.rlimits = dict(rlimits) if rlimits else _EMPTY
        self.executable = executable
        self.use_fds = use_fds
        self.watcher = watcher
        self.pipe_stdout = pipe_stdout
        self.pipe_stderr = pipe_stderr
        self.close_child_stdin = close_child_stdin
        self.close_child_stdout = close_child_stdout
        self.close_child_stderr = close_child_stderr
        self.umask = umask
        self.sockets = dict(sockets) if sockets else _EMPTY
        self.stdin_fd = stdin_fd
        self.template_vars = _shared_or_copy(template_vars)
        self.copy_env = copy_env
        self.exact_tree = exact_tree

        self.pid = None
        self.pidfd = None
        self.started = None
        self.returncode = None
        self.stdout = None
        self.stderr = None
        self.argv = []
        self.child_env = _EMPTY
        # Empty tuples until used (the close hooks stay a tuple): thousands of children.
        self._exit_callbacks = ()
        self._waiters = ()
        self._watch_loop = None
        self._watch_undo = None
        self._sigchld_cb = None
        self._close_hooks = ()
        self._psutil = None
        self._ps_create_time = None
        self._in_exit_event = False
        self._cgroup = None
        self._foreign = False
        self._start_ticks = None
        if spawn:
            self.spawn()

    def __repr__(self) -> str:
        state = "new" if self.pid is None else f"pid={self.pid} rc={self.returncode}"
        return f"<Process {self.name}#{self.wid} {state}>"

    # -- attaching ----------------------------------------------------------------------------

    @classmethod
    def attach(
        cls,
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
        """Supervise the running process ``pid`` as if it had been spawned here.

        The process must still be the one started at kernel tick ``start_time`` (see
        :attr:`start_time`, :func:`process_start_time`); a reused pid is refused. It is held
        through a pidfd from then on: signals, ``stop``/``astop`` (with its whole tree),
        ``add_exit_callback``/``wait_async`` and ``info()`` work as on a spawned Process.

        A child of this process (after an exec of the daemon) is reaped with its exit
        status. A non-child's exit is seen on its pidfd, but its status belongs to its
        parent: ``returncode`` is the exit code read from its zombie when the kernel still
        shows one, else :data:`UNKNOWN_RETURNCODE` (255). See :attr:`is_child`.

        Args:
            pid, start_time: the process, and its start time in clock ticks since boot.
            name, wid, cmd, watcher: as for the constructor (labels only: nothing is run).
            started: its spawn time (epoch seconds); default: computed from ``start_time``.
            stdout, stderr: read ends of pipes its output still flows into; they become
                this object's (closed by :meth:`close`).
            cgroup: the cgroup2 leaf it was spawned in; used for the tree stop only if the
                process is in it now (kept from the sweep of dead daemons' subtrees);
                otherwise its tree is found through /proc.
            env: its environment as it was spawned with (used to attribute orphans).
            argv: its command line; default: read from /proc.

        Raises:
            ProcessGoneError: no such process, a reused pid, or it has already exited.
            ProcessError: pidfds are not available, or the pidfd cannot be opened.
        """
        from ._attach import attach

        return attach(
            cls,
            pid,
            start_time,
            name=name,
            wid=wid,
            cmd=cmd,
            started=started,
            stdout=stdout,
            stderr=stderr,
            cgroup=cgroup,
            env=env,
            argv=argv,
            watcher=watcher,
        )

    @property
    def is_child(self) -> bool:
        """Whether the process is a child of this one (its exit status can be collected)."""
        return not self._foreign

    @property
    def start_time(self) -> int | None:
        """The kernel start time (clock ticks since boot), read once; None before spawn or
        when the process was reaped before it was first asked."""
        if self._start_ticks is None and self.pid is not None and self.returncode is None:
            from ._attach import process_start_time

            self._start_ticks = process_start_time(self.pid)
        return self._start_ticks

    # -- spawning -----------------------------------------------------------------------------

    def format_args(self) -> list[str]:
        """The argv the child gets (or got), after substitution; validates the options."""
        if self.argv:
            return list(self.argv)
        return self._plan().argv

    def _plan(self) -> SpawnPlan:
        return plan_spawn(
            cmd=self.cmd,
            args=self.args,
            wid=self.wid,
            working_dir=self.working_dir,
            shell=self.shell,
            shell_args=self.shell_args,
            uid=self.uid,
            gid=self.gid,
            env=self.env,
            copy_env=self.copy_env,
            rlimits=self.rlimits,
            executable=self.executable,
            use_fds=self.use_fds,
            sockets=self.sockets,
            template_vars=self.template_vars,
            umask=self.umask,
            stdin_fd=self.stdin_fd,
            close_child_stdin=self.close_child_stdin,
            close_child_stdout=self.close_child_stdout,
            close_child_stderr=self.close_child_stderr,
            pipe_stdout=self.pipe_stdout,
            pipe_stderr=self.pipe_stderr,
        )

    def spawn(self) -> None:
        """Start the child. Raises SpawnError (nothing left behind), or ProcessStateError if
        it was already started."""
        if self.pid is not None:
            raise ProcessStateError(f"{self!r} was already spawned")
        plan = self._plan()
        leaf = _cgroup.new_leaf() if self.exact_tree else None
        if leaf is None:  # no leaf to enter: nothing to undo either (a respawn's usual case)
            self._launched(plan, launch(plan))
            return
        try:
            # Our thread is in the leaf for the fork: the child is born there, before it runs.
            with _cgroup.Entered(leaf) as leaf:
                # a child born in a leaf must be forked by this (entered) thread
                launched = launch(plan, any_thread=leaf is None)
        except BaseException:
            if leaf is not None:
                leaf.remove()
            raise
        self._cgroup = leaf
        self._launched(plan, launched)

    def _launched(self, plan: SpawnPlan, launched: Launched) -> None:
        self.started = time.time()
        self.pid = launched.pid
        self.stdout = launched.stdout
        self.stderr = launched.stderr
        self.argv = plan.argv
        self.child_env = plan.env
        try:
            self.pidfd = os.pidfd_open(launched.pid)
        except (AttributeError, OSError):
            self.pidfd = None  # old kernel: waitpid and SIGCHLD fallbacks
        registry[launched.pid] = self

    @staticmethod
    def spawn_many(processes: Sequence[Process]) -> list[SpawnError | None]:
        """Start each of ``processes`` (made with ``spawn=False``), in order, as
        :meth:`spawn` would, for less per child (``launch_many``: one status read, one
        hand-over of the whole batch to the spawn thread once the table is large).

        Returns, per process, ``None`` (started) or the :class:`SpawnError` it failed with
        (nothing left behind for it; the others are still started). A process that needs a
        cgroup leaf of its own (``exact_tree`` with cgroup tracking on) is spawned alone.

        Raises:
            ProcessStateError: one of them was already spawned (nothing was started).
        """
        for proc in processes:
            if proc.pid is not None:
                raise ProcessStateError(f"{proc!r} was already spawned")
        errors: list[SpawnError | None] = [None] * len(processes)
        batch: list[tuple[int, Process, SpawnPlan]] = []
        leaves: bool | None = None  # asked only for a process that wants a leaf
        for index, proc in enumerate(processes):
            try:
                if proc.exact_tree and leaves is None:
                    leaves = _cgroup.tree_tracking() != _cgroup.PROCESS_TREE
                if proc.exact_tree and leaves:
                    proc.spawn()
                else:
                    batch.append((index, proc, proc._plan()))
            except SpawnError as exc:
                errors[index] = exc
        results = launch_many([plan for _, _, plan in batch])
        try:
            for (index, proc, plan), result in zip(batch, results, strict=True):
                if isinstance(result, SpawnError):
                    errors[index] = result
                else:
                    proc._launched(plan, result)
        except BaseException:  # a signal handler's: nobody will own the batch's children
            _abandon(
                [
                    (proc, r)
                    for (_, proc, _), r in zip(batch, results, strict=True)
                    if isinstance(r, Launched)
                ]
            )
            raise
        return errors

    # -- state --------------------------------------------------------------------------------

    @property
    def cgroup(self) -> str | None:
        """The cgroup2 leaf holding the child and all it forks, or None (not tracked so).

        See ``tree_tracking()``; the leaf is removed once the tree is stopped or closed.
        """
        return None if self._cgroup is None else self._cgroup.path

    def age(self) -> float:
        """Seconds since the child was spawned (0 before spawn)."""
        return 0.0 if self.started is None else time.time() - self.started

    @property
    def status(self) -> int:
        """Upstream's status constant: RUNNING, DEAD_OR_ZOMBIE or UNEXISTING."""
        if self.pid is None:
            return UNEXISTING
        return RUNNING if self.is_alive() else DEAD_OR_ZOMBIE

    # -- introspection ------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Upstream's ``stats``/``info`` dict for this process (via psutil).

        Keys: mem_info1, mem_info2, cpu, mem, ctime, pid, username, nice, create_time, age,
        started, cmdline, children, wid; a field psutil may not read is ``"N/A"``.

        Raises:
            ProcessGoneError: the process is gone (message: upstream's "No such process
                (stopped?)").
        """
        from ._info import process_info

        return process_info(self)

    # -- cleanup ------------------------------------------------------------------------------

    def _add_close_hook(self, hook: Callable[[Process], None]) -> None:
        """Let an owner of our pipe fds (the redirector) let go of them before we close."""
        # a tuple, remade on change: one or two hooks, a list's spare room per child
        self._close_hooks = (*self._close_hooks, hook)

    def _remove_close_hook(self, hook: Callable[[Process], None]) -> None:
        hooks = list(self._close_hooks)
        if hook in hooks:
            hooks.remove(hook)
            self._close_hooks = tuple(hooks)

    def close(self) -> None:
        """Release the pipes and the pidfd. Does not stop or reap the child."""
        # Straight-line: a stop of 1,000 closes 1,000 of these after the last exit.
        hooks = self._close_hooks
        if hooks:
            self._close_hooks = ()
            for hook in hooks:
                hook(self)
        fd = self.stdout
        if fd is not None:
            self.stdout = None
            os.close(fd)
        fd = self.stderr
        if fd is not None:
            self.stderr = None
            os.close(fd)
        if self._watch_undo is not None:
            self._unwatch()
        fd = self.pidfd
        if fd is not None:
            self.pidfd = None
            os.close(fd)
        if self._cgroup is not None:
            self._release_leaf()

    def __del__(self) -> None:
        # A forgotten Process must not leak its fds; the child itself stays ours to reap
        # through reap_orphans() (it is no longer in the registry once we are gone).
        fds: tuple[int | None, ...]
        try:
            fds = (self.stdout, self.stderr, self.pidfd)
        except AttributeError:  # __init__ did not get that far
            fds = tuple(getattr(self, attr, None) for attr in ("stdout", "stderr", "pidfd"))
        if fds == (None, None, None):
            return  # closed (a stop of 1,000 frees 1,000 of these at once)
        for fd in fds:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _shared_or_copy(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if isinstance(mapping, MappingProxyType):
        return mapping
    return dict(mapping) if mapping else {}


def _abandon(launched: list[tuple[Process, Launched]]) -> None:
    """Kill and reap the children of an interrupted batch, close what each holds and leave
    its Process unspawned (nothing else will own them)."""
    kill_all(r.pid for _, r in launched)
    for proc, r in launched:
        fds = {r.stdout, r.stderr}
        if proc.pid == r.pid:
            registry.pop(r.pid, None)
            fds |= {proc.stdout, proc.stderr, proc.pidfd}
            proc.pid = proc.stdout = proc.stderr = proc.pidfd = None
        for fd in fds - {None}:
            with contextlib.suppress(OSError):
                os.close(fd)  # type: ignore[arg-type]

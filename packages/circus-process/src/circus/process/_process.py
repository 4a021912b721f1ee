"""The Process class: one supervised child, from spawn to reap."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from . import _cgroup, _mux
from ._errors import ProcessStateError
from ._exitwatch import unwatch_exit, watch_exit
from ._reaping import registry, try_reap
from ._spawn import SpawnPlan, launch, plan_spawn
from ._tree import ProcessTree, is_subreaper

__all__ = ["Process", "RUNNING", "DEAD_OR_ZOMBIE", "UNEXISTING", "OTHER"]

# Upstream's status constants.
RUNNING = 0
DEAD_OR_ZOMBIE = 1
UNEXISTING = 2
OTHER = 3

ExitCallback = Callable[["Process"], None]


class Process:
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

    __slots__ = (
        "name",
        "wid",
        "cmd",
        "args",
        "working_dir",
        "shell",
        "shell_args",
        "uid",
        "gid",
        "env",
        "rlimits",
        "executable",
        "use_fds",
        "watcher",
        "pipe_stdout",
        "pipe_stderr",
        "close_child_stdin",
        "close_child_stdout",
        "close_child_stderr",
        "umask",
        "sockets",
        "stdin_fd",
        "template_vars",
        "copy_env",
        "exact_tree",
        "pid",
        "pidfd",
        "started",
        "returncode",
        "stdout",
        "stderr",
        "argv",
        "child_env",
        "_exit_callbacks",
        "_waiters",
        "_watch_loop",
        "_watch_undo",
        "_sigchld_cb",
        "_close_hooks",
        "_psutil",
        "_ps_create_time",
        "_in_exit_event",
        "_cgroup",
        "__weakref__",
    )

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
        self.rlimits = dict(rlimits) if rlimits else {}
        self.executable = executable
        self.use_fds = use_fds
        self.watcher = watcher
        self.pipe_stdout = pipe_stdout
        self.pipe_stderr = pipe_stderr
        self.close_child_stdin = close_child_stdin
        self.close_child_stdout = close_child_stdout
        self.close_child_stderr = close_child_stderr
        self.umask = umask
        self.sockets = dict(sockets) if sockets else {}
        self.stdin_fd = stdin_fd
        self.template_vars = _shared_or_copy(template_vars)
        self.copy_env = copy_env
        self.exact_tree = exact_tree

        self.pid: int | None = None
        self.pidfd: int | None = None
        self.started: float | None = None
        self.returncode: int | None = None
        self.stdout: int | None = None
        self.stderr: int | None = None
        self.argv: list[str] = []
        self.child_env: Mapping[str, str] = _EMPTY
        # The three lists are an empty tuple until used: thousands of children, little memory.
        self._exit_callbacks: list[tuple[asyncio.AbstractEventLoop, ExitCallback]] | tuple[()] = ()
        self._waiters: list[asyncio.Future[int]] | tuple[()] = ()
        self._watch_loop: asyncio.AbstractEventLoop | None = None
        self._watch_undo: Callable[[], None] | None = None
        self._sigchld_cb: Callable[[], None] | None = None
        self._close_hooks: list[Callable[[Process], None]] | tuple[()] = ()
        self._psutil: Any = None
        self._ps_create_time: float | None = None
        self._in_exit_event = False
        self._cgroup: _cgroup.Leaf | None = None
        if spawn:
            self.spawn()

    def __repr__(self) -> str:
        state = "new" if self.pid is None else f"pid={self.pid} rc={self.returncode}"
        return f"<Process {self.name}#{self.wid} {state}>"

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
        try:
            # Our thread is in the leaf for the fork: the child is born there, before it runs.
            with _cgroup.Entered(leaf) as leaf:
                launched = launch(plan)
        except BaseException:
            if leaf is not None:
                leaf.remove()
            raise
        self._cgroup = leaf
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

    # -- state --------------------------------------------------------------------------------

    def _require_pid(self) -> int:
        if self.pid is None:
            raise ProcessStateError(f"{self!r} was not spawned")
        return self.pid

    @property
    def cgroup(self) -> str | None:
        """The cgroup2 leaf holding the child and all it forks, or None (not tracked so).

        See ``tree_tracking()``; the leaf is removed once the tree is stopped or closed.
        """
        return None if self._cgroup is None else self._cgroup.path

    def age(self) -> float:
        """Seconds since the child was spawned (0 before spawn)."""
        return 0.0 if self.started is None else time.time() - self.started

    def poll(self) -> int | None:
        """Reap the child if it has exited (never blocks); return its returncode or None."""
        if self.returncode is not None or self.pid is None:
            return self.returncode
        rc = try_reap(self.pid, self.pidfd)
        if rc is not None:
            self._reaped(rc)
        return self.returncode

    def is_alive(self) -> bool:
        """True while the child has not been reaped and has not exited."""
        return self.pid is not None and self.poll() is None

    @property
    def status(self) -> int:
        """Upstream's status constant: RUNNING, DEAD_OR_ZOMBIE or UNEXISTING."""
        if self.pid is None:
            return UNEXISTING
        return RUNNING if self.is_alive() else DEAD_OR_ZOMBIE

    def wait(self, timeout: float | None = None) -> int:
        """Block until the child exits and is reaped; return its returncode.

        Raises:
            TimeoutError: still running after ``timeout`` seconds.
        """
        pid = self._require_pid()
        if self.poll() is not None:
            return self.returncode  # type: ignore[return-value]
        if timeout is None:
            self._reaped(try_reap(pid, self.pidfd, block=True))  # type: ignore[arg-type]
            return self.returncode  # type: ignore[return-value]
        deadline = time.monotonic() + timeout
        if self.pidfd is not None:
            poller = select.poll()
            poller.register(self.pidfd, select.POLLIN)
            while self.poll() is None:
                remaining = deadline - time.monotonic()
                expired = remaining <= 0 or not poller.poll(remaining * 1000)
                if expired and self.poll() is None:
                    raise TimeoutError(f"{self!r} still running after {timeout}s")
            return self.returncode  # type: ignore[return-value]
        delay = 0.0005  # no pidfd: back off like Popen.wait does
        while self.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self!r} still running after {timeout}s")
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.05)
        return self.returncode  # type: ignore[return-value]

    # -- asyncio ------------------------------------------------------------------------------

    def _ensure_watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._watch_undo is not None:
            if self._watch_loop is loop:
                return
            if self._watch_loop is not None and not self._watch_loop.is_closed():
                raise ProcessStateError(f"{self!r} is already watched by another event loop")
            self._unwatch()
        self._watch_loop = loop
        if self.pidfd is not None:
            # Straight into the loop's epoll set: no undo closure to keep per child.
            _mux.mux_for(loop).add(self.pidfd, self._on_exit_event)
            self._watch_undo = _PIDFD_WATCHED
        else:
            self._watch_undo = watch_exit(loop, self, self._on_exit_event)

    def _unwatch(self) -> None:
        undo, self._watch_undo = self._watch_undo, None
        if undo is _PIDFD_WATCHED:
            if self._watch_loop is not None and self.pidfd is not None:
                _mux.release(self._watch_loop, self.pidfd)
        else:
            unwatch_exit(undo)

    def _on_exit_event(self) -> None:
        # Called by the loop itself: exit callbacks may run right here instead of one more
        # loop iteration later (what respawn latency is made of).
        self._in_exit_event = True
        try:
            self.poll()
        finally:
            self._in_exit_event = False

    def add_exit_callback(self, cb: ExitCallback) -> None:
        """Call ``cb(process)`` once, on the running asyncio loop, after the child is reaped.

        Death is noticed by events (pidfd reader, or SIGCHLD), never by polling. A callback
        added after the exit is scheduled at once.
        """
        self._require_pid()
        loop = asyncio.get_running_loop()
        if self.returncode is not None:
            loop.call_soon(cb, self)
            return
        if not self._exit_callbacks:
            self._exit_callbacks = []
        self._exit_callbacks.append((loop, cb))
        self._ensure_watch(loop)

    async def wait_async(self) -> int:
        """Await the child's exit (event-driven) and return its returncode."""
        self._require_pid()
        if self.poll() is not None:
            return self.returncode  # type: ignore[return-value]
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        if not self._waiters:
            self._waiters = []
        self._waiters.append(fut)
        self._ensure_watch(loop)
        try:
            return await fut
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)  # type: ignore[union-attr]

    def _reaped(self, rc: int) -> None:
        self.returncode = rc
        if self.pid is not None and registry.get(self.pid) is self:
            del registry[self.pid]
        self._unwatch()
        self._sigchld_cb = None
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        for fut in self._waiters:
            if not fut.done():
                _call_on(fut.get_loop(), _set_result, fut, rc)
        callbacks, self._exit_callbacks = self._exit_callbacks, ()
        inline = self._in_exit_event
        for loop, cb in callbacks:
            if inline and loop is self._watch_loop:
                try:
                    cb(self)
                except Exception as exc:
                    loop.call_exception_handler(
                        {"message": f"exit callback {cb!r} failed", "exception": exc}
                    )
            else:
                _call_on(loop, cb, self)

    # -- signals and stopping -----------------------------------------------------------------

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
                pid, started=self.started or 0.0, env=self.child_env, with_orphans=is_subreaper()
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
            if self.returncode is None or (stop_children and tree.alive()):
                self._stop_kill(tree, stop_children)
                self.wait()
                tree.wait(5.0)
            tree.reap()
        finally:
            tree.close()
        self._drop_empty_leaf()
        return self.returncode  # type: ignore[return-value]

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
            if self.returncode is None or (stop_children and tree.alive()):
                self._stop_kill(tree, stop_children)
                await self.wait_async()
                await tree.wait_async(5.0)
            tree.reap()
        finally:
            tree.close()
        self._drop_empty_leaf()
        return self.returncode  # type: ignore[return-value]

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

    # -- introspection ------------------------------------------------------------------------

    def children(self) -> list[int]:
        """Pids of the direct children of the child (empty once it is gone)."""
        from ._info import children_pids

        return children_pids(self)

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
        if not self._close_hooks:
            self._close_hooks = []
        self._close_hooks.append(hook)

    def _remove_close_hook(self, hook: Callable[[Process], None]) -> None:
        if hook in self._close_hooks:
            self._close_hooks.remove(hook)  # type: ignore[union-attr]

    def close(self) -> None:
        """Release the pipes and the pidfd. Does not stop or reap the child."""
        hooks, self._close_hooks = self._close_hooks, ()
        for hook in hooks:
            hook(self)
        for attr in ("stdout", "stderr"):
            fd = getattr(self, attr)
            if fd is not None:
                setattr(self, attr, None)
                os.close(fd)
        self._unwatch()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self._release_leaf()

    def __del__(self) -> None:
        # A forgotten Process must not leak its fds; the child itself stays ours to reap
        # through reap_orphans() (it is no longer in the registry once we are gone).
        for attr in ("stdout", "stderr", "pidfd"):
            fd = getattr(self, attr, None)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _PIDFD_WATCHED() -> None:  # noqa: N802 - a marker: "watched through the loop's mux"
    """Marks a pidfd watched in the loop's epoll set (undone by ``Process._unwatch``)."""


def _shared_or_copy(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if isinstance(mapping, MappingProxyType):
        return mapping
    return dict(mapping) if mapping else {}


def _set_result(fut: asyncio.Future[int], rc: int) -> None:
    if not fut.done():
        fut.set_result(rc)


def _call_on(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """Schedule ``fn(*args)`` on ``loop`` from whatever thread we are in."""
    if loop.is_closed():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        loop.call_soon(fn, *args)
    else:
        loop.call_soon_threadsafe(fn, *args)

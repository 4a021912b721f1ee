"""The state of one :class:`~circus.process.Process`: its slots, what each holds, one guard.

:class:`~circus.process.Process` is assembled from three parts that share this state: the
options and the spawn (``_process``), noticing and awaiting the exit (``_process_exit``),
signals and the graceful stop (``_process_stop``). Slots only, no instance ``__dict__``: a
manager holds thousands of these.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import ProcessStateError

if TYPE_CHECKING:
    from ._cgroup_leaf import Leaf
    from ._process import Process

__all__ = ["ProcessFields"]


class ProcessFields:
    """The slots of a Process, typed; :meth:`_require_pid` is the guard every part uses."""

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
        "_foreign",
        "_start_ticks",
        "__weakref__",
    )

    # The options (see Process).
    name: str
    wid: int
    cmd: str
    args: str | Sequence[str] | None
    working_dir: str | os.PathLike[str] | None
    shell: bool
    shell_args: str | Sequence[str] | None
    uid: int | str | None
    gid: int | str | None
    env: Mapping[str, Any]
    rlimits: Mapping[str, object]
    executable: str | None
    use_fds: bool
    watcher: Any
    pipe_stdout: bool
    pipe_stderr: bool
    close_child_stdin: bool
    close_child_stdout: bool
    close_child_stderr: bool
    umask: int | str | None
    sockets: Mapping[str, int]
    stdin_fd: int | None
    template_vars: Mapping[str, Any]
    copy_env: bool
    exact_tree: bool

    # What the spawn gave (None before it) and the exit status (None while running).
    pid: int | None
    pidfd: int | None
    started: float | None
    returncode: int | None
    stdout: int | None
    stderr: int | None
    argv: list[str]
    child_env: Mapping[str, str]

    # Who waits for the exit: empty tuples until used (the callbacks stay a flat tuple),
    # thousands of children, little memory.
    _exit_callbacks: tuple[Any, ...]  # loop, callback, loop, callback, ...
    _waiters: list[asyncio.Future[int]] | tuple[()]
    _watch_loop: asyncio.AbstractEventLoop | None
    _watch_undo: Callable[[], None] | None
    _sigchld_cb: Callable[[], None] | None
    _in_exit_event: bool

    # Owners of our pipe fds, psutil's view (made by info()), the cgroup leaf.
    _close_hooks: tuple[Callable[[Process], None], ...]
    _psutil: Any
    _ps_create_time: float | None
    _cgroup: Leaf | None

    # Attached (``Process.attach``) rather than spawned: a non-child, whose exit is seen on
    # its pidfd; the kernel start time (clock ticks since boot), read once when asked.
    _foreign: bool
    _start_ticks: int | None

    def _require_pid(self) -> int:
        if self.pid is None:
            raise ProcessStateError(f"{self!r} was not spawned")
        return self.pid

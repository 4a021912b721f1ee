"""The seam between a watcher and ``circus.process``: what a process must offer, and how
a watcher's options become one ``Process``.

``ProcessLike`` lists exactly what the watcher uses, so the dependency on the lower layer
is visible in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

__all__ = [
    "ProcessFactory",
    "ProcessLike",
    "close_process",
    "batchable",
    "make_process",
    "make_processes",
    "process_status",
    "socket_fd",
]

from ._child_sockets import SpawnSockets, socket_fd
from ._errors import WatcherError

if TYPE_CHECKING:
    from ._watcher import Watcher

logger = logging.getLogger("circus.watcher")


class ProcessLike(Protocol):
    """The part of ``circus.process.Process`` a watcher relies on."""

    pid: int
    wid: int
    started: float
    returncode: int | None
    stdout: int | None
    stderr: int | None

    def send_signal(self, signum: int, *, children: bool = ..., recursive: bool = ...) -> None: ...

    def add_exit_callback(self, cb: Callable[[Any], None]) -> None: ...

    def children(self) -> list[int]: ...

    async def astop(
        self, graceful_timeout: float = ..., stop_signal: int = ..., stop_children: bool = ...
    ) -> int: ...

    def info(self) -> dict[str, Any] | str: ...

    def close(self) -> None: ...


#: ``factory(watcher, wid)`` returning a spawned process; the default builds a ``Process``.
ProcessFactory = Callable[["Watcher", int], ProcessLike]


def process_status(returncode: int | None) -> int | None:
    """A wait()-style status word for ``after_reap`` (upstream passes the raw status)."""
    if returncode is None:
        return None
    return -returncode if returncode < 0 else returncode << 8


def close_process(proc: ProcessLike) -> None:
    """Release a dead process's pipes and pidfd, whatever happens."""
    try:
        proc.close()
    except Exception:
        logger.debug("closing process %s failed", proc.pid, exc_info=True)


def make_process(watcher: Watcher, wid: int) -> ProcessLike:
    """Spawn one ``circus.process.Process`` for ``watcher`` with worker id ``wid``.

    Raises:
        circus.process.SpawnError: the child could not be started (nothing left behind).
        WatcherError: ``stdin_socket`` names no socket of the watcher.
    """
    if watcher._factory is not None:
        return watcher._factory(watcher, wid)
    o = watcher.settings
    stdin_name = o.stdin_socket
    if not stdin_name and not watcher.sockets:
        return _spawn(watcher, wid, {}, None)  # a respawn's usual case: no socket to hand
    if stdin_name and stdin_name not in watcher.sockets:
        raise WatcherError(f"watcher {watcher.name!r}: stdin_socket {stdin_name!r} is not a socket")
    command = " ".join(str(part) for part in (o.cmd, o.args) if part)
    # Per-child SO_REUSEPORT sockets are closed here once the child holds its copy.
    with SpawnSockets(watcher.sockets, command, (stdin_name,) if stdin_name else ()) as spawn:
        return _spawn(watcher, wid, spawn.fds, spawn.fds[stdin_name] if stdin_name else None)


def batchable(watcher: Watcher) -> bool:
    """Whether :func:`make_processes` may start ``watcher``'s processes together: the default
    factory, no sockets, no per-process health channel."""
    return watcher._factory is None and not watcher.sockets and not watcher._health.configured


def make_processes(watcher: Watcher, count: int) -> list[ProcessLike | Exception]:
    """Spawn ``count`` processes of a :func:`batchable` watcher in one batch
    (``Process.spawn_many``), each with a fresh worker id: per process, in order, the
    process or what its spawn raised (its worker id released, nothing left behind)."""
    from circus.process import Process

    wids = watcher._procs.wids
    procs: list[Any] = []
    pipes = watcher._output.pipes(count)  # one decision for the batch: none is open yet
    try:
        for _ in range(count):
            wid = wids.acquire()
            try:
                procs.append(_spawn(watcher, wid, {}, None, spawn=False, pipes=pipes))
            except BaseException:
                wids.release(wid)
                raise
        errors: list[Any] = Process.spawn_many(procs)
    except BaseException:
        for proc in procs:
            wids.release(proc.wid)
        raise
    out: list[ProcessLike | Exception] = []
    for proc, error in zip(procs, errors, strict=True):
        if error is None:
            out.append(cast(ProcessLike, proc))
        else:
            wids.release(proc.wid)
            out.append(error)
    return out


def _spawn(
    watcher: Watcher,
    wid: int,
    sockets: dict[str, int],
    stdin_fd: int | None,
    spawn: bool = True,
    pipes: tuple[bool, bool] | None = None,
) -> ProcessLike:
    from circus.process import Process

    o = watcher.settings
    pipe_stdout, pipe_stderr = watcher._output.pipes() if pipes is None else pipes
    env = watcher._inputs.env()
    extra = watcher._health.spawn_env()  # a notify socket of its own, if configured
    if extra:
        env = {**env, **extra}
    try:
        proc = Process(
            watcher.name,
            wid,
            o.cmd,
            args=o.args,
            working_dir=o.working_dir,
            shell=o.shell,
            uid=o.uid,
            gid=o.gid,
            env=env,
            rlimits=o.rlimits or None,
            executable=o.executable,
            use_fds=o.use_sockets,
            watcher=watcher,
            spawn=spawn,
            pipe_stdout=pipe_stdout,
            pipe_stderr=pipe_stderr,
            close_child_stdin=o.close_child_stdin,
            close_child_stdout=o.close_child_stdout,
            close_child_stderr=o.close_child_stderr,
            umask=o.umask,
            shell_args=o.shell_args,
            sockets=sockets,
            stdin_fd=stdin_fd,
            template_vars=watcher._inputs.template(),
            copy_env=False,
            # A cgroup leaf per child (~0.17 ms a spawn) only where stop promises the tree.
            exact_tree=bool(o.stop_children),
        )
    except BaseException:
        watcher._health.drop_pending()
        raise
    return cast(ProcessLike, proc)

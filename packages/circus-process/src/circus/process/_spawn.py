"""Turning Process options into one ``subprocess.Popen`` call, fast and leak-free.

Everything that can be checked is checked here in the parent, before forking, so a bad
option raises SpawnError with no child and no fd left behind. The fork itself is CPython's
fork/exec primitive called directly (``_forkexec``; Popen on versions whose primitive is not
known), without ``preexec_fn`` unless rlimits are asked, or signals ignored or blocked here
must be reset for the child (``_sigreset``): ``setsid``, ``user``/``group``/
``extra_groups``, ``umask`` and ``pass_fds`` keep CPython on its vfork fast path (a Python
preexec_fn forbids vfork and runs interpreter code in the child). Once thousands of
descriptors are open, a plain spawn forks from a thread with a small table of its own
(``_smalltable``). :func:`launch_many` starts a batch (a watcher's start of many copies):
one status read, one ``/dev/null``, and the whole batch handed to that thread at once.
"""

from __future__ import annotations

import errno
import functools
import os
import resource
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import _fdlimit, _forkexec, _smalltable
from ._errors import SpawnError
from ._ids import (
    Identity,
    RLimit,
    check_working_dir,
    open_working_dir,
    parse_rlimits,
    parse_umask,
    resolve_identity,
)
from ._sigreset import inherited_signal_state, reset_signals, thread_status
from ._template import substitute

__all__ = [
    "DEFAULT_SPAWN_THREAD_FROM",
    "SpawnPlan",
    "Launched",
    "build_env",
    "build_argv",
    "plan_spawn",
    "launch",
    "launch_many",
    "set_spawn_thread",
    "spawn_thread",
]


def build_env(env: Mapping[str, object] | None, copy_env: bool) -> Mapping[str, str]:
    """The child's environment: exactly ``env``, on top of ours only when ``copy_env``.

    A read-only ``MappingProxyType`` of strings is returned as is (shared, never copied).
    """
    if (
        not copy_env
        and isinstance(env, MappingProxyType)
        and all(type(k) is str and type(v) is str for k, v in env.items())
    ):
        return env
    out: dict[str, str] = dict(os.environ) if copy_env else {}
    if env:
        for key, value in env.items():
            out[str(key)] = str(value)
    return out


@functools.lru_cache(maxsize=256)
def _shlex_split(text: str) -> tuple[str, ...]:
    # A watcher spawns the same command line over and over: split it once.
    return tuple(shlex.split(text))


def _split(value: str | Sequence[str] | None, subst: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return list(_shlex_split(subst(value)))
    return [subst(str(arg)) for arg in value]


def build_argv(
    cmd: str,
    args: str | Sequence[str] | None,
    *,
    shell: bool,
    shell_args: str | Sequence[str] | None,
    executable: str | None,
    wid: int,
    env: Mapping[str, str],
    sockets: Mapping[str, int],
    template_vars: Mapping[str, object],
) -> tuple[list[str], str]:
    """Return ``(argv, program)`` after substitution; ``program`` is what will be exec'd.

    Without shell: ``shlex.split(cmd) + shlex.split(args)``. With shell: ``/bin/sh -c
    "<cmd> <args>"`` followed by ``shell_args`` (which become ``$0``, ``$1``...); the cmd text is
    handed to the shell verbatim so pipes, ``&`` and ``;`` work (see README).
    """

    def subst(text: str) -> str:
        return substitute(text, wid=wid, env=env, sockets=sockets, template_vars=template_vars)

    if shell:
        line = subst(cmd)
        if isinstance(args, str) and args:
            line = f"{line} {subst(args)}"
        elif args:
            line = " ".join([line, *(shlex.quote(subst(str(a))) for a in args)])
        program = executable or "/bin/sh"
        return [program, "-c", line, *_split(shell_args, subst)], program
    try:
        argv = _split(cmd, subst) + _split(args, subst)
    except ValueError as exc:  # shlex: unbalanced quotes
        raise SpawnError("cmd", cmd, str(exc)) from None
    if not argv:
        raise SpawnError("cmd", cmd, "empty command")
    return argv, executable or argv[0]


def _resolve_program(program: str, option: str, env: Mapping[str, str], cwd: str | None) -> str:
    """Find ``program`` as execvpe will (the child's PATH), or raise SpawnError."""
    if "/" in program:
        path = program if cwd is None or os.path.isabs(program) else os.path.join(cwd, program)
        if not os.path.isfile(path):
            raise SpawnError(option, program, "no such file")
        if not os.access(path, os.X_OK):
            raise SpawnError(option, program, "not executable")
        return program
    path = os.pathsep.join(os.get_exec_path(env))
    key = (program, path)
    found = _FOUND.get(key)
    # A name found before is looked up again only when that file is gone or no longer
    # executable: a full PATH walk is a stat per directory on every spawn.
    if found is None or not (os.path.isfile(found) and os.access(found, os.X_OK)):
        found = _which(program, path)
        if found is None:
            _FOUND.pop(key, None)
            raise SpawnError(option, program, "not found on the child's PATH")
        if all(os.path.isabs(d) for d in path.split(os.pathsep)):
            if len(_FOUND) > 256:
                _FOUND.clear()
            _FOUND[key] = found  # relative PATH entries depend on our cwd: never kept
    return found


_FOUND: dict[tuple[str, str], str] = {}  # (program, PATH) -> where _which found it


def _which(program: str, path: str) -> str | None:
    """``shutil.which(program, path=path)`` for POSIX, without importing shutil: a daemon
    would otherwise load it (with bz2, lzma and fnmatch, half a MiB) only for this."""
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory, program)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


@dataclass(slots=True)
class SpawnPlan:
    """Everything needed to start one child, already validated.

    A plan may serve several spawns (:func:`plan_spawn` hands the same one out again for
    the same inputs): treat it, its ``argv`` and ``env`` included, as read-only.
    """

    argv: list[str]
    program: str
    env: Mapping[str, str]
    cwd: str | None
    identity: Identity
    umask: int
    rlimits: tuple[RLimit, ...]
    pass_fds: tuple[int, ...]
    stdin_fd: int | None
    close_child_stdin: bool
    close_child_stdout: bool
    close_child_stderr: bool
    pipe_stdout: bool
    pipe_stderr: bool
    options: dict[str, Any] = field(default_factory=dict)


def plan_spawn(
    *,
    cmd: str,
    args: str | Sequence[str] | None,
    wid: int,
    working_dir: str | os.PathLike[str] | None,
    shell: bool,
    shell_args: str | Sequence[str] | None,
    uid: int | str | None,
    gid: int | str | None,
    env: Mapping[str, object] | None,
    copy_env: bool,
    rlimits: Mapping[str, object] | None,
    executable: str | None,
    use_fds: bool,
    sockets: Mapping[str, int] | None,
    template_vars: Mapping[str, object] | None,
    umask: int | str | None,
    stdin_fd: int | None,
    close_child_stdin: bool,
    close_child_stdout: bool,
    close_child_stderr: bool,
    pipe_stdout: bool,
    pipe_stderr: bool,
) -> SpawnPlan:
    """Validate every option and compute the exact argv/env; raises SpawnError.

    A plan whose inputs are the same as a recent one's (a watcher respawning its command:
    the same strings, the same shared read-only environment view with the same items, no
    ``$(circus.*)`` token, no uid/gid, no copy of our own environment) is that plan again,
    once what can change on disk is checked again: the working directory and the program
    are looked at on every call, so a spawn whose directory or program is gone fails as
    it would have the first time.
    """
    key = _plan_key(cmd, args, shell, shell_args, uid, gid, env, copy_env, rlimits, executable,
                    use_fds, sockets, umask, stdin_fd, close_child_stdin, close_child_stdout,
                    close_child_stderr, pipe_stdout, pipe_stderr)  # fmt: skip
    if key is not None:
        cached = _PLANS.get(key)
        if cached is not None and cached[0] is env and cached[1] == (env or {}):
            plan = cached[2]
            # What can change outside our inputs, checked as the first plan checked it.
            if check_working_dir(working_dir, plan.identity) == plan.cwd and (
                _resolve_program(cached[3], cached[4], plan.env, plan.cwd) == plan.program
            ):
                _check_fds(sockets if use_fds else None, stdin_fd)
                return plan
    plan = _plan_spawn(
        cmd=cmd, args=args, wid=wid, working_dir=working_dir, shell=shell,
        shell_args=shell_args, uid=uid, gid=gid, env=env, copy_env=copy_env,
        rlimits=rlimits, executable=executable, use_fds=use_fds, sockets=sockets,
        template_vars=template_vars, umask=umask, stdin_fd=stdin_fd,
        close_child_stdin=close_child_stdin, close_child_stdout=close_child_stdout,
        close_child_stderr=close_child_stderr, pipe_stdout=pipe_stdout,
        pipe_stderr=pipe_stderr,
    )  # fmt: skip
    if key is not None:
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()
        # The mapping is kept alive with its entry (its id cannot be reused meanwhile) and
        # its items copied: a view whose dict changed is planned again.
        unresolved = executable or ("/bin/sh" if shell else plan.argv[0])
        _PLANS[key] = (env, dict(env or {}), plan, unresolved,
                       "executable" if executable else "cmd")  # fmt: skip
    return plan


# (inputs) -> (env mapping, a copy of its items, the plan, the program as named, its option)
_PLANS: dict[tuple[Any, ...], tuple[Any, dict[str, Any], SpawnPlan, str, str]] = {}
_PLANS_MAX = 128  # entries, each with a copy of its environment


def _plan_key(
    cmd: str,
    args: str | Sequence[str] | None,
    shell: bool,
    shell_args: str | Sequence[str] | None,
    uid: int | str | None,
    gid: int | str | None,
    env: Mapping[str, object] | None,
    copy_env: bool,
    rlimits: Mapping[str, object] | None,
    executable: str | None,
    use_fds: bool,
    sockets: Mapping[str, int] | None,
    umask: int | str | None,
    stdin_fd: int | None,
    *flags: bool,
) -> tuple[Any, ...] | None:
    """The cache key of a plan, or None when it must be made afresh each time: ids to
    resolve (the user database may change), a copy of our own environment (it may change),
    an environment that is not a shared read-only view (a new dict per call would never
    hit), or text with a substitution token (the plan then depends on the worker id)."""
    if uid is not None or gid is not None or copy_env or rlimits:
        return None  # rlimits: checked against our hard limits, which may change
    if env is not None and type(env) is not MappingProxyType:
        return None
    if type(args) is not str and args is not None:
        args = tuple(args)
    if type(shell_args) is not str and shell_args is not None:
        shell_args = tuple(shell_args)
    if _has_token(cmd, args, shell_args):
        return None
    try:
        return (
            cmd, args, shell, shell_args, id(env),
            executable, use_fds, tuple(sockets.items()) if sockets else None,
            umask, stdin_fd, flags,
        )  # fmt: skip
    except TypeError:  # pragma: no cover - unhashable option values: no cache
        return None


@functools.lru_cache(maxsize=256)
def _has_token(
    cmd: str, args: str | tuple[str, ...] | None, shell_args: str | tuple[str, ...] | None
) -> bool:
    texts = [cmd]
    for part in (args, shell_args):
        if isinstance(part, str):
            texts.append(part)
        elif part:
            texts.extend(str(a) for a in part)
    return any("circus" in t.lower() or "$WID" in t for t in texts)


def _check_fds(sockets: Mapping[str, int] | None, stdin_fd: int | None) -> None:
    """Each descriptor the child is handed is open; raises SpawnError."""
    if sockets:
        for name, fd in sockets.items():
            try:
                os.fstat(fd)
            except (OSError, TypeError):
                raise SpawnError("sockets", {name: fd}, "not an open file descriptor") from None
    if stdin_fd is not None:
        try:
            os.fstat(stdin_fd)
        except (OSError, TypeError):
            raise SpawnError("stdin_fd", stdin_fd, "not an open file descriptor") from None


def _plan_spawn(
    *,
    cmd: str,
    args: str | Sequence[str] | None,
    wid: int,
    working_dir: str | os.PathLike[str] | None,
    shell: bool,
    shell_args: str | Sequence[str] | None,
    uid: int | str | None,
    gid: int | str | None,
    env: Mapping[str, object] | None,
    copy_env: bool,
    rlimits: Mapping[str, object] | None,
    executable: str | None,
    use_fds: bool,
    sockets: Mapping[str, int] | None,
    template_vars: Mapping[str, object] | None,
    umask: int | str | None,
    stdin_fd: int | None,
    close_child_stdin: bool,
    close_child_stdout: bool,
    close_child_stderr: bool,
    pipe_stdout: bool,
    pipe_stderr: bool,
) -> SpawnPlan:
    child_env = build_env(env, copy_env)
    socks = dict(sockets or {})
    identity = resolve_identity(uid, gid)
    cwd = check_working_dir(working_dir, identity)
    argv, program = build_argv(
        cmd,
        args,
        shell=shell,
        shell_args=shell_args,
        executable=executable,
        wid=wid,
        env=child_env,
        sockets=socks,
        template_vars=template_vars or {},
    )
    option = "executable" if executable else "cmd"
    program = _resolve_program(program, option, child_env, cwd)
    pass_fds: tuple[int, ...] = ()
    _check_fds(socks if use_fds else None, stdin_fd)
    if use_fds and socks:
        pass_fds = tuple(sorted(set(socks.values())))
    return SpawnPlan(
        argv=argv,
        program=program,
        env=child_env,
        cwd=cwd,
        identity=identity,
        umask=parse_umask(umask),
        rlimits=parse_rlimits(rlimits),
        pass_fds=pass_fds,
        stdin_fd=stdin_fd,
        close_child_stdin=close_child_stdin,
        close_child_stdout=close_child_stdout,
        close_child_stderr=close_child_stderr,
        pipe_stdout=pipe_stdout,
        pipe_stderr=pipe_stderr,
    )


def _rlimit_preexec(
    limits: tuple[RLimit, ...], identity: Identity, reset: Callable[[], None] | None = None
) -> Any:
    """A preexec_fn setting rlimits, then dropping privileges (upstream's order).

    Popen switches ids *before* running preexec_fn, which would forbid raising a hard limit
    as a dropped user, so when rlimits are asked the id switch moves in here too. ``reset``
    (signal dispositions, see ``_sigreset``) runs first.
    """

    def preexec() -> None:
        if reset is not None:
            reset()
        for limit in limits:
            try:
                resource.setrlimit(limit.resource, (limit.value, limit.value))
            except (ValueError, OSError):
                if not (
                    limit.resource == resource.RLIMIT_NOFILE
                    and limit.value == resource.RLIM_INFINITY
                ):
                    raise
                # nofile cannot be infinite: fall back to the current hard limit.
                hard = resource.getrlimit(limit.resource)[1]
                resource.setrlimit(limit.resource, (hard, hard))
        if identity.groups is not None:
            os.setgroups(list(identity.groups))
        if identity.gid is not None:
            os.setregid(identity.gid, identity.gid)
        if identity.uid is not None:
            os.setreuid(identity.uid, identity.uid)

    return preexec


@dataclass(slots=True)
class Launched:
    """The result of a successful launch: the pid and the parent's pipe ends."""

    pid: int
    stdout: int | None
    stderr: int | None


def _open_pipe() -> tuple[int, int]:
    return os.pipe2(os.O_CLOEXEC)


def _restore_nofile(soft: int) -> Callable[[], None]:
    """A preexec_fn giving the child back the soft RLIMIT_NOFILE the parent had before it
    raised its own (``_fdlimit``)."""

    def restore() -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard), hard))

    return restore


def _chain(*steps: Callable[[], None] | None) -> Callable[[], None] | None:
    todo = [step for step in steps if step is not None]
    if not todo:
        return None
    if len(todo) == 1:
        return todo[0]

    def run() -> None:
        for step in todo:
            step()

    return run


def launch(plan: SpawnPlan, *, any_thread: bool = True) -> Launched:
    """Fork and exec the child described by ``plan``; raises SpawnError, leaks nothing.

    With a descriptor reserve set (``_fdlimit.set_fd_reserve``), a spawn that would eat into
    it is refused with ``errno == EMFILE`` before anything is opened.
    """
    # One read of our status serves the descriptor count and the signal state.
    status = thread_status()
    _check_reserve(status)
    job = _prepare(plan, status)
    try:
        try:
            pid = _fork(job, any_thread)
        except (OSError, subprocess.SubprocessError) as exc:
            raise _fork_error(exc, job) from None
        return Launched(pid, job.out_r, job.err_r)
    except BaseException:
        job.close_parent_ends()
        raise
    finally:
        job.close_child_ends()


def launch_many(plans: Sequence[SpawnPlan]) -> list[Launched | SpawnError]:
    """Fork and exec one child per plan, in order: a :class:`Launched` for each child
    started, the :class:`SpawnError` for each that could not be (the others still are).

    The same children as :func:`launch` one by one, for less: the status read, the
    signal state and ``/dev/null`` are shared, and once the descriptor table is large
    (:data:`BATCH_SMALL_TABLE_FROM`) the batch goes to the small-table spawn thread in one
    hand-over (``_smalltable``). Leaks nothing; an exception other than a SpawnError (a
    signal handler's) is raised with every child of the batch killed and reaped.
    """
    results: list[Launched | SpawnError | None] = [None] * len(plans)
    jobs: list[tuple[int, _Job]] = []
    pids: list[tuple[int, BaseException | None]] = []
    devnull = -1
    try:
        status: bytes | None = None
        for index, plan in enumerate(plans):
            if index % _STATUS_EVERY == 0:
                status = thread_status()  # the table grows as the batch opens pipes
            try:
                _check_reserve(status)
                jobs.append((index, _prepare(plan, status)))
            except SpawnError as exc:
                results[index] = exc
        if any(subprocess.DEVNULL in job.streams for _, job in jobs):
            try:
                devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            except OSError as exc:  # EMFILE/ENFILE: each spawn fails, as launch() would
                for index, job in jobs:
                    job.close_parent_ends()
                    results[index] = _fork_error(exc, job)
                return [r for r in results if r is not None]
        pids = _fork_batch([job for _, job in jobs], devnull)
        for (index, job), (pid, error) in zip(jobs, pids, strict=True):
            if error is None:
                results[index] = Launched(pid, job.out_r, job.err_r)
            else:
                job.close_parent_ends()
                if isinstance(error, (OSError, subprocess.SubprocessError)):
                    results[index] = _fork_error(error, job)
                else:
                    results[index] = SpawnError("cmd", job.plan.program, str(error))
    except BaseException:
        # every child forked, not only those reported yet: nobody will own them
        _smalltable.kill_all(pid for pid, error in pids if error is None)
        for _, job in jobs:
            job.close_parent_ends()
        raise
    finally:
        for _, job in jobs:
            job.close_child_ends()
        if devnull >= 0:
            os.close(devnull)
    return [r for r in results if r is not None]


_STATUS_EVERY = 8  # plans of a batch checked against the reserve per read of our status


def _check_reserve(status: bytes | None) -> None:
    free = _fdlimit.check_fd_reserve(status)
    if free is not None:
        raise SpawnError(
            "nofile",
            free,
            f"only {free} file descriptors free, {_fdlimit.fd_reserve()} kept in reserve",
            errno.EMFILE,
        )


@dataclass(slots=True)
class _Job:
    """One child ready to fork: its streams, the primitive's arguments, what to close."""

    plan: SpawnPlan
    cwd: str | None
    streams: list[int | None]  # the child's 0/1/2: a descriptor, DEVNULL, or None (ours)
    how: dict[str, Any]
    to_close: list[int]  # the child's ends and a directory descriptor: closed after the fork
    out_r: int | None = None
    err_r: int | None = None
    popen: dict[str, Any] = field(default_factory=dict)

    def close_child_ends(self) -> None:
        for fd in self.to_close:
            os.close(fd)
        self.to_close = []

    def close_parent_ends(self) -> None:
        for fd in (self.out_r, self.err_r):
            if fd is not None:
                os.close(fd)
        self.out_r = self.err_r = None

    def small_table_ok(self) -> bool:
        """Whether the small-table thread may fork it (nothing passed by number)."""
        return not self.plan.pass_fds and self.plan.stdin_fd is None and self.cwd == self.plan.cwd


def _prepare(plan: SpawnPlan, status: bytes | None) -> _Job:
    """Open what the child needs (pipes, its directory) and compute the primitive's
    arguments; raises SpawnError with nothing left open."""
    to_close: list[int] = []
    out_r = err_r = None
    cwd = plan.cwd
    try:
        if cwd is not None and plan.identity.uid not in (None, 0) and _PROC_FD:
            # The child enters its directory as root, before the id switch: it goes through
            # a descriptor of the directory checked for the user, never a path re-resolved.
            dir_fd = open_working_dir(cwd, plan.identity)
            to_close.append(dir_fd)
            cwd = f"/proc/self/fd/{dir_fd}"
        stdin: int | None
        if plan.stdin_fd is not None:
            stdin = plan.stdin_fd
        elif plan.close_child_stdin:
            stdin = subprocess.DEVNULL
        else:
            stdin = None
        stdout: int | None = None
        stderr: int | None = None
        try:
            if plan.close_child_stdout:
                stdout = subprocess.DEVNULL
            elif plan.pipe_stdout:
                out_r, stdout = _open_pipe()
                to_close.append(stdout)
            if plan.close_child_stderr:
                stderr = subprocess.DEVNULL
            elif plan.pipe_stderr:
                err_r, stderr = _open_pipe()
                to_close.append(stderr)
        except OSError as exc:  # EMFILE/ENFILE: out of descriptors
            raise SpawnError("pipe_stdout", True, exc.strerror or str(exc), exc.errno) from None
    except BaseException:
        for fd in (out_r, err_r, *to_close):
            if fd is not None:
                os.close(fd)
        raise
    ident = plan.identity
    kwargs: dict[str, Any] = {}
    ignored, blocked = inherited_signal_state(status)
    reset = reset_signals(ignored, blocked) if ignored or blocked else None
    soft = _fdlimit.child_nofile()
    if soft is not None and not any(r.resource == resource.RLIMIT_NOFILE for r in plan.rlimits):
        reset = _chain(reset, _restore_nofile(soft))
    if plan.rlimits:
        kwargs["preexec_fn"] = _rlimit_preexec(plan.rlimits, ident, reset)
    else:
        if reset is not None:
            kwargs["preexec_fn"] = reset
        if ident.uid is not None:
            kwargs["user"] = ident.uid
        if ident.gid is not None:
            kwargs["group"] = ident.gid
        if ident.groups is not None:
            kwargs["extra_groups"] = list(ident.groups)
    how: dict[str, Any] = {}
    if _forkexec.USABLE:
        try:
            env = _forkexec.encode_env(plan.env)
        except BaseException:
            for fd in (out_r, err_r, *to_close):
                if fd is not None:
                    os.close(fd)
            raise
        how = {
            "argv": plan.argv,
            "program": plan.program,
            "env": env,
            "cwd": cwd,
            "pass_fds": plan.pass_fds,
            "setsid": True,
            "uid": kwargs.get("user"),
            "gid": kwargs.get("group"),
            "extra_groups": kwargs.get("extra_groups"),
            "umask": plan.umask,
            "preexec_fn": kwargs.get("preexec_fn"),
        }
    return _Job(plan, cwd, [stdin, stdout, stderr], how, to_close, out_r, err_r, kwargs)


def _fork_error(exc: BaseException, job: _Job) -> SpawnError:
    """The SpawnError for what the fork/exec of ``job`` raised."""
    plan = job.plan
    if isinstance(exc, subprocess.SubprocessError):
        # Only our preexec_fn can fail this way: it sets rlimits and ids.
        return SpawnError("rlimits", {r.name: r.value for r in plan.rlimits}, str(exc))
    assert isinstance(exc, OSError)
    if job.cwd != plan.cwd and getattr(exc, "filename", None) == job.cwd:
        exc.filename = plan.cwd  # the directory by the name it was given
    return _map_oserror(exc, plan)


def _fork(job: _Job, any_thread: bool) -> int:
    """Fork/exec one prepared child (directly, through the spawn thread, or by Popen)."""
    plan = job.plan
    if not _forkexec.USABLE:
        popen = subprocess.Popen(
            plan.argv,
            executable=plan.program,
            stdin=job.streams[0],
            stdout=job.streams[1],
            stderr=job.streams[2],
            close_fds=True,
            pass_fds=plan.pass_fds,
            cwd=job.cwd,
            env=plan.env,
            start_new_session=True,
            umask=plan.umask,
            **job.popen,
        )
        # From here on the pid is ours alone: mark the Popen finished so its
        # finaliser neither warns nor reaps it.
        popen.returncode = 0
        return popen.pid
    streams = job.streams
    if subprocess.DEVNULL in streams:
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        job.to_close.append(devnull)
        streams = [devnull if fd == subprocess.DEVNULL else fd for fd in streams]
    fds = [-1 if fd is None else fd for fd in streams]
    # A descriptor just opened takes the lowest free number, so every number below the
    # highest one opened here is in use: a cheap, exact sign of a large table.
    if (
        any_thread
        and job.small_table_ok()
        and SMALL_TABLE_FROM is not None
        and max(job.to_close, default=-1) >= SMALL_TABLE_FROM
    ):
        spawner = _smalltable.spawner()
        if spawner is not None:
            try:
                return spawner.run(_forkexec.fork_exec, _stdio(fds), job.how)
            except _smalltable.HandOffError:
                pass  # e.g. our descriptor 0 is closed: fork from here, as below
    return _forkexec.fork_exec(stdin=fds[0], stdout=fds[1], stderr=fds[2], **job.how)


def _stdio(fds: list[int]) -> tuple[int, int, int]:
    # "inherit" means our own 0/1/2, handed over like the others
    return (fds[0] if fds[0] >= 0 else 0, fds[1] if fds[1] >= 0 else 1,
            fds[2] if fds[2] >= 0 else 2)  # fmt: skip


def _fork_batch(jobs: list[_Job], devnull: int) -> list[tuple[int, BaseException | None]]:
    """Fork/exec each prepared child, in order: ``(pid, None)`` or ``(0, exception)``.

    Past :func:`batch_threshold` descriptors, the children that may go through the
    small-table thread go in one hand-over; the others fork from here, one by one.
    """
    done: dict[int, tuple[int, BaseException | None]] = {}
    threshold = batch_threshold()
    if _forkexec.USABLE and threshold is not None and len(jobs) > 1:
        handed = [
            i
            for i, job in enumerate(jobs)
            if job.small_table_ok() and max(*job.to_close, devnull, -1) >= threshold
        ]
        spawner = _smalltable.spawner() if handed else None
        if spawner is not None:
            requests = []
            for i in handed:
                fds = [devnull if fd == subprocess.DEVNULL else fd for fd in jobs[i].streams]
                requests.append((_stdio([-1 if fd is None else fd for fd in fds]), jobs[i].how))
            try:
                results = spawner.run_many(_forkexec.fork_exec, requests)
            except _smalltable.HandOffError:
                results = []  # none started: each forks from here
            for i, result in zip(handed, results, strict=False):  # none on a failed hand-over
                done[i] = result
    out: list[tuple[int, BaseException | None]] = []
    for i, job in enumerate(jobs):
        if i in done:
            out.append(done[i])
            continue
        try:
            if devnull >= 0:
                job.streams = [devnull if fd == subprocess.DEVNULL else fd for fd in job.streams]
            out.append((_fork(job, any_thread=False), None))
        except (OSError, subprocess.SubprocessError) as exc:
            out.append((0, exc))
        except BaseException:
            _smalltable.kill_all(pid for pid, error in [*out, *done.values()] if error is None)
            raise
    return out


#: Spawns fork from the small-table thread (``_smalltable``) once this many descriptors
#: are open; below it the hand-over costs more than the table copy it saves.
DEFAULT_SPAWN_THREAD_FROM = 4096
#: The threshold in force (:func:`set_spawn_thread`); ``None``: never.
SMALL_TABLE_FROM: int | None = DEFAULT_SPAWN_THREAD_FROM
#: With the default threshold, a batch (:func:`launch_many`) forks from the spawn thread
#: from this many descriptors: one hand-over serves ~80 children, so the table copy it
#: saves pays for it much sooner than for a single spawn.
BATCH_SMALL_TABLE_FROM = 1024


def batch_threshold() -> int | None:
    """The descriptor number from which a batch forks from the spawn thread (None: never):
    :data:`BATCH_SMALL_TABLE_FROM` under the default threshold, else the one set."""
    if SMALL_TABLE_FROM == DEFAULT_SPAWN_THREAD_FROM:
        return min(SMALL_TABLE_FROM, BATCH_SMALL_TABLE_FROM)
    return SMALL_TABLE_FROM


def set_spawn_thread(from_descriptors: int | None) -> None:
    """Choose when this process's spawns fork from the small-table spawn thread.

    ``from_descriptors``: a plain spawn (no ``pass_fds``, no ``stdin_fd``, no working
    directory held by descriptor, no cgroup leaf) forks from the spawn thread once a
    descriptor the spawn opens is numbered ``from_descriptors`` or more, i.e. once about
    that many descriptors are open (0: every plain spawn); ``None``: never, every spawn
    forks from the thread that calls it. The default is
    :data:`DEFAULT_SPAWN_THREAD_FROM` (4,096).

    Why turn it off: a child that set ``PR_SET_PDEATHSIG`` gets its parent-death signal
    when the thread that forked it ends, and the spawn thread ends at an ``execve`` of this
    process (circusd's ``daemon-reexec``). Only spawns made after the call are affected: a
    running spawn thread is not stopped (that would signal the children it forked); they
    keep their parent-death signal tied to it.

    Raises:
        TypeError: not an int (a bool is refused) or None.
        ValueError: a negative number.
    """
    global SMALL_TABLE_FROM
    if from_descriptors is not None:
        if isinstance(from_descriptors, bool) or not isinstance(from_descriptors, int):
            raise TypeError(
                f"from_descriptors must be a whole number or None, not {from_descriptors!r}"
            )
        if from_descriptors < 0:
            raise ValueError(f"from_descriptors must be 0 or more, not {from_descriptors}")
    SMALL_TABLE_FROM = from_descriptors


def spawn_thread() -> int | None:
    """The threshold :func:`set_spawn_thread` set (``None``: the spawn thread is off)."""
    return SMALL_TABLE_FROM


# Where a child can reach a directory descriptor of ours by path before exec (magic links).
_PROC_FD = os.path.isdir("/proc/self/fd")


def _map_oserror(exc: OSError, plan: SpawnPlan) -> SpawnError:
    filename = getattr(exc, "filename", None)
    reason = exc.strerror or str(exc)
    if plan.cwd is not None and filename == plan.cwd:
        return SpawnError("working_dir", plan.cwd, reason, exc.errno)
    if isinstance(exc, PermissionError) and filename is None:
        ident = plan.identity
        if ident.uid is not None:
            return SpawnError("uid", ident.uid, reason, exc.errno)
        if ident.gid is not None:
            return SpawnError("gid", ident.gid, reason, exc.errno)
    return SpawnError("cmd", plan.program, reason, exc.errno)

"""Fork and exec one child through CPython's own primitive, without ``subprocess.Popen``.

``Popen`` does the same fork/exec (``_posixsubprocess.fork_exec``, vfork when it can) but
wraps it in per-call work a supervisor does not need: it encodes the whole environment
again, opens and closes ``/dev/null`` for each stream, builds a Popen object with a lock,
and walks its option checks. Here the environment of a watcher is encoded once and the
call goes straight to the primitive, with Popen's exact child-side semantics (close every
descriptor but ``pass_fds``, restore SIGPIPE/SIGXFSZ, ``setsid``, ids, umask, the
exec-error pipe and the exception it carries).

The primitive's argument list is private and changes between CPython versions, so it is
used only on the versions whose list is known (:data:`USABLE`); elsewhere callers use
Popen.
"""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["USABLE", "encode_env", "fork_exec"]

try:
    import _posixsubprocess
except ImportError:  # pragma: no cover - not POSIX
    _posixsubprocess = None  # type: ignore[assignment]
# Typed Any: the stub's argument list is not the one of every version (cwd, preexec None).
_fork_exec: Any = getattr(_posixsubprocess, "fork_exec", None)

#: Whether :func:`fork_exec` may be called (CPython 3.11's argument list).
USABLE = (
    _fork_exec is not None
    and sys.implementation.name == "cpython"
    and (sys.version_info[:2] == (3, 11))
)

_env_cache: dict[int, tuple[Mapping[str, str], dict[str, str], list[bytes]]] = {}


def encode_env(env: Mapping[str, str]) -> list[bytes]:
    """``[b"KEY=value", ...]`` for ``env``, as Popen builds it; raises ValueError for a key
    holding ``=``.

    A mapping seen before (the same object, e.g. a watcher's shared read-only view) with
    the same items is not encoded again: the check against a copy of its items costs a
    dict comparison, the encoding an ``fsencode`` per key and value.
    """
    cached = _env_cache.get(id(env))
    if cached is not None and cached[0] is env and cached[1] == env:
        return cached[2]
    out = []
    fsencode = os.fsencode
    for key, value in env.items():
        k = fsencode(key)
        if b"=" in k:
            raise ValueError("illegal environment variable name")
        out.append(k + b"=" + fsencode(value))
    if len(_env_cache) >= 64:
        _env_cache.clear()
    # The mapping is kept alive with its entry, so its id cannot be reused meanwhile.
    _env_cache[id(env)] = (env, dict(env), out)
    return out


def fork_exec(
    argv: Sequence[str],
    program: str,
    *,
    env: list[bytes],
    cwd: str | None,
    stdin: int,
    stdout: int,
    stderr: int,
    pass_fds: Sequence[int],
    setsid: bool,
    uid: int | None,
    gid: int | None,
    extra_groups: Sequence[int] | None,
    umask: int,
    preexec_fn: Callable[[], None] | None,
) -> int:
    """Start ``program`` with ``argv`` and return its pid once it has exec'd.

    ``stdin``/``stdout``/``stderr`` are descriptors to become 0/1/2 in the child (-1:
    inherit ours). Raises what Popen raises when the child cannot exec (an ``OSError`` with
    the program, or the working directory, as its filename; ``SubprocessError`` when
    ``preexec_fn`` failed); the failed child is reaped before raising.
    """
    sys.audit("subprocess.Popen", program, argv, cwd, env)
    executable = os.fsencode(program)
    if "/" in program:  # what os.path.dirname() says, without its Python per spawn
        executables: tuple[bytes, ...] = (executable,)
    else:  # as Popen and execvpe: each entry of the PATH the child will have
        path_env = {"PATH": _path_of(env)} if env is not None else None
        executables = tuple(
            os.path.join(os.fsencode(d), executable) for d in os.get_exec_path(path_env)
        )
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        low: list[int] = []
        while err_w < 3:  # our 0/1/2 closed: the child's dup2 would overwrite it
            low.append(err_w)
            err_w = os.dup(err_w)
        for fd in low:
            os.close(fd)
        try:
            pid: int = _fork_exec(
                argv,
                executables,
                True,
                tuple(sorted({*pass_fds, err_w})),
                cwd,
                env,
                stdin,  # p2cread
                -1,
                -1,
                stdout,  # c2pwrite
                -1,
                stderr,  # errwrite
                err_r,
                err_w,
                True,
                setsid,
                -1,
                gid,
                None if extra_groups is None else list(extra_groups),
                uid,
                umask,
                preexec_fn,
                True,
            )
        finally:
            os.close(err_w)
        data = b""
        while True:
            part = os.read(err_r, 50000)
            data += part
            if not part or len(data) > 50000:
                break
    finally:
        os.close(err_r)
    if data:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        raise _child_error(data, program, cwd)
    return pid


def _path_of(env: list[bytes]) -> str:
    for item in env:
        if item.startswith(b"PATH="):
            return os.fsdecode(item[5:])
    return os.defpath


def _child_error(data: bytes, program: str, cwd: str | None) -> Exception:
    """The exception the child reported on the error pipe (Popen's format)."""
    try:
        name, hex_errno, raw = data.split(b":", 2)
        message = raw.decode()
    except ValueError:
        return subprocess.SubprocessError(f"Bad exception data from child: {data!r}")
    kind: Any = getattr(builtins, name.decode("ascii", "replace"), subprocess.SubprocessError)
    if not (isinstance(kind, type) and issubclass(kind, BaseException)):
        kind = subprocess.SubprocessError
    error: Exception
    if issubclass(kind, OSError) and hex_errno:
        number = int(hex_errno, 16)
        filename = cwd if message == "noexec" else program
        reason = os.strerror(number) if number else ("" if message == "noexec" else message)
        error = kind(number, reason, filename)
    else:
        error = kind(message)
    return error

"""Readiness and liveness probes: parsing their addresses and running one on the event loop.

A probe is ``notify`` (the sd_notify protocol, run by :mod:`._notify`), ``tcp://HOST:PORT``
(a connect succeeds), ``http://HOST:PORT/PATH`` (a 2xx answer to a GET) or ``exec:COMMAND``
(``/bin/sh -c COMMAND`` exits 0). :func:`run_probe` runs one on the running loop: the
network probes are non-blocking sockets awaited by the loop (no thread, no stream objects),
the exec probe a ``circus.process.Process`` whose exit is seen through its pidfd; each is
bounded by its timeout and leaves nothing behind (socket closed, probe process tree killed
and reaped). Stdlib only at import; the process layer is imported by the exec probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping
from typing import Any

from ._probe_spec import ProbeKind, ProbeSpec, is_template, parse_probe

__all__ = ["ProbeKind", "ProbeSpec", "is_template", "parse_probe", "run_probe"]

_MAX_HEAD = 8192  # bytes of an HTTP answer read to find its status line


async def run_probe(
    spec: ProbeSpec,
    *,
    timeout: float,  # noqa: ASYNC109 - a deadline per call, as the API promises
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    uid: int | str | None = None,
    gid: int | str | None = None,
) -> str | None:
    """Run ``spec`` once within ``timeout`` seconds: None when it succeeds, else why not.

    ``env``, ``cwd``, ``uid`` and ``gid`` are those of the exec probe's process (the
    watched process's environment, working directory and user). A ``notify`` spec cannot be
    run (its answer comes from the process): it fails with a reason saying so.
    """
    timeout = max(0.0, float(timeout))
    try:
        if spec.kind == "tcp":
            return await asyncio.wait_for(_tcp(spec), timeout)
        if spec.kind == "http":
            return await asyncio.wait_for(_http(spec), timeout)
        if spec.kind == "exec":
            return await _exec(spec, timeout, env, cwd, uid, gid)
    except TimeoutError:
        return f"{spec.text}: no answer within {timeout:g} s"
    return f"{spec.text}: a notify probe is answered by the process itself"


def _numeric(host: str, port: int) -> list[tuple[Any, ...]] | None:
    """The address of a numeric host, without a resolver call."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return [(family, socket.SOCK_STREAM, 0, "", (host, port))]
    return None


async def _connect(spec: ProbeSpec) -> socket.socket:
    loop = asyncio.get_running_loop()
    # a host name goes through the loop's resolver (its small shared thread pool); an
    # address, the usual case, costs no thread at all
    infos = _numeric(spec.host, spec.port) or await loop.getaddrinfo(
        spec.host, spec.port, type=socket.SOCK_STREAM
    )
    error: OSError | None = None
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
        except BaseException:
            sock.close()
            raise
    raise error if error is not None else OSError(f"no address for {spec.host}")


def _why(spec: ProbeSpec, exc: OSError) -> str:
    text = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
    return f"{spec.text}: {text}"


async def _tcp(spec: ProbeSpec) -> str | None:
    try:
        sock = await _connect(spec)
    except OSError as exc:
        return _why(spec, exc)
    sock.close()
    return None


async def _http(spec: ProbeSpec) -> str | None:
    loop = asyncio.get_running_loop()
    try:
        sock = await _connect(spec)
    except OSError as exc:
        return _why(spec, exc)
    try:
        host = f"[{spec.host}]" if ":" in spec.host else spec.host
        request = (
            f"GET {spec.path} HTTP/1.0\r\nHost: {host}:{spec.port}\r\n"
            "User-Agent: circus-probe\r\nConnection: close\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode("latin-1", "replace"))
        head = b""
        while b"\n" not in head and len(head) < _MAX_HEAD:
            chunk = await loop.sock_recv(sock, _MAX_HEAD - len(head))
            if not chunk:
                break
            head += chunk
    except OSError as exc:
        return _why(spec, exc)
    finally:
        sock.close()
    line = head.split(b"\n", 1)[0].strip()
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        shown = line[:60].decode("latin-1")
        return f"{spec.text}: not an HTTP answer ({shown!r})" if line else f"{spec.text}: no answer"
    status = int(parts[1])
    if 200 <= status < 300:
        return None
    return f"{spec.text}: HTTP {status}"


async def _exec(
    spec: ProbeSpec,
    limit: float,
    env: Mapping[str, str] | None,
    cwd: str | None,
    uid: int | str | None,
    gid: int | str | None,
) -> str | None:
    import signal

    from circus.process import Process

    try:
        proc = Process(
            "probe",
            0,
            "/bin/sh",
            args=["-c", spec.command],
            working_dir=cwd,
            uid=uid,
            gid=gid,
            env=dict(env) if env is not None else {},
            pipe_stdout=False,
            pipe_stderr=False,
            close_child_stdout=True,
            close_child_stderr=True,
            exact_tree=False,
        )
    except Exception as exc:
        return f"{spec.text}: cannot run: {exc}"
    try:
        try:
            code = await asyncio.wait_for(proc.wait_async(), limit)
        except TimeoutError:
            # the probe's own session: its whole tree goes, and is reaped
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.astop(0, signal.SIGKILL, True), 10.0)
            return f"{spec.text}: still running after {limit:g} s (killed)"
        except BaseException:
            # Cancelled (the process went, the watcher stops, the loop ends): no await may
            # follow, so the tree is killed and reaped at once; SIGKILL leaves a zombie within
            # microseconds, so this blocks the loop that long, on this rare path only.
            with contextlib.suppress(Exception):
                proc.stop(0, signal.SIGKILL, True)
            raise
    finally:
        proc.close()
    if code == 0:
        return None
    if code < 0:
        return f"{spec.text}: killed by signal {-code}"
    return f"{spec.text}: exited with {code}"

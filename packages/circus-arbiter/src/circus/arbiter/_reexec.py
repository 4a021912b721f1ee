"""``daemon-reexec``: circusd hands its state to a fresh exec of itself, in the same pid.

The old image, in the request (:func:`prepare`): refuses while the daemon stops or another
switch runs, takes a snapshot of its state (``_handover``), and has a separate process of the
*installed* code load it (the dry run); if that fails, the answer is an error and nothing
else happens. Then, right after the answer (:func:`switch`):

1. it waits (bounded) for a quiet moment: no control request running or waiting unread;
2. it closes the ZeroMQ channels (answers already queued still leave: the context's
   termination waits for them) and flushes the output forwarded to its own stdout/stderr;
3. with no ``await`` from there on, so that no output chunk, exit or request is handled in
   between, it snapshots again (with the partial output lines its streams hold back), writes
   the state to a memfd, clears ``FD_CLOEXEC`` on exactly the descriptors it hands over
   (the memfd, the children's output pipes, the ``[socket:]`` sockets) and execs the same
   interpreter with the same arguments. Everything else closes with the old image.
4. Should the exec fail, the flags are set back, the channels re-bound, and the old image
   carries on.

The new image (circusd with ``CIRCUS_HANDOVER_FD``) is ``_resume``'s: :func:`take_state` reads
and checks the state; the arbiter then calls :func:`resume` before it binds anything
(sockets adopted from their descriptors, watchers built from the handed options, children
attached through pidfds), so the orphan reaper can never take one of our children for an
orphan, and :func:`finish` once it serves (processes that died during the switch are
replaced).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import _launch
from ._errors import ArbiterError, ConflictError
from ._handover import (
    ENV_FD,
    FORMAT,
    VERSION,
    HandoverError,
    b64,
    encode_state,
    encode_value,
    write_memfd,
)
from ._launch import launch_argv
from ._resume import _answer_handed, _streams, _tasks, finish, resume, take_state

__all__ = [
    "enable",
    "finish",
    "launch_argv",
    "prepare",
    "resume",
    "snapshot",
    "switch",
    "take_state",
]

log = logging.getLogger("circus.arbiter")

QUIET_TIMEOUT = 5.0  # seconds the switch waits for the commands being run
FLUSHED_AFTER = 0.1  # an answer handed to libzmq this long ago has left (its I/O thread)
DRY_RUN_TIMEOUT = 60.0  # an import of the installed code on a loaded machine

_enabled = False  # also allowed when set (tests); circusd records its argv in _launch
_switching: set[int] = set()  # id() of arbiters between an ok answer and their exec


def enable(argv: list[str] | None = None) -> None:
    """Allow ``daemon-reexec`` in this process (called by circusd, which owns it);
    ``argv``: what to exec (default :func:`launch_argv` now)."""
    _launch.enable(argv)


# ---------------------------------------------------------------------- snapshot


def _process_entry(
    hub: Any, watcher: Any, proc: Any, streams: Mapping[str, Any]
) -> dict[str, Any] | None:
    from circus.process import process_start_time

    start = process_start_time(proc.pid)
    if start is None or proc.returncode is not None:
        return None  # reaped already: nothing to hand over
    partial: dict[str, dict[str, str]] = {}
    for name in ("stdout", "stderr"):
        held: dict[str, str] = {}
        take = getattr(streams.get(name), "partial", None)
        if callable(take):
            data = take(proc.pid, name)
            if data:
                held["stream"] = b64(data)
        data = hub.partial(watcher.name, proc.pid, name)
        if data:
            held["hub"] = b64(data)
        if held:
            partial[name] = held
    return {
        "pid": proc.pid,
        "wid": proc.wid,
        "start_time": start,
        "started": proc.started,
        "stdout": proc.stdout,
        "stderr": proc.stderr,
        "cgroup": getattr(proc, "cgroup", None),
        "partial": partial,
    }


def _watcher_entry(hub: Any, watcher: Any) -> dict[str, Any]:
    from circus.watcher import OPTIONS, Watcher

    if not isinstance(watcher, Watcher):
        raise HandoverError(f"watcher {watcher.name!r} is not a circus.watcher.Watcher")
    where = f"watcher {watcher.name!r}: option"
    options = {n: encode_value(watcher.settings.get(n), f"{where} {n!r}") for n in OPTIONS}
    streams = _streams(watcher)
    procs = getattr(watcher, "_procs", None)
    retiring = list(getattr(procs, "retiring", {}).values())
    entries = [_process_entry(hub, watcher, p, streams) for p in watcher.processes.values()]
    ending = [_process_entry(hub, watcher, p, streams) for p in retiring]
    return {
        "name": watcher.name,
        # a watcher being stopped is handed as stopped (its processes as ending), one being
        # started as active (the new image spawns what is missing)
        "status": "stopped" if watcher.status() in ("stopped", "stopping") else "active",
        "options": options,
        "custom": encode_value(dict(watcher.settings.custom), f"{where} custom"),
        "processes": [e for e in entries if e is not None],
        "retiring": [e for e in ending if e is not None],
        "counters": _counters(watcher),
        # an on_demand watcher waiting for its first connection
        "armed": bool(getattr(getattr(watcher, "_on_demand", None), "_fds", None)),
    }


def _counters(watcher: Any) -> dict[str, Any]:
    """The restart counters of a watcher: backoff streak, flapping retries and exit times
    (monotonic clock: the same across an exec)."""
    policy = getattr(watcher, "_policy", None)
    flapping = getattr(watcher, "_flapping", None)
    return {
        "streak": int(getattr(policy, "streak", 0)),
        "flapping_tries": int(getattr(flapping, "tries", 0)),
        "flapping_times": [float(t) for t in getattr(flapping, "_times", ())],
    }


def _socket_entry(name: str, sock: Any) -> dict[str, Any]:
    file_id = getattr(sock, "_file_id", None)
    return {
        "name": name,
        "fd": int(sock.fileno()),
        "path": getattr(sock, "path", None),
        "file_id": list(file_id) if file_id else None,
        "adopted": bool(getattr(sock, "adopted", False)),
    }


def snapshot(arbiter: Any) -> dict[str, Any]:
    """The hand-over state of ``arbiter`` now (see the README for every field).

    Raises:
        HandoverError: a part that cannot be handed over (a watcher option holding a
            Python object without an import path, a watcher of another class).
    """
    from circus.process import tree_tracking

    ws = arbiter.watcher_set
    previous = getattr(arbiter, "reexec_info", None) or {}
    config_file = arbiter.config_file
    return {
        "format": FORMAT,
        "version": VERSION,
        "written_at": time.time(),
        "pid": os.getpid(),
        "generation": int(previous.get("generation", 0)) + 1,
        "python": sys.version.split()[0],
        "config_file": os.path.abspath(config_file) if config_file else None,
        "started_at": arbiter.started_at,
        "tree_tracking": tree_tracking(),
        "watchers": [
            {**_watcher_entry(ws.output, w), "depends_on": ws.dependencies_of(w.name)}
            for w in ws.ordered()
        ],
        "sockets": [_socket_entry(name, sock) for name, sock in ws.sockets.items()],
    }


# ---------------------------------------------------------------------- old image


def _interpreter() -> list[str]:
    """The interpreter and its flags, as this process was started (``-X``, ``-W``...)."""
    flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    return [sys.executable, *flags]


async def dry_run(data: bytes) -> None:
    """Have a separate process of the installed code load ``data``.

    Raises:
        HandoverError: it cannot (its message), or it did not answer in time.
    """
    fd = write_memfd(data)
    # -P: ``-m`` would put circusd's working directory first on sys.path, and a root
    # circusd's working directory may belong to another user (an app's checkout)
    flags = _interpreter()
    if "-P" not in flags:
        flags.append("-P")
    try:
        proc = await asyncio.create_subprocess_exec(
            *flags,
            "-m",
            "circus.arbiter._handover",
            "--check",
            str(fd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(fd,),
        )
    finally:
        os.close(fd)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), DRY_RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise HandoverError(
            f"the dry run of the installed code took more than {DRY_RUN_TIMEOUT:.0f} s"
        ) from None
    if proc.returncode != 0:
        reason = err.decode(errors="replace").strip().splitlines()
        raise HandoverError(
            "the installed code cannot take over: "
            + (reason[-1] if reason else f"its dry run exited with {proc.returncode}")
        )


async def prepare(arbiter: Any) -> dict[str, Any]:
    """The request's part: checks, snapshot and dry run; then the switch is scheduled.

    Returns the answer's fields: ``pid``, ``generation``, ``watchers``, ``processes``.

    Raises:
        ArbiterError: not run by circusd, or the daemon is stopping.
        ConflictError: a switch is already under way.
        HandoverError: the state cannot be written or the installed code cannot load it.
    """
    if not _enabled and _launch.enabled_argv() is None:
        raise ArbiterError(
            "daemon-reexec needs circusd: an arbiter embedded in another program cannot "
            "re-exec that program"
        )
    if arbiter.stopping:
        raise ArbiterError("circusd is stopping")
    if id(arbiter) in _switching:
        raise ConflictError("a daemon-reexec is already under way")
    from ._commands import background_running

    if background_running():
        raise ConflictError(
            "a command answered before its work was done is still working (a stop, start or "
            "reload without --waiting): daemon-reexec once it is done"
        )
    _switching.add(id(arbiter))
    try:
        _check_config_unchanged(arbiter)
        state = snapshot(arbiter)
        await dry_run(encode_state(state))
    except BaseException:
        _switching.discard(id(arbiter))
        raise
    log.info("daemon-reexec: the installed code loads the state; switching")
    task = asyncio.get_running_loop().create_task(switch(arbiter))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    processes = sum(len(w["processes"]) for w in state["watchers"])
    return {
        "pid": os.getpid(),
        "generation": state["generation"],
        "watchers": len(state["watchers"]),
        "processes": processes,
    }


def _check_config_unchanged(arbiter: Any) -> None:
    """The new image reads the config file again (its ``[circus]`` settings, and what a later
    ``reloadconfig`` compares with): it must still be the config running now.

    Raises:
        HandoverError: the file changed since it was loaded, or no longer loads.
    """
    loaded = getattr(arbiter, "loaded_config", None)
    path = arbiter.config_file
    if loaded is None or not path:
        return
    import warnings

    from .config import ConfigError, load_config

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            current = load_config(path)
    except (ConfigError, OSError) as exc:
        raise HandoverError(f"the config file does not load any more: {exc}") from exc
    if current != loaded:
        raise HandoverError(
            f"{path} changed since it was loaded: apply it first (reloadconfig), or put it "
            "back, then daemon-reexec"
        )


def _quiet(arbiter: Any) -> bool:
    controller = arbiter.channels.controller
    if controller is None:
        return True
    from ._commands import background_running

    flushed = time.monotonic() - controller.last_answer >= FLUSHED_AFTER
    if not controller.idle() or not flushed or background_running():
        return False  # a command still works (the state is taken once it is done)
    return not _bytes_waiting(controller.endpoint)


def _bytes_waiting(endpoint: str) -> bool:
    """Whether a connection of the control endpoint has bytes libzmq has not read yet (a
    request on its way: closing the connection now would lose it)."""
    import fcntl
    import socket
    import stat
    import struct
    import termios

    from ._endpoints import local_address

    path = local_address(endpoint)  # what our connections' getsockname() answers
    port = endpoint.rsplit(":", 1)[-1] if endpoint.startswith("tcp://") else None
    if path is None and not (port and port.isdigit()):
        return False
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return False
    for fd in fds:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                continue
            name = sock.getsockname()
            ours = (
                name == path
                if path is not None
                else isinstance(name, tuple) and str(name[1]) == port
            )
            if ours and struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0" * 4))[0]:
                return True
        except OSError:
            continue
        finally:
            sock.close()
    return False


def _handed_fds(state: Mapping[str, Any]) -> list[int]:
    fds = [s["fd"] for s in state["sockets"]]
    for w in state["watchers"]:
        for p in (*w["processes"], *w["retiring"]):
            fds += [fd for fd in (p["stdout"], p["stderr"]) if fd is not None]
    return fds


Exec = Callable[[str, list[str], dict[str, str]], Any]


async def switch(arbiter: Any, execve: Exec = os.execve) -> None:
    """Wait for a quiet moment, close the channels, hand over and exec (see the module
    docstring). Returns only when the switch did not happen; the daemon then carries on."""
    try:
        loop = asyncio.get_running_loop()
        began = time.time()
        # New requests wait in libzmq's queues (read below, answered by the new image: our
        # clients and upstream's keep their routing id when they reconnect); the ones being
        # run finish and their answers leave.
        controller = arbiter.channels.controller
        if controller is not None:
            controller.stop_reading()
        deadline = loop.time() + QUIET_TIMEOUT
        while not _quiet(arbiter):
            if loop.time() > deadline:
                log.error(
                    "daemon-reexec: not done, control requests still running after %.0f s",
                    QUIET_TIMEOUT,
                )
                if controller is not None:
                    controller.start()
                return
            await asyncio.sleep(0.002)
        # The control endpoint stops listening and its connections end at once; new
        # connections are refused until the new image binds (ZeroMQ clients retry).
        pending = controller.cut() if controller is not None else []
        await asyncio.sleep(0.01)  # what libzmq's I/O thread was passing on as they ended
        if controller is not None:
            pending += controller.unread()
        await arbiter.channels.close()
        if arbiter.stopping:  # told to quit meanwhile (SIGTERM): that wins
            log.info("daemon-reexec: not done, circusd is stopping")
            return
        _flush_output(arbiter)
        # No await from here to the exec.
        try:
            state = snapshot(arbiter)
        except HandoverError as exc:
            log.error("daemon-reexec: not done: %s", exc)
            await _carry_on(arbiter, pending)
            return
        state["switch_began"] = began
        log.info("daemon-reexec: channels closed and state taken in %.1f ms",
                 (time.time() - began) * 1000)  # fmt: skip
        state["requests"] = [_request_entry(*request) for request in pending]
        _exec(arbiter, state, execve)
        await _carry_on(arbiter, pending)
    finally:
        _switching.discard(id(arbiter))


def _flush_output(arbiter: Any) -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    forwarder = arbiter.watcher_set.output.forwarder
    if forwarder is not None:
        forwarder.close(timeout=1.0)
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def _exec(arbiter: Any, state: dict[str, Any], execve: Exec) -> None:
    from .circusd import HANDLED_SIGNALS

    fds = _handed_fds(state)
    try:
        fd = write_memfd(encode_state(state))
    except OSError as exc:
        log.error("daemon-reexec: not done, cannot write the state: %s", exc)
        return
    made: list[int] = []
    blocked = False
    try:
        for handed in fds:
            if not os.get_inheritable(handed):
                os.set_inheritable(handed, True)
                made.append(handed)
        env = dict(os.environ)
        env[ENV_FD] = str(fd)
        systemd = getattr(arbiter, "systemd", None)
        if systemd is not None:  # circusd took NOTIFY_SOCKET & co out of its environment
            env.update(systemd.environ())
        # the same interpreter, flags, script (or -m module) and arguments as this process
        argv = _launch.enabled_argv() or launch_argv()
        log.info("daemon-reexec: exec %s", " ".join(argv))
        for handler in logging.getLogger().handlers:
            handler.flush()
        # A SIGTERM between the exec and the new image's handlers would kill circusd and
        # orphan every child: blocked (the mask survives the exec), handled once it serves.
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        blocked = True
        if systemd is not None:  # the new image pings again as soon as it runs
            systemd.ping()
        execve(argv[0], argv, env)
        log.error("daemon-reexec: not done, exec returned")  # only a stand-in exec returns
    except OSError as exc:
        log.error("daemon-reexec: not done, exec failed: %s", exc)
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
        for handed in made:
            try:
                os.set_inheritable(handed, False)
            except OSError:
                pass
        os.close(fd)


def _request_entry(identity: bytes, envelope: list[bytes], payload: bytes, peer: Any) -> Any:
    from dataclasses import asdict

    return {"identity": b64(identity), "envelope": bool(envelope), "payload": b64(payload),
            "peer": asdict(peer)}  # fmt: skip


async def _carry_on(arbiter: Any, pending: list[Any]) -> None:
    """After a switch that did not happen: output and channels as they were, and the
    requests read meanwhile answered."""
    from ._forward import OutputForwarder

    output = arbiter.watcher_set.output
    output.forwarder = OutputForwarder()
    try:
        await arbiter.channels.reopen()
    except Exception as exc:  # the endpoints were ours a moment ago
        log.critical("daemon-reexec: cannot bind the control channel again: %s", exc)
        arbiter.request_quit()
        return
    _answer_handed(arbiter, pending)
    log.info("daemon-reexec: carrying on in the running image")

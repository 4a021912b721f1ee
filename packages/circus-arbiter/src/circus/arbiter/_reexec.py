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

The new image (circusd with ``CIRCUS_HANDOVER_FD``): :func:`take_state` reads and checks the
state; the arbiter then calls :func:`resume` before it binds anything (sockets adopted from
their descriptors, watchers built from the handed options, children attached through
pidfds), so the orphan reaper can never take one of our children for an orphan, and
:func:`finish` once it serves (processes that died during the switch are replaced).
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

from ._errors import ArbiterError, ConflictError
from ._handover import (
    ENV_FD,
    FORMAT,
    VERSION,
    HandoverError,
    b64,
    decode_state,
    encode_state,
    encode_value,
    read_fd,
    unb64,
    watcher_spec,
    write_memfd,
)

__all__ = ["enable", "finish", "prepare", "resume", "snapshot", "switch", "take_state"]

log = logging.getLogger("circus.arbiter")

QUIET_TIMEOUT = 5.0  # seconds the switch waits for the control requests being run
FLUSHED_AFTER = 0.02  # an answer handed to libzmq this long ago has left (its I/O thread)
DRY_RUN_TIMEOUT = 60.0  # an import of the installed code on a loaded machine

_enabled = False  # only circusd may re-exec its process (not an embedding program)
_switching: set[int] = set()  # id() of arbiters between an ok answer and their exec


def enable() -> None:
    """Allow ``daemon-reexec`` in this process (called by circusd, which owns it)."""
    global _enabled
    _enabled = True


# ---------------------------------------------------------------------- snapshot


def _streams(watcher: Any) -> Mapping[str, Any]:
    output = getattr(watcher, "_output", None)
    streams = getattr(output, "_streams", None)
    return streams if isinstance(streams, Mapping) else {}


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
        "watchers": [_watcher_entry(ws.output, w) for w in ws.ordered()],
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
    try:
        proc = await asyncio.create_subprocess_exec(
            *_interpreter(),
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
    if not _enabled:
        raise ArbiterError(
            "daemon-reexec needs circusd: an arbiter embedded in another program cannot "
            "re-exec that program"
        )
    if arbiter.stopping:
        raise ArbiterError("circusd is stopping")
    if id(arbiter) in _switching:
        raise ConflictError("a daemon-reexec is already under way")
    _switching.add(id(arbiter))
    try:
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


_tasks: set[asyncio.Task[Any]] = set()


def _quiet(arbiter: Any) -> bool:
    controller = arbiter.channels.controller
    if controller is None:
        return True
    flushed = time.monotonic() - controller.last_answer >= FLUSHED_AFTER
    return bool(controller.idle()) and flushed


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
        # the same interpreter, flags, script (or -m module) and arguments as this process
        argv = [sys.executable, *getattr(sys, "orig_argv", [sys.executable, *sys.argv])[1:]]
        log.info("daemon-reexec: exec %s", " ".join(argv))
        for handler in logging.getLogger().handlers:
            handler.flush()
        # A SIGTERM between the exec and the new image's handlers would kill circusd and
        # orphan every child: blocked (the mask survives the exec), handled once it serves.
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        blocked = True
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


def _answer_handed(arbiter: Any, requests: list[Any]) -> None:
    controller = arbiter.channels.controller
    if requests:
        log.info("daemon-reexec: answering %d request(s) read by the previous image", len(requests))
    if controller is not None:
        for request in requests:
            controller.answer_later(*request)


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


# ---------------------------------------------------------------------- new image


def take_state() -> dict[str, Any] | None:
    """The state handed by the previous image (``CIRCUS_HANDOVER_FD``), or None when this
    circusd was not started by a ``daemon-reexec``; the descriptor is closed and the variable
    removed (children must not inherit either).

    Raises:
        HandoverError: the state cannot be read or loaded.
    """
    text = os.environ.pop(ENV_FD, None)
    if text is None:
        return None
    if not text.isdigit():
        raise HandoverError(f"{ENV_FD}={text!r} is not a descriptor")
    fd = int(text)
    try:
        data = read_fd(fd)
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    return decode_state(data)


def _adopt_sockets(arbiter: Any, state: Mapping[str, Any]) -> None:
    from circus.sockets import CircusSocket

    from ._sockets import SocketSet

    sockets = []
    for entry in state["sockets"]:
        sock = CircusSocket.from_fd(entry["fd"], entry["name"])
        sock.set_inheritable(False)
        if not entry.get("adopted") and entry.get("file_id"):
            # the file is ours, as it was the old image's: removed at exit
            sock.adopted = False
            sock._file_id = tuple(entry["file_id"])
        sockets.append(sock)
    arbiter.watcher_set.sockets = SocketSet(sockets)
    arbiter.watcher_set.sockets.bind_all()  # all bound: only marks the set so


def _drain_into(stream: Any, pid: int, name: str, fd: int) -> None:
    """What a process that ended during the switch left in its pipe, to its stream."""
    os.set_blocking(fd, False)
    while True:
        try:
            data = os.read(fd, 1 << 16)
        except OSError:
            break
        if not data:
            break
        if stream is not None:
            stream({"data": data, "pid": pid, "name": name})
    end = getattr(stream, "end", None)
    if callable(end):
        end(pid, name)


def _attach(watcher: Any, entry: Mapping[str, Any]) -> Any:
    """The attached Process of one process entry, or None if it ended during the switch
    (then reaped, its pipes drained to the streams and closed)."""
    from circus.process import Process, ProcessError

    pid = entry["pid"]
    try:
        return Process.attach(
            pid,
            entry["start_time"],
            name=watcher.name,
            wid=entry["wid"],
            cmd=watcher.settings.cmd,
            started=entry["started"],
            stdout=entry["stdout"],
            stderr=entry["stderr"],
            cgroup=entry.get("cgroup"),
            watcher=watcher,
        )
    except ProcessError as exc:
        log.info("watcher %s: pid %d ended during the switch (%s)", watcher.name, pid, exc)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    streams = _streams(watcher)
    for name in ("stdout", "stderr"):
        fd = entry[name]
        if fd is not None:
            _drain_into(streams.get(name), pid, name, fd)
            os.close(fd)
    return None


async def resume(arbiter: Any, state: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild the daemon from ``state`` (called before anything is bound): sockets,
    watchers, attached children; returns what :func:`finish` completes.

    Every child is attached (and so known to the process layer) before the first ``await``,
    and each watcher's pipes are registered and its held-back partial lines given back in
    one step, before the loop can read a new byte from them.

    Raises:
        HandoverError: a part the running code refuses (the dry run makes this rare).
    """
    from ._watchers import make_watcher

    t0 = time.time()
    if isinstance(state.get("switch_began"), (int, float)):
        log.info("daemon-reexec: new image running %.1f ms after the switch began",
                 (t0 - state["switch_began"]) * 1000)  # fmt: skip
    _adopt_sockets(arbiter, state)
    ws = arbiter.watcher_set
    made = []
    for entry in state["watchers"]:
        try:
            watcher = make_watcher(watcher_spec(entry))
        except Exception as exc:
            raise HandoverError(f"watcher {entry['name']!r}: {exc}") from exc
        ws.register(watcher)
        procs = [p for p in (_attach(watcher, e) for e in entry["processes"]) if p is not None]
        ending = [_attach_ending(watcher, e) for e in entry["retiring"]]
        made.append((watcher, entry, procs, [p for p in ending if p is not None]))
    log.info("daemon-reexec: %d processes attached in %.1f ms",
             sum(len(m[2]) for m in made), (time.time() - t0) * 1000)  # fmt: skip
    resumed = []
    for watcher, entry, procs, ending in made:
        if entry["status"] == "active":
            await _adopt(ws.output, watcher, entry, procs)
        else:
            ending += procs  # a stopped watcher runs nothing: stop what was left
        for proc in ending:
            _stop_later(watcher, proc)
        status = "armed" if entry["status"] == "stopped" and entry.get("armed") else entry["status"]
        resumed.append((watcher, status))
    arbiter.reexec_info = {
        "generation": state.get("generation", 1),
        "switch_began": state.get("switch_began"),
    }
    if state.get("started_at"):
        arbiter.started_at = state["started_at"]
    requests = [_request_of(r) for r in state.get("requests", [])]
    return {"watchers": resumed, "requests": requests}


def _request_of(entry: Mapping[str, Any]) -> tuple[bytes, list[bytes], bytes, Any]:
    from ._peers import PeerIdentity

    peer = PeerIdentity(**entry["peer"])
    envelope = [b""] if entry["envelope"] else []
    return unb64(entry["identity"]), envelope, unb64(entry["payload"]), peer


async def _adopt(hub: Any, watcher: Any, entry: Mapping[str, Any], procs: list[Any]) -> None:
    # Adopted with numprocesses = what is attached, so that adopt spawns nothing and returns
    # without letting the loop run (no pipe is read before the partial lines are back); the
    # real count is restored at once, and finish() spawns what ended during the switch.
    target = watcher.settings
    watcher.settings = target.replace("numprocesses", len(procs))
    try:
        await watcher.adopt(procs, emit=False)
        _feed_partials(hub, watcher, entry["processes"])
    finally:
        watcher.settings = watcher.settings.replace("numprocesses", target.numprocesses)
    _restore_counters(watcher, entry.get("counters") or {})


def _attach_ending(watcher: Any, entry: Mapping[str, Any]) -> Any:
    """A process the old image was stopping: its pipes drained to the streams and closed
    (its last words are kept), the process attached so that its stop is finished here."""
    proc = _attach(watcher, {**entry, "stdout": None, "stderr": None})
    for name in ("stdout", "stderr"):
        if entry[name] is not None:
            _drain_into(_streams(watcher).get(name), entry["pid"], name, entry[name])
            os.close(entry[name])
    return proc


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


def _restore_counters(watcher: Any, counters: Mapping[str, Any]) -> None:
    policy = getattr(watcher, "_policy", None)
    flapping = getattr(watcher, "_flapping", None)
    if policy is not None:
        policy.streak = int(counters.get("streak", 0))
    if flapping is not None:
        flapping.tries = int(counters.get("flapping_tries", 0))
        times = getattr(flapping, "_times", None)
        if times is not None:
            times.clear()
            times.extend(float(t) for t in counters.get("flapping_times", ()))


def _feed_partials(hub: Any, watcher: Any, entries: list[Mapping[str, Any]]) -> None:
    """Give the streams and the output hub back the unterminated lines the old image held,
    before any new byte of those pipes is read."""
    streams = _streams(watcher)
    for entry in entries:
        for name, held in entry.get("partial", {}).items():
            if "stream" in held and streams.get(name) is not None:
                streams[name]({"data": unb64(held["stream"]), "pid": entry["pid"], "name": name})
            if "hub" in held:
                hub.feed(watcher.name, entry["pid"], name, unb64(held["hub"]))


def _stop_later(watcher: Any, proc: Any) -> None:
    o = watcher.settings

    async def stop() -> None:
        try:
            await proc.astop(o.graceful_timeout, o.stop_signal, o.stop_children)
        finally:
            proc.close()

    task = asyncio.get_running_loop().create_task(stop())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def finish(arbiter: Any, resumed: Mapping[str, Any]) -> None:
    """Once serving: answer the requests the old image read last, replace the processes
    that ended during the switch, and log how long the takeover took."""
    _answer_handed(arbiter, resumed["requests"])
    for watcher, status in resumed["watchers"]:
        try:
            if status == "active" and len(watcher.pids) < watcher.numprocesses:
                await watcher.set_numprocesses(watcher.numprocesses)
            elif status == "armed":
                await watcher.start()  # on_demand: waits for a connection again
        except Exception as exc:
            log.error("watcher %s: cannot spawn after the switch: %s", watcher.name, exc)
    info = getattr(arbiter, "reexec_info", None) or {}
    began = info.get("switch_began")
    if isinstance(began, (int, float)):
        info["takeover_ms"] = round((time.time() - began) * 1000, 1)
        log.info(
            "daemon-reexec: generation %s serving, %.1f ms after the switch began",
            info.get("generation"),
            info["takeover_ms"],
        )

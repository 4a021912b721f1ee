"""The new image's side of ``daemon-reexec``: taking over what the previous image handed.

circusd reads the state (:func:`take_state`), the arbiter calls :func:`resume` before it
binds anything and :func:`finish` once it serves (see ``_reexec`` for the old image's
side and ``_handover`` for the format).

The state is trusted as circusd's own (it arrives in a private memfd) but not blindly: a
descriptor must be what it is said to be (a pipe, a socket) and a process must still be the
one recorded (pid and start time, checked by ``Process.attach``) and our child; what fails a
check is logged and left out rather than acted upon.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from collections.abc import Mapping
from typing import Any

from ._handover import ENV_FD, HandoverError, decode_state, read_fd, unb64, watcher_spec

__all__ = ["finish", "resume", "take_state"]

log = logging.getLogger("circus.arbiter")

_tasks: set[asyncio.Task[Any]] = set()  # stops of handed processes, handed requests


def _streams(watcher: Any) -> Mapping[str, Any]:
    """The open stream objects of a watcher (``stdout``, ``stderr``)."""
    output = getattr(watcher, "_output", None)
    streams = getattr(output, "_streams", None)
    return streams if isinstance(streams, Mapping) else {}


def _answer_handed(arbiter: Any, requests: list[Any]) -> None:
    """Answer requests another image read but did not run (see ``Controller.answer_later``)."""
    controller = arbiter.channels.controller
    if requests:
        log.info("daemon-reexec: answering %d request(s) read by the previous image", len(requests))
    if controller is not None:
        for request in requests:
            controller.answer_later(*request)


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
    if fd <= 2:
        raise HandoverError(f"{ENV_FD}={fd} names a standard stream")
    try:
        data = read_fd(fd)
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    return decode_state(data)


def _is(fd: int | None, kind: Any) -> bool:
    if fd is None or fd <= 2:
        return False
    try:
        return bool(kind(os.fstat(fd).st_mode))
    except OSError:
        return False


def _adopt_sockets(arbiter: Any, state: Mapping[str, Any]) -> None:
    from circus.sockets import CircusSocket, SocketError

    from ._sockets import SocketSet

    sockets = []
    for entry in state["sockets"]:
        if not _is(entry["fd"], stat.S_ISSOCK):
            log.error("daemon-reexec: socket %s: fd %s is not a socket", entry["name"], entry["fd"])
            continue
        try:
            sock = CircusSocket.from_fd(entry["fd"], entry["name"])
        except SocketError as exc:
            log.error("daemon-reexec: socket %s: %s", entry["name"], exc)
            continue
        sock.set_inheritable(False)
        if sock.path is not None and entry.get("path"):
            sock.path = str(entry["path"])  # its address may not say it (a bind aside by names)
        if not entry.get("adopted") and entry.get("file_id"):
            # the file is ours, as it was the old image's: removed at exit
            sock.adopted = False
            sock._file_id = tuple(entry["file_id"])
        sockets.append(sock)
    arbiter.watcher_set.sockets = SocketSet(sockets)
    arbiter.watcher_set.sockets.bind_all()  # all bound already: only marks the set so


def _checked_pipes(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The entry with an output descriptor that is not a pipe left out (and logged)."""
    out = dict(entry)
    for name in ("stdout", "stderr"):
        fd = out.get(name)
        if fd is not None and not _is(fd, stat.S_ISFIFO):
            log.error("daemon-reexec: pid %s: %s fd %s is not a pipe", out["pid"], name, fd)
            out[name] = None
    return out


def _attach(watcher: Any, entry: Mapping[str, Any]) -> Any:
    """The attached Process of one (checked) process entry, or None when it ended during
    the switch or is not our child (its pipes are then left to :func:`_bury`)."""
    from circus.process import Process, ProcessError

    pid = entry["pid"]
    try:
        proc = Process.attach(
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
        return None
    if not proc.is_child:
        log.error("daemon-reexec: pid %d is not a child of circusd: not taken", pid)
        proc.stdout = proc.stderr = None  # the pipes are the entry's, buried with it
        proc.close()
        return None
    return proc


def _bury(watcher: Any, entry: Mapping[str, Any], reap: bool = True) -> None:
    """A handed process that is not taken: reaped if it is our exited child, and what its
    pipes still hold written to the watcher's streams (opened by then), the pipes closed."""
    pid = entry["pid"]
    if reap:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    streams = _streams(watcher)
    for name in ("stdout", "stderr"):
        fd = entry[name]
        if fd is None:
            continue
        stream = streams.get(name)
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
        os.close(fd)


async def resume(arbiter: Any, state: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild the daemon from ``state`` (called before anything is bound): sockets,
    watchers, attached children; returns what :func:`finish` completes.

    Every child is attached (and so known to the process layer: the orphan reaper leaves
    it alone) before the first ``await``, and each watcher's pipes are registered and its
    held-back partial lines given back in one step, before the loop can read a new byte.

    Raises:
        HandoverError: a watcher the running code refuses (the dry run makes this rare).
    """
    from ._watchers import make_watcher

    t0 = time.time()
    began = state.get("switch_began")
    if isinstance(began, (int, float)):
        log.info("daemon-reexec: new image running %.1f ms after the switch began",
                 (t0 - began) * 1000)  # fmt: skip
    _adopt_sockets(arbiter, state)
    ws = arbiter.watcher_set
    made = []
    for entry in state["watchers"]:
        try:
            watcher = make_watcher(watcher_spec(entry))
        except Exception as exc:
            raise HandoverError(f"watcher {entry['name']!r}: {exc}") from exc
        ws.register(watcher)
        if isinstance(entry.get("depends_on"), list):  # absent: an older image's state
            ws.set_dependencies(watcher.name, entry["depends_on"], check=False)
            ws.deps_handed.add(watcher.name.lower())
        procs, gone = [], []
        for e in map(_checked_pipes, entry["processes"]):
            proc = _attach(watcher, e)
            if proc is None:
                gone.append(e)
            else:
                procs.append(proc)
        # being stopped when the switch came: their stop is finished here, what their
        # pipes hold goes to the streams
        ending = []
        for e in map(_checked_pipes, entry["retiring"]):
            proc = _attach(watcher, {**e, "stdout": None, "stderr": None})
            ending.append((proc, e))
        made.append((watcher, entry, procs, gone, ending))
    log.info("daemon-reexec: %d processes attached in %.1f ms",
             sum(len(m[2]) for m in made), (time.time() - t0) * 1000)  # fmt: skip
    resumed = []
    for watcher, entry, procs, gone, ending in made:
        if entry["status"] == "active":
            await _adopt(ws.output, watcher, entry, procs)
        else:  # a stopped watcher runs nothing: what was left is stopped
            ending += [(proc, {"pid": proc.pid, "stdout": None, "stderr": None}) for proc in procs]
        for e in gone:
            _bury(watcher, e)
        for proc, e in ending:
            _bury(watcher, e, reap=False)
            if proc is not None:
                _stop_later(watcher, proc)
        status = entry["status"]
        resumed.append((watcher, "armed" if status == "stopped" and entry.get("armed") else status))
    arbiter.reexec_info = {"generation": state.get("generation", 1), "switch_began": began}
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
    taken = set(watcher.pids)
    for entry in entries:
        if entry["pid"] not in taken:
            continue
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
    that ended during the switch, arm on-demand watchers again, log the takeover time."""
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

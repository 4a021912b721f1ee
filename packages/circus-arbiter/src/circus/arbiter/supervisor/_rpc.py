"""Supervisor's XML-RPC interface (the ``supervisor.*`` and ``system.*`` methods that
``supervisorctl`` and superlance call), served over our watchers.

Every call that acts (start, stop, signal, clear logs, shutdown) goes through the control
channel's own gate (circus.arbiter ``_authz.check`` with the peer the kernel named): an
XML-RPC client may do exactly what the same user may do with ``circusctl``, never more.
Reading a process's output needs what ``circusctl logs`` needs (the operate right). A refusal
is a ``FAILED`` fault whose text names the right missing. The username/password of the
config gate the socket (``_http``); they never grant a right.

A request body is parsed by the standard library's ``xmlrpc.client.loads`` (expat, entity
expansion bounded by expat itself); the body is at most ``_http.MAX_BODY`` bytes and a
``system.multicall`` at most :data:`MAX_MULTICALL` calls, answering at most
:data:`MAX_RECORDS_PER_REQUEST` process entries in all.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal as _signal
import stat
import time
import xmlrpc.client
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, BinaryIO

from circus.process import open_file

from .._authz import Refused, check
from .._peers import PeerIdentity
from ._states import RPC_API_VERSION, SUPERVISOR_VERSION, Fault, ProcState
from ._tracker import ProcRecord, Tracker

if TYPE_CHECKING:
    from .._arbiter import Arbiter

__all__ = ["MAX_MULTICALL", "RpcError", "RpcInterface"]

log = logging.getLogger("circus.arbiter")

MAX_MULTICALL = 256
#: Process entries one request may answer in all (``getAllProcessInfo`` counts every
#: process): a 57 KB multicall open to any local user must not build hundreds of MB.
MAX_RECORDS_PER_REQUEST = 10_000
START_TIMEOUT = 600.0  # the longest a waiting start/stop holds its request
_RUNNING = frozenset({ProcState.RUNNING, ProcState.STARTING, ProcState.BACKOFF})


class RpcError(Exception):
    """A Supervisor fault: ``code`` and the text after ``NAME:``."""

    def __init__(self, code: Fault, text: str = "") -> None:
        super().__init__(code, text)
        self.code = code
        self.text = f"{code.name}: {text}" if text else code.name


Method = Callable[..., Any]


class RpcInterface:
    """The methods, bound to one arbiter and its :class:`Tracker`.

    Args:
        arbiter: the running daemon.
        tracker: Supervisor's view of its processes.
        identification: ``[supervisord] identifier``.
        logfile: circusd's own log file (``readLog``), if it has one.
    """

    def __init__(
        self,
        arbiter: Arbiter,
        tracker: Tracker,
        identification: str = "supervisor",
        logfile: str | None = None,
    ) -> None:
        self.arbiter = arbiter
        self.tracker = tracker
        self.identification = identification
        self.logfile = logfile
        self.methods: dict[str, Method] = {
            "supervisor.getAPIVersion": self.get_api_version,
            "supervisor.getVersion": self.get_api_version,
            "supervisor.getSupervisorVersion": self.get_supervisor_version,
            "supervisor.getIdentification": self.get_identification,
            "supervisor.getState": self.get_state,
            "supervisor.getPID": self.get_pid,
            "supervisor.readLog": self.read_log,
            "supervisor.readMainLog": self.read_log,
            "supervisor.shutdown": self.shutdown,
            "supervisor.restart": self.restart,
            "supervisor.getAllConfigInfo": self.get_all_config_info,
            "supervisor.getProcessInfo": self.get_process_info,
            "supervisor.getAllProcessInfo": self.get_all_process_info,
            "supervisor.startProcess": self.start_process,
            "supervisor.startProcessGroup": self.start_process_group,
            "supervisor.startAllProcesses": self.start_all_processes,
            "supervisor.stopProcess": self.stop_process,
            "supervisor.stopProcessGroup": self.stop_process_group,
            "supervisor.stopAllProcesses": self.stop_all_processes,
            "supervisor.signalProcess": self.signal_process,
            "supervisor.signalProcessGroup": self.signal_process_group,
            "supervisor.signalAllProcesses": self.signal_all_processes,
            "supervisor.readProcessLog": self.read_stdout,
            "supervisor.readProcessStdoutLog": self.read_stdout,
            "supervisor.readProcessStderrLog": self.read_stderr,
            "supervisor.tailProcessLog": self.tail_stdout,
            "supervisor.tailProcessStdoutLog": self.tail_stdout,
            "supervisor.tailProcessStderrLog": self.tail_stderr,
            "supervisor.clearProcessLog": self.clear_process_logs,
            "supervisor.clearProcessLogs": self.clear_process_logs,
            "supervisor.clearAllProcessLogs": self.clear_all_process_logs,
            "system.listMethods": self.list_methods,
            "system.methodHelp": self.method_help,
            "system.methodSignature": self.method_signature,
            "system.multicall": self.multicall,
        }

    # ------------------------------------------------------------------ dispatch

    async def handle(self, body: bytes, peer: PeerIdentity) -> bytes:
        """One request body → the response body (a result or a fault; never raises)."""
        try:
            if len(body) > _BIG:  # a big request is parsed off the loop
                params, method = await asyncio.to_thread(_loads, body)
            else:
                params, method = _loads(body)
        except Exception as exc:
            return _fault(Fault.INCORRECT_PARAMETERS, f"cannot parse the request: {exc}"[:300])
        if not isinstance(method, str):
            return _fault(Fault.UNKNOWN_METHOD, "no method name")
        try:
            result = _marshallable(await self.call(method, list(params), peer))
            if isinstance(result, list) and len(result) > _BIG_LIST:
                # thousands of processes: the XML is written off the loop
                return await asyncio.to_thread(_dumps, result)
            return _dumps(result)
        except RpcError as exc:
            return _fault(exc.code, exc.text)
        except Exception as exc:  # a bug must answer, not drop the connection
            log.exception("supervisor XML-RPC method %s failed", method[:100])
            return _fault(Fault.FAILED, f"{type(exc).__name__}: {exc}"[:300])

    async def call(self, method: str, params: list[Any], peer: PeerIdentity) -> Any:
        """Run one method with its positional parameters as ``peer``.

        Raises:
            RpcError: the fault to answer.
        """
        func = self.methods.get(method)
        if func is None:
            raise RpcError(Fault.UNKNOWN_METHOD)
        try:
            outcome = func(peer, *params)
        except TypeError as exc:
            if "positional argument" in str(exc) or "required" in str(exc):
                raise RpcError(Fault.INCORRECT_PARAMETERS) from None
            raise
        if isinstance(outcome, Awaitable):
            return await outcome
        return outcome

    def _allow(self, peer: PeerIdentity, command: str, record: ProcRecord | None) -> None:
        props = {"name": record.watcher} if record is not None else {}
        try:
            check(self.arbiter, peer, command, props)
        except Refused as exc:
            raise RpcError(Fault.FAILED, exc.reason) from None

    # ------------------------------------------------------------------ names

    def _resolve(self, name: object) -> tuple[str, ProcRecord | None]:
        """Supervisor's name rule: ``group:name``, ``group:*`` (the group) or ``name`` (the
        group and process of that name)."""
        if not isinstance(name, str):
            raise RpcError(Fault.BAD_NAME, repr(name)[:100])
        group, sep, process = name.partition(":")
        if not sep:
            process = group
        members = self.tracker.group(group)
        if not members:
            raise RpcError(Fault.BAD_NAME, name[:200])
        if sep and process == "*":
            return group, None
        for record in members:
            if record.name == process:
                return group, record
        raise RpcError(Fault.BAD_NAME, name[:200])

    def _process(self, name: object) -> ProcRecord:
        _, record = self._resolve(name)
        if record is None:
            raise RpcError(Fault.BAD_NAME, str(name)[:200])
        return record

    # ------------------------------------------------------------------ daemon

    def get_api_version(self, peer: PeerIdentity) -> str:
        return RPC_API_VERSION

    def get_supervisor_version(self, peer: PeerIdentity) -> str:
        return SUPERVISOR_VERSION

    def get_identification(self, peer: PeerIdentity) -> str:
        return self.identification

    def get_state(self, peer: PeerIdentity) -> dict[str, Any]:
        if self.arbiter.stopping:
            return {"statecode": -1, "statename": "SHUTDOWN"}
        return {"statecode": 1, "statename": "RUNNING"}

    def get_pid(self, peer: PeerIdentity) -> int:
        return os.getpid()

    async def read_log(self, peer: PeerIdentity, offset: int, length: int) -> str:
        self._allow(peer, "logs", None)
        _check_ints(offset, length)
        if not self.logfile or self.logfile in ("-", "/dev/stdout", "/dev/stderr"):
            raise RpcError(Fault.NO_FILE, "circusd logs to no file")
        return await asyncio.to_thread(_read_file, self.logfile, offset, length)

    def shutdown(self, peer: PeerIdentity) -> bool:
        self._allow(peer, "quit", None)
        self.arbiter.request_quit()
        return True

    async def restart(self, peer: PeerIdentity) -> bool:
        """Stop every process, re-read the file, start them again (``circusctl restart``,
        which needs the admin right)."""
        from .._commands import run_command

        try:
            await run_command(self.arbiter.commands, "restart", {}, peer=peer)
        except Refused as exc:
            raise RpcError(Fault.FAILED, exc.reason) from None
        return True

    # ------------------------------------------------------------------ info

    def get_all_config_info(self, peer: PeerIdentity) -> list[dict[str, Any]]:
        """What each process is configured with (``supervisorctl avail``)."""
        out = []
        for record in self.tracker.by_priority():
            conf = record.config
            watcher = self.arbiter.table.find(record.watcher)
            get = getattr(watcher, "get_opt", None)

            def opt(key: str, default: Any = "", get: Any = get) -> Any:
                try:
                    value = get(key) if get is not None else default
                except Exception:
                    return default
                return default if value is None else value

            command = " ".join(str(p) for p in (opt("cmd"), opt("args")) if p)
            out.append(
                {
                    "name": record.name,
                    "group": record.group,
                    "inuse": watcher is not None,
                    "autostart": bool(getattr(watcher, "autostart", False)),
                    "process_prio": record.priority,
                    "group_prio": record.group_priority,
                    "command": command,
                    "directory": str(opt("working_dir")),
                    "uid": str(opt("uid")),
                    "exitcodes": list(record.exitcodes),
                    "startsecs": int(record.startsecs),
                    "startretries": int(getattr(conf, "startretries", 3)),
                    "stopsignal": _signum_or(opt("stop_signal", "TERM"), 15),
                    "stopwaitsecs": int(float(opt("graceful_timeout", 10))),
                    "killasgroup": bool(opt("stop_children", False)),
                    "redirect_stderr": bool(getattr(conf, "redirect_stderr", False)),
                    "stdout_logfile": record.stdout_logfile or "",
                    "stderr_logfile": record.stderr_logfile or "",
                    "stdout_events_enabled": record.stdout_events,
                    "stderr_events_enabled": record.stderr_events,
                    "serverurl": "AUTO",
                }
            )
        return out

    def _info(self, record: ProcRecord, now: float) -> dict[str, Any]:
        return {
            "name": record.name,
            "group": record.group,
            "description": record.description(now),
            "start": int(record.start),
            "stop": int(record.stop),
            "now": int(now),
            "state": int(record.state),
            "statename": record.state.name,
            "spawnerr": record.spawnerr,
            "exitstatus": record.exitstatus,
            "logfile": record.stdout_logfile or "",
            "stdout_logfile": record.stdout_logfile or "",
            "stderr_logfile": record.stderr_logfile or "",
            "pid": record.pid if record.state not in _STOPPED else 0,
        }

    def get_process_info(self, peer: PeerIdentity, name: object) -> dict[str, Any]:
        self.tracker.attach_all()
        return self._info(self._process(name), time.time())

    def get_all_process_info(self, peer: PeerIdentity) -> list[dict[str, Any]]:
        self.tracker.attach_all()
        now = time.time()
        return [self._info(r, now) for r in self.tracker.lexical()]

    # ------------------------------------------------------------------ start / stop

    async def _run(self, peer: PeerIdentity, command: str, record: ProcRecord) -> None:
        from .._commands import run_command

        props = {"name": record.watcher, "match": "simple", "waiting": True}
        try:
            await run_command(self.arbiter.commands, command, props, peer=peer)
        except Refused as exc:
            raise RpcError(Fault.FAILED, exc.reason) from None
        except Exception as exc:  # the watcher layer's own errors, named
            code = Fault.SPAWN_ERROR if command != "stop" else Fault.FAILED
            reason = getattr(exc, "reason", None) or str(exc)
            raise RpcError(code, f"{record.namespec}: {reason}"[:500]) from None

    def _watcher(self, record: ProcRecord) -> Any:
        watcher = self.arbiter.table.find(record.watcher)
        if watcher is None:
            raise RpcError(Fault.FAILED, f"{record.namespec}: its watcher was removed")
        return watcher

    async def start_process(self, peer: PeerIdentity, name: object, wait: bool = True) -> Any:
        self.tracker.attach_all()
        group, record = self._resolve(name)
        if record is None:
            return await self.start_process_group(peer, group, wait)
        if record.state in _RUNNING:
            raise RpcError(Fault.ALREADY_STARTED, str(name))
        changed = record.changed
        watcher = self._watcher(record)
        self._allow(peer, "start", record)
        _check_command(watcher, str(name))
        # a watcher left active by a process that exited (autorestart false) is restarted
        command = "restart" if watcher.status() == "active" and not watcher.pids else "start"
        await self._run(peer, command, record)
        if record.state not in _RUNNING and record.changed is changed:
            raise RpcError(Fault.SPAWN_ERROR, str(name))
        if not wait:
            return True
        deadline = time.monotonic() + START_TIMEOUT
        while record.state is not ProcState.RUNNING:
            if record.state not in (ProcState.STARTING,):
                if record.state in (ProcState.STOPPED, ProcState.FATAL) and record.spawnerr:
                    raise RpcError(Fault.SPAWN_ERROR, str(name))
                raise RpcError(Fault.ABNORMAL_TERMINATION, str(name))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RpcError(Fault.FAILED, f"{name}: still starting")
            try:
                await asyncio.wait_for(record.changed.wait(), remaining)
            except TimeoutError:
                pass
        return True

    async def stop_process(self, peer: PeerIdentity, name: object, wait: bool = True) -> Any:
        self.tracker.attach_all()
        group, record = self._resolve(name)
        if record is None:
            return await self.stop_process_group(peer, group, wait)
        if record.state not in _RUNNING:
            raise RpcError(Fault.NOT_RUNNING, str(name))
        await self._run(peer, "stop", record)
        return True

    async def _each(
        self,
        peer: PeerIdentity,
        records: list[ProcRecord],
        act: Callable[[PeerIdentity, str], Awaitable[Any]],
        skip: Callable[[ProcRecord], bool],
    ) -> list[dict[str, Any]]:
        chosen = [r for r in records if not skip(r)]
        # in the order they finish, as Supervisor lists them: those refused at once first
        results: list[dict[str, Any]] = []

        async def one(record: ProcRecord) -> None:
            try:
                await act(peer, record.namespec)
            except RpcError as exc:
                results.append(_status(record, exc.code, exc.text))
            else:
                results.append(_status(record, Fault.SUCCESS, "OK"))

        await asyncio.gather(*(one(r) for r in chosen))
        return results

    def _group(self, name: object) -> list[Any]:
        """The records of group ``name`` (BAD_NAME when there is none)."""
        self.tracker.attach_all()
        records = self.tracker.group(str(name))
        if not records:
            raise RpcError(Fault.BAD_NAME, str(name)[:200])
        return records

    async def start_process_group(
        self, peer: PeerIdentity, name: object, wait: bool = True
    ) -> list[dict[str, Any]]:
        records = self._group(name)
        return await self._each(
            peer, records, lambda p, n: self.start_process(p, n, wait), _is_running
        )

    async def start_all_processes(self, peer: PeerIdentity, wait: bool = True) -> Any:
        self.tracker.attach_all()
        records = self.tracker.by_priority()
        return await self._each(
            peer, records, lambda p, n: self.start_process(p, n, wait), _is_running
        )

    async def stop_process_group(
        self, peer: PeerIdentity, name: object, wait: bool = True
    ) -> list[dict[str, Any]]:
        records = self._group(name)
        return await self._each(
            peer, records, lambda p, n: self.stop_process(p, n, wait), _not_running
        )

    async def stop_all_processes(self, peer: PeerIdentity, wait: bool = True) -> Any:
        self.tracker.attach_all()
        records = self.tracker.by_priority()
        return await self._each(
            peer, records, lambda p, n: self.stop_process(p, n, wait), _not_running
        )

    # ------------------------------------------------------------------ signals

    async def signal_process(self, peer: PeerIdentity, name: object, signal: object) -> Any:
        self.tracker.attach_all()
        group, record = self._resolve(name)
        if record is None:
            return await self.signal_process_group(peer, group, signal)
        signum = _signum(signal)
        if record.state not in _RUNNING or not record.pid:
            raise RpcError(Fault.NOT_RUNNING, str(name))
        self._allow(peer, "signal", record)
        try:
            os.kill(record.pid, signum)
        except ProcessLookupError:
            raise RpcError(Fault.NOT_RUNNING, str(name)) from None
        return True

    async def signal_process_group(
        self, peer: PeerIdentity, name: object, signal: object
    ) -> list[dict[str, Any]]:
        records = self.tracker.group(str(name))
        if not records:
            raise RpcError(Fault.BAD_NAME, str(name)[:200])
        _signum(signal)
        return await self._each(
            peer, records, lambda p, n: self.signal_process(p, n, signal), _not_running
        )

    async def signal_all_processes(self, peer: PeerIdentity, signal: object) -> Any:
        _signum(signal)
        records = self.tracker.by_priority()
        return await self._each(
            peer, records, lambda p, n: self.signal_process(p, n, signal), _not_running
        )

    # ------------------------------------------------------------------ process logs

    async def _log(self, peer: PeerIdentity, name: object, stream: str) -> tuple[bytes, int]:
        """``(data, absolute size)`` of one process's stream: the last MiB of its log file
        (read in a worker thread: a slow disk never holds the loop), or the bytes kept in
        memory (their offsets count what was dropped)."""
        record = self._process(name)
        self._allow(peer, "logs", record)
        path = record.stdout_logfile if stream == "stdout" else record.stderr_logfile
        if path:
            return await asyncio.to_thread(_read_tail, path)
        buf = record.output[stream]
        return bytes(buf), record.dropped[stream] + len(buf)

    async def _read(
        self, peer: PeerIdentity, name: object, offset: int, length: int, stream: str
    ) -> str:
        _check_ints(offset, length)
        data, size = await self._log(peer, name, stream)
        return _slice(data, size, offset, length)

    async def read_stdout(self, peer: PeerIdentity, name: object, offset: int, length: int) -> str:
        return await self._read(peer, name, offset, length, "stdout")

    async def read_stderr(self, peer: PeerIdentity, name: object, offset: int, length: int) -> str:
        return await self._read(peer, name, offset, length, "stderr")

    async def _tail(
        self, peer: PeerIdentity, name: object, offset: int, length: int, stream: str
    ) -> list[Any]:
        _check_ints(offset, length)
        if offset < 0 or length < 0:
            raise RpcError(Fault.BAD_ARGUMENTS)
        data, size = await self._log(peer, name, stream)
        if offset >= size:
            return ["", size, False]
        overflow = size - offset > length
        if overflow:
            offset = size - length
        return [_text(_window(data, size, offset, size)), size, overflow]

    async def tail_stdout(self, peer: PeerIdentity, name: object, offset: int, length: int) -> Any:
        return await self._tail(peer, name, offset, length, "stdout")

    async def tail_stderr(self, peer: PeerIdentity, name: object, offset: int, length: int) -> Any:
        return await self._tail(peer, name, offset, length, "stderr")

    async def logtail(
        self,
        path: str,
        peer: PeerIdentity,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> int | None:
        """``GET /logtail/NAME[/stdout|/stderr]`` (``supervisorctl tail -f``): the last
        :data:`TAIL_BYTES` of the stream, then its output as it comes, until the client
        leaves or reads too slowly (more than :data:`TAIL_BACKLOG` bytes waiting)."""
        import urllib.parse

        parts = urllib.parse.unquote(path.partition("?")[0]).strip("/").split("/")
        if len(parts) not in (2, 3) or parts[0] != "logtail":
            return 404
        stream = parts[2] if len(parts) == 3 else "stdout"
        if stream not in ("stdout", "stderr"):
            return 404
        try:
            record = self._process(parts[1])
            data, _ = await self._log(peer, parts[1], stream)
        except RpcError as exc:
            return 403 if exc.code is Fault.FAILED else 404
        wake = asyncio.Event()
        pending: list[bytes] = []

        def sink(source: ProcRecord, pid: int, channel: str, chunk: bytes) -> None:
            if source is record and channel == stream:
                pending.append(chunk)
                wake.set()

        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain;charset=utf-8\r\n"
            b"Connection: close\r\n\r\n" + data[-TAIL_BYTES:]
        )
        self.tracker.output_sinks.append(sink)
        gone = asyncio.ensure_future(_until_eof(reader))  # the client hangs up
        try:
            while not gone.done():
                waiting = asyncio.ensure_future(wake.wait())
                await asyncio.wait({gone, waiting}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                wake.clear()
                if pending:
                    writer.write(b"".join(pending))
                    pending.clear()
                if writer.transport.get_write_buffer_size() > TAIL_BACKLOG:
                    break
        finally:
            self.tracker.output_sinks.remove(sink)
            gone.cancel()
        return None

    def clear_process_logs(self, peer: PeerIdentity, name: object) -> bool:
        record = self._process(name)
        self._allow(peer, "signal", record)
        for stream, path in (("stdout", record.stdout_logfile), ("stderr", record.stderr_logfile)):
            record.dropped[stream] += len(record.output[stream])
            record.output[stream].clear()
            if path:
                try:
                    with _open_log(path, os.O_WRONLY) as file:
                        file.truncate(0)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise RpcError(Fault.FAILED, f"{path}: {exc.strerror}") from None
        return True

    def clear_all_process_logs(self, peer: PeerIdentity) -> list[dict[str, Any]]:
        out = []
        for record in self.tracker.records.values():
            try:
                self.clear_process_logs(peer, record.namespec)
            except RpcError as exc:
                out.append(_status(record, exc.code, exc.text))
            else:
                out.append(_status(record, Fault.SUCCESS, "OK"))
        return out

    # ------------------------------------------------------------------ system

    def list_methods(self, peer: PeerIdentity) -> list[str]:
        return sorted(self.methods)

    def method_help(self, peer: PeerIdentity, name: object) -> str:
        func = self.methods.get(str(name))
        if func is None:
            raise RpcError(Fault.SIGNATURE_UNSUPPORTED)
        return func.__doc__ or ""

    def method_signature(self, peer: PeerIdentity, name: object) -> Any:
        if str(name) not in self.methods:
            raise RpcError(Fault.SIGNATURE_UNSUPPORTED)
        raise RpcError(Fault.SIGNATURE_UNSUPPORTED)

    async def multicall(self, peer: PeerIdentity, calls: object) -> list[Any]:
        if not isinstance(calls, list) or len(calls) > MAX_MULTICALL:
            raise RpcError(Fault.INCORRECT_PARAMETERS, f"a list of at most {MAX_MULTICALL} calls")
        results: list[Any] = []
        budget = MAX_RECORDS_PER_REQUEST
        for call in calls:
            if not isinstance(call, dict) or not isinstance(call.get("methodName"), str):
                results.append(_fault_dict(Fault.INCORRECT_PARAMETERS, "methodName missing"))
                continue
            name = call["methodName"]
            params = call.get("params", [])
            if name == "system.multicall":
                results.append(_fault_dict(Fault.INCORRECT_PARAMETERS, "recursive multicall"))
                continue
            if name == "supervisor.getAllProcessInfo":
                budget -= len(self.tracker.records)
                if budget < 0:
                    results.append(
                        _fault_dict(
                            Fault.FAILED,
                            f"more than {MAX_RECORDS_PER_REQUEST} process entries in one request",
                        )
                    )
                    continue
            try:
                value = await self.call(
                    name, list(params) if isinstance(params, list) else [], peer
                )
            except RpcError as exc:
                results.append(_fault_dict(exc.code, exc.text))
            else:
                results.append([_marshallable(value)])
        return results


_STOPPED = frozenset({ProcState.STOPPED, ProcState.EXITED, ProcState.FATAL, ProcState.UNKNOWN})
_MAX_READ = 1024 * 1024  # the most of a log file one read looks at
TAIL_BYTES = 1024  # what tail -f shows first
TAIL_BACKLOG = 1024 * 1024  # output waiting for a tail -f client that does not read


def _check_command(watcher: Any, name: str) -> None:
    """Supervisor's check before a spawn: the program's file exists and is executable
    (``NO_FILE``, ``NOT_EXECUTABLE``). A shell command is left to the shell."""
    import shlex
    import shutil

    get = getattr(watcher, "get_opt", None)
    if get is None or get("shell"):
        return
    program = get("executable")
    if not program:
        try:
            words = shlex.split(str(get("cmd") or ""))
        except ValueError:
            return
        if not words:
            return
        program = words[0]
    program = str(program)
    if "/" not in program:
        env = get("env") or {}
        found = shutil.which(program, path=env.get("PATH") or os.environ.get("PATH"))
        if found is None:
            raise RpcError(Fault.NO_FILE, f"{name}: can't find command {program!r}")
        return
    if "$(" in program:
        return  # filled in by the watcher at spawn time
    if not os.path.exists(program):
        raise RpcError(Fault.NO_FILE, f"{name}: can't find command {program!r}")
    if os.path.isdir(program) or not os.access(program, os.X_OK):
        raise RpcError(Fault.NOT_EXECUTABLE, f"{name}: command at {program!r} is not executable")


def _is_running(record: ProcRecord) -> bool:
    return record.state in _RUNNING


def _not_running(record: ProcRecord) -> bool:
    return record.state not in _RUNNING


def _status(record: ProcRecord, code: Fault, text: str) -> dict[str, Any]:
    return {"name": record.name, "group": record.group, "status": int(code), "description": text}


def _signum(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    elif isinstance(value, str):
        text = value.strip().upper()
        text = text if text.startswith("SIG") else f"SIG{text}"
        try:
            number = int(_signal.Signals[text])
        except KeyError:
            raise RpcError(Fault.BAD_SIGNAL, value[:50]) from None
    else:
        raise RpcError(Fault.BAD_SIGNAL, repr(value)[:50])
    if number not in {int(s) for s in _signal.Signals}:
        raise RpcError(Fault.BAD_SIGNAL, str(value)[:50])
    return number


def _signum_or(value: object, default: int) -> int:
    try:
        return _signum(value)
    except RpcError:
        return default


def _check_ints(*values: object) -> None:
    for value in values:
        if not isinstance(value, int) or isinstance(value, bool):
            raise RpcError(Fault.INCORRECT_PARAMETERS)


def _window(data: bytes, size: int, start: int, end: int) -> bytes:
    """Bytes ``start:end`` in absolute offsets of a stream whose last ``len(data)`` bytes
    (ending at ``size``) are known."""
    base = size - len(data)
    return data[max(0, start - base) : max(0, end - base)]


def _slice(data: bytes, size: int, offset: int, length: int) -> str:
    """Supervisor's ``readFile`` rule: a negative ``offset`` counts from the end (then
    ``length`` must be 0); ``length`` 0 reads to the end."""
    if length < 0 or (offset < 0 and length != 0):
        raise RpcError(Fault.BAD_ARGUMENTS)
    start = max(0, size + offset) if offset < 0 else offset
    end = size if length == 0 else min(size, start + length)
    if start >= end:
        return ""
    return _text(_window(data, size, start, end))


def _text(data: bytes) -> str:
    # XML 1.0 cannot carry most control characters: they are replaced, as a terminal would
    # show nothing useful for them anyway
    text = data.decode("utf-8", "replace")
    return text.translate(_XML_UNSAFE)


_XML_UNSAFE = {c: "\ufffd" for c in range(32) if c not in (9, 10, 13)}


async def _until_eof(reader: asyncio.StreamReader) -> None:
    # what a client sends after its request (supervisorctl adds an empty line) is dropped
    while await reader.read(4096):
        pass


def _open_log(path: str, flags: int = os.O_RDONLY) -> BinaryIO:
    """``path`` opened as circusd (root) for a peer that may be far less: only a regular file
    with one name, never through a link as its last component, nor through a link another
    user put on the way (``open_file``): a log dir writable by the app's user, or a dir
    above it, must not give that user root's files to read or truncate.

    Raises:
        OSError: missing, a link, a FIFO or device, or a second hard link.
    """
    fd = open_file(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise OSError(errno.EPERM, "not a plain log file (a link, a device, or linked twice)")
        return open(fd, "rb" if flags == os.O_RDONLY else "wb", closefd=True)  # noqa: SIM115
    except BaseException:
        os.close(fd)
        raise


def _read_tail(path: str) -> tuple[bytes, int]:
    """The last :data:`_MAX_READ` bytes of ``path`` and its size (empty when missing)."""
    try:
        with _open_log(path) as file:
            size = os.fstat(file.fileno()).st_size
            start = max(0, size - _MAX_READ)
            file.seek(start)
            return file.read(size - start), size
    except FileNotFoundError:
        return b"", 0
    except OSError as exc:
        raise RpcError(Fault.FAILED, f"{path}: {exc.strerror}") from None


def _read_file(path: str, offset: int, length: int) -> str:
    try:
        with _open_log(path) as file:
            size = os.fstat(file.fileno()).st_size
            start = max(0, size - _MAX_READ)
            file.seek(start)
            data = file.read(size - start)
    except FileNotFoundError:
        raise RpcError(Fault.NO_FILE, path) from None
    except OSError as exc:
        raise RpcError(Fault.FAILED, f"{path}: {exc.strerror}") from None
    return _slice(data, size, offset, length)


_BIG = 64 * 1024  # request bytes beyond which parsing moves to a worker thread
_BIG_LIST = 200  # result entries beyond which writing the XML does


def _loads(body: bytes) -> tuple[Any, Any]:
    return xmlrpc.client.loads(body, use_builtin_types=True)


def _dumps(result: Any) -> bytes:
    return xmlrpc.client.dumps((result,), methodresponse=True).encode()


def _fault(code: Fault, text: str) -> bytes:
    fault = xmlrpc.client.Fault(int(code), _text(text.encode()))
    return xmlrpc.client.dumps(fault, methodresponse=True).encode()


def _fault_dict(code: Fault, text: str) -> dict[str, Any]:
    return {"faultCode": int(code), "faultString": text}


def _marshallable(value: Any) -> Any:
    # xmlrpc's ints are 32-bit: bigger ones (a time in ms, a large offset) go as floats
    if isinstance(value, bool) or value is None:
        return value if value is not None else ""
    if isinstance(value, int):
        return value if -(2**31) <= value < 2**31 else float(value)
    if isinstance(value, dict):
        return {str(k): _marshallable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_marshallable(v) for v in value]
    return value

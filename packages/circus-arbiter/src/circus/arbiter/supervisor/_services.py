"""What a supervisord.conf adds to a running circusd besides its watchers: the XML-RPC control
API (``[unix_http_server]``, ``[inet_http_server]``) and the event listeners
(``[eventlistener:x]``), fed by Supervisor's view of the processes (``_tracker``).

The arbiter calls, in order: :meth:`SupervisorServices.open` with the watcher specs before
registering them (the servers are bound; listener commands are wrapped by ``_relay.py``;
every process gets Supervisor's ``SUPERVISOR_*`` environment), :meth:`attach` once they are
registered, :meth:`close` at shutdown.
"""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._events import EVENT_TYPES, log_payload, state_payload
from ._http import RpcHttpServer
from ._listener import ListenerHub, ListenerPool
from ._rpc import RpcInterface
from ._rpc_config import parse_inet_http_server, parse_unix_http_server
from ._states import ProcState
from ._tracker import ProcRecord, Tracker, Transition

if TYPE_CHECKING:
    from .._arbiter import Arbiter

__all__ = ["SupervisorServices", "listener_options"]

log = logging.getLogger("circus.arbiter")

RELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_relay.py")
DEFAULT_BUFFER = 10
MAX_BUFFER = 100_000


def listener_options(section: Any) -> tuple[frozenset[str], int]:
    """``events`` (required: known event type names, comma separated) and ``buffer_size``
    (default 10) of an ``[eventlistener:x]`` section.

    Raises:
        ConfigError: an unknown event type, no events, a bad buffer size.
    """
    text = section.get("events") or ""
    names = [n.strip().upper() for n in text.split(",") if n.strip()]
    if not names:
        raise section.error("events", "a comma-separated list of event types")
    for name in names:
        if name not in EVENT_TYPES:
            raise section.error("events", f"known event types ({name!r} is not one)")
    raw = (section.get("buffer_size") or str(DEFAULT_BUFFER)).strip()
    try:
        size = int(raw)
    except ValueError:
        raise section.error("buffer_size", "a positive integer") from None
    if not 1 <= size <= MAX_BUFFER:
        raise section.error("buffer_size", f"an integer between 1 and {MAX_BUFFER}")
    handler = section.get("result_handler")
    if handler and handler.strip() != "supervisor.dispatchers:default_handler":
        section.warn("result_handler", "not supported; OK and FAIL answers are handled as usual")
    return frozenset(names), size


class SupervisorServices:
    """The control API and event listeners of one supervisord.conf run by circusd.

    Args:
        arbiter: the daemon.
        supervisor: the loaded ``SupervisorConfig`` (``processes``, ``sections``,
            ``supervisord``).
    """

    def __init__(self, arbiter: Arbiter, supervisor: Any) -> None:
        self.arbiter = arbiter
        self.supervisor = supervisor
        sections: Mapping[str, Any] = getattr(supervisor, "sections", {}) or {}
        daemon = getattr(supervisor, "supervisord", None)
        self.identifier = str(getattr(daemon, "identifier", None) or "supervisor")
        records = [_record(p) for p in getattr(supervisor, "processes", ())]
        known = {r.watcher for r in records}
        # [eventlistener:x] processes: mapped as programs are, unless the loader did it
        self._listener_specs: list[dict[str, Any]] = []
        listeners: dict[str, list[str]] = {}
        for key, section in sections.items():
            if not key.startswith("eventlistener:"):
                continue
            name = key.partition(":")[2]
            listeners[name] = []
            for process, watcher in _expand(section, name, supervisor):
                listeners[name].append(process.watcher)
                if process.watcher not in known:
                    records.append(_record(process))
                    self._listener_specs.append(watcher.kwargs)
        self.tracker = Tracker(records, arbiter.table.find)
        self.servers: list[RpcHttpServer] = []
        for kind, parse in (
            ("unix_http_server", parse_unix_http_server),
            ("inet_http_server", parse_inet_http_server),
        ):
            section = sections.get(kind)
            if section is not None:
                spec = parse(section)
                self.servers.append(
                    RpcHttpServer(
                        spec,
                        self._handle,
                        self._stream,
                        max_connections=arbiter.settings.max_connections,
                    )
                )
        self.rpc_interface = RpcInterface(
            arbiter, self.tracker, self.identifier, getattr(daemon, "logfile", None)
        )
        pools = []
        for name, watchers in listeners.items():
            events, size = listener_options(sections[f"eventlistener:{name}"])
            pools.append(ListenerPool(name, watchers, events, size, self.identifier))
        self.listener_watchers = {w for p in pools for w in p.watchers}
        self.hub = (
            ListenerHub(f"circus-listeners-{os.getpid()}-{secrets.token_hex(8)}", pools, self._pids)
            if pools
            else None
        )

    async def _handle(self, body: bytes, peer: Any) -> bytes:
        return await self.rpc_interface.handle(body, peer)

    async def _stream(self, path: str, peer: Any, reader: Any, writer: Any) -> int | None:
        return await self.rpc_interface.logtail(path, peer, reader, writer)

    def _pids(self, watcher: str) -> list[int]:
        found = self.arbiter.table.find(watcher)
        return list(found.pids) if found is not None else []

    @property
    def server_url(self) -> str | None:
        """``SUPERVISOR_SERVER_URL`` for children: the unix server's, else the inet one's."""
        for server in self.servers:
            return server.url()
        return None

    # ------------------------------------------------------------------ lifecycle

    async def open(self, specs: Iterable[Any]) -> list[Any]:
        """Bind the servers and listener socket; the watcher specs to register, listener
        commands wrapped and Supervisor's environment added.

        Raises:
            OSError: a server cannot listen (the section is named).
        """
        for server in self.servers:
            await server.start()
            log.info("Supervisor's XML-RPC interface listening on %s", server.url())
            spec = server.spec
            if spec.kind == "inet" and spec.host not in ("127.0.0.1", "localhost", "::1"):
                log.warning(
                    "%s: [inet_http_server] port = %s:%s takes connections from other hosts; "
                    "circusd cannot tell who they are, so they may only do what [circus] "
                    "unauthenticated_access allows (read, by default): a password grants no "
                    "right, and it crosses the network in clear text",
                    spec.where,
                    spec.host or "*",
                    server.port,
                )
        if self.hub is not None:
            await self.hub.start()
        return [self._rewrite(spec) for spec in [*specs, *self._listener_specs]]

    def reloaded(self, config: Any) -> None:
        """``reloadconfig`` applied ``config``: follow its processes (event listeners are
        kept as they run: a change of an ``[eventlistener:x]`` needs a restart of circusd)."""
        supervisor = getattr(config, "supervisor", None)
        if supervisor is None:
            return
        self.supervisor = supervisor
        listeners = [
            r for r in self.tracker.records.values() if r.watcher in self.listener_watchers
        ]
        records = [_record(p) for p in getattr(supervisor, "processes", ())]
        self.tracker.replace([*records, *listeners])

    def rewrite(self, spec: Any) -> Any:
        """A watcher spec of the file as circusd runs it (see :meth:`open`); also used for the
        watchers a reload creates."""
        return self._rewrite(spec)

    def _rewrite(self, spec: Any) -> Any:
        if not isinstance(spec, Mapping):
            return spec
        name = spec.get("name")
        record = self.tracker.records.get(name) if isinstance(name, str) else None
        if record is None:
            return spec
        spec = dict(spec)
        env = dict(spec.get("env") or {})
        env.update(
            {
                "SUPERVISOR_ENABLED": "1",
                "SUPERVISOR_PROCESS_NAME": record.name,
                "SUPERVISOR_GROUP_NAME": record.group,
            }
        )
        url = self.server_url
        if url is not None:
            env.setdefault("SUPERVISOR_SERVER_URL", url)  # a program's serverurl wins
        spec["env"] = env
        if self.hub is not None and name in self.listener_watchers:
            argv = _argv(spec)
            spec["cmd"] = _interpreter(spec.get("uid"), spec.get("gid"))
            relay = ["-I", "-S", "-c", _relay_code(), "@" + self.hub.address, "--", *argv]
            spec["args"] = shlex.join(relay)
            spec["shell"] = False
            spec.pop("executable", None)
        return spec

    def attach(self) -> None:
        """Follow the registered watchers; start feeding the listeners."""
        self.tracker.attach_all()
        if self.hub is not None:
            self.tracker.observers.append(self._state_event)
            self.tracker.output_sinks.append(self._log_event)
            self.hub.publish("SUPERVISOR_STATE_CHANGE_RUNNING", b"")

    async def close(self) -> None:
        """Stop serving and listening (before the watchers stop). Never raises: the
        daemon's shutdown goes on whatever happens here."""
        parts: list[Any] = [*self.servers, *([self.hub] if self.hub is not None else [])]
        for part in parts:
            try:
                await part.close()
            except Exception:
                log.exception("closing Supervisor's %s failed", type(part).__name__)
        try:
            self.tracker.detach_all()
        except Exception:  # pragma: no cover - a watcher already closed
            log.exception("detaching from the watchers failed")

    # ------------------------------------------------------------------ events

    def _state_event(self, change: Transition) -> None:
        assert self.hub is not None
        if change.new is ProcState.STARTING:
            self.hub.spawned()
        name = f"PROCESS_STATE_{change.new.name}"
        if not self.hub.wants(name):
            return
        record = change.record
        payload = state_payload(
            record.name,
            record.group,
            change.old,
            change.new,
            pid=change.pid,
            tries=change.tries,
            expected=change.expected,
        )
        self.hub.publish(name, payload)

    def _log_event(self, record: ProcRecord, pid: int, stream: str, data: bytes) -> None:
        assert self.hub is not None
        enabled = record.stdout_events if stream == "stdout" else record.stderr_events
        if not enabled or record.watcher in self.listener_watchers:
            return
        name = f"PROCESS_LOG_{stream.upper()}"
        if self.hub.wants(name):
            self.hub.publish(name, log_payload(record.name, record.group, pid, stream, data))


def _record(process: Any) -> ProcRecord:
    exitcodes = getattr(process, "exitcodes", (0,))
    return ProcRecord(
        namespec=process.namespec,
        group=process.group,
        name=process.name,
        watcher=process.watcher,
        startsecs=float(getattr(process, "startsecs", 1.0)),
        exitcodes=tuple(exitcodes),
        stdout_logfile=getattr(process, "stdout_logfile", None),
        stderr_logfile=getattr(process, "stderr_logfile", None),
        stdout_events=bool(getattr(process, "stdout_events_enabled", False)),
        stderr_events=bool(getattr(process, "stderr_events_enabled", False)),
        priority=int(getattr(process, "priority", 999)),
        group_priority=int(getattr(process, "group_priority", getattr(process, "priority", 999))),
        config=process,
    )


def _expand(section: Any, group: str, supervisor: Any) -> list[tuple[Any, Any]]:
    expand = getattr(supervisor, "expand_listener", None)
    if expand is not None:  # a stand-in loader (tests) brings its own mapping
        return list(expand(section, group))
    from ._loader import expand_program

    return expand_program(section, group, supervisor, kind="eventlistener")


def _relay_code() -> str:
    with open(RELAY, encoding="utf-8") as file:
        return file.read()


def _interpreter(uid: object, gid: object) -> str:
    """A Python the listener's user can run for the relay: circusd's own, else the system's
    (circusd's may sit where that user cannot go, as a virtualenv under /root)."""
    import pwd
    import shutil

    if uid is None:
        return sys.executable
    try:
        entry = pwd.getpwuid(int(str(uid))) if str(uid).isdigit() else pwd.getpwnam(str(uid))
    except (KeyError, ValueError, OverflowError):
        return sys.executable
    if entry.pw_uid == os.geteuid():
        return sys.executable
    groups = set(os.getgrouplist(entry.pw_name, entry.pw_gid))
    if isinstance(gid, int) or str(gid).isdigit():
        groups.add(int(str(gid)))
    candidates = [sys.executable, getattr(sys, "_base_executable", None)]
    candidates += [shutil.which("python3"), "/usr/bin/python3"]
    for candidate in candidates:
        if candidate and _runs_as(candidate, entry.pw_uid, groups):
            return candidate
    return sys.executable


def _runs_as(path: str, uid: int, groups: set[int]) -> bool:
    """Whether ``uid`` (in ``groups``) may reach and execute ``path`` (symlinks followed)."""
    import stat

    real = os.path.realpath(path)
    parts = real.split(os.sep)
    for i in range(1, len(parts)):
        folder = os.sep.join(parts[:i]) or os.sep
        if not _allowed(folder, uid, groups, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            return False
    return _allowed(real, uid, groups, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)


def _allowed(path: str, uid: int, groups: set[int], user: int, group: int, other: int) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    if info.st_uid == uid:
        return bool(info.st_mode & user)
    if info.st_gid in groups:
        return bool(info.st_mode & group)
    return bool(info.st_mode & other)


def _argv(spec: Mapping[str, Any]) -> list[str]:
    """The command line a watcher spec would run, as an argv."""
    cmd = str(spec.get("cmd", ""))
    args = spec.get("args")
    if spec.get("shell"):
        line = cmd if not args else f"{cmd} {args if isinstance(args, str) else shlex.join(args)}"
        return ["/bin/sh", "-c", line]
    argv = shlex.split(cmd)
    if isinstance(args, str):
        argv += shlex.split(args)
    elif args:
        argv += [str(a) for a in args]
    return argv

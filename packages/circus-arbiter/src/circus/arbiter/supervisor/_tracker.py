"""Supervisor's view of our processes: each Supervisor process (one watcher, one process)
gets a state machine fed by its watcher's events, as Supervisor would see it.

``spawn`` makes a process STARTING; it is RUNNING once it has stayed up ``startsecs``
(STARTING → RUNNING is timed, the only timer). A process that dies while STARTING goes to
BACKOFF, one that dies while RUNNING to EXITED (``expected`` when its exit code is one of
``exitcodes``); a stop signal (``kill`` event) makes it STOPPING and its death STOPPED. A
watcher that stops on its own while its process is in BACKOFF, or that gives up (``give_up``:
spawn retries exhausted), gave up: FATAL.

Every transition is handed to the observers (the event-listener pools) with the values
Supervisor's ``PROCESS_STATE_*`` payloads carry. The last :data:`KEEP_OUTPUT` bytes of each
process's stdout and stderr are kept for ``readProcess*Log``/``tail`` when the program
has no log file, and chunks are handed on for ``PROCESS_LOG_*`` events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ._states import ProcState

__all__ = ["KEEP_OUTPUT", "ProcRecord", "Tracker", "Transition"]

log = logging.getLogger("circus.arbiter")

KEEP_OUTPUT = 64 * 1024


@dataclass
class ProcRecord:
    """One Supervisor process and what Supervisor would know of it."""

    namespec: str
    group: str
    name: str
    watcher: str
    startsecs: float = 1.0
    exitcodes: tuple[int, ...] = (0,)
    stdout_logfile: str | None = None
    stderr_logfile: str | None = None
    stdout_events: bool = False
    stderr_events: bool = False
    priority: int = 999
    group_priority: int = 999
    config: Any = None  # the loader's description of the process (``SupProcess``)
    state: ProcState = ProcState.STOPPED
    pid: int = 0
    start: float = 0.0
    stop: float = 0.0
    exitstatus: int = 0
    spawnerr: str = ""
    tries: int = 0
    expected: bool = True
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    output: dict[str, bytearray] = field(
        default_factory=lambda: {"stdout": bytearray(), "stderr": bytearray()}
    )
    dropped: dict[str, int] = field(default_factory=lambda: {"stdout": 0, "stderr": 0})
    _timer: asyncio.TimerHandle | None = None

    def description(self, now: float | None = None) -> str:
        """What ``supervisorctl status`` shows after the state name."""
        now = time.time() if now is None else now
        state = self.state
        if state is ProcState.RUNNING:
            seconds = max(0, int(now - self.start))
            hours, rest = divmod(seconds, 3600)
            minutes, secs = divmod(rest, 60)
            days, hours = divmod(hours, 24)
            uptime = f"{hours}:{minutes:02d}:{secs:02d}"
            if days:
                uptime = f"{days} day{'s' if days != 1 else ''}, {uptime}"
            return f"pid {self.pid}, uptime {uptime}"
        if state in (ProcState.FATAL, ProcState.BACKOFF):
            return self.spawnerr
        if state in (ProcState.STOPPED, ProcState.EXITED):
            if not self.start:
                return "Not started"
            return time.strftime("%b %d %I:%M %p", time.localtime(self.stop))
        return ""


#: What a reload may change in a kept record (the rest is its state).
_SETTINGS = (
    "watcher",
    "startsecs",
    "exitcodes",
    "stdout_logfile",
    "stderr_logfile",
    "stdout_events",
    "stderr_events",
    "priority",
    "group_priority",
    "config",
)


@dataclass(frozen=True)
class Transition:
    """One state change, with what ``PROCESS_STATE_*`` payloads carry."""

    record: ProcRecord
    old: ProcState
    new: ProcState
    pid: int
    tries: int
    expected: bool


Observer = Callable[[Transition], None]
OutputSink = Callable[[ProcRecord, int, str, bytes], None]


class Tracker:
    """Keeps one :class:`ProcRecord` per Supervisor process, fed by watcher events.

    Args:
        records: the processes, in Supervisor's display order.
        find_watcher: ``find_watcher(name)``: the watcher object now registered under that
            name, or ``None``.
    """

    def __init__(self, records: Iterable[ProcRecord], find_watcher: Callable[[str], Any]) -> None:
        self.records: dict[str, ProcRecord] = {r.namespec: r for r in records}
        self._groups: dict[str, list[ProcRecord]] = {}
        for record in sorted(self.records.values(), key=lambda r: (r.priority, r.name)):
            self._groups.setdefault(record.group, []).append(record)
        self._find = find_watcher
        self._attached: dict[str, tuple[Any, Any, Any]] = {}
        self.observers: list[Observer] = []
        self.output_sinks: list[OutputSink] = []

    def replace(self, records: Iterable[ProcRecord]) -> None:
        """Follow a new set of processes (a reload): a process kept by name keeps its
        record (state, pid, output) with the new settings; one gone is no longer followed."""
        fresh: dict[str, ProcRecord] = {}
        for record in records:
            old = self.records.get(record.namespec)
            if old is not None:
                for name in _SETTINGS:
                    setattr(old, name, getattr(record, name))
                record = old
            fresh[record.namespec] = record
        for name in [n for n in self._attached if n not in {r.watcher for r in fresh.values()}]:
            self._detach(name)
        self.records = fresh
        self._groups = {}
        for record in sorted(fresh.values(), key=lambda r: (r.priority, r.name)):
            self._groups.setdefault(record.group, []).append(record)
        self.attach_all()

    # ------------------------------------------------------------------ wiring

    def attach_all(self) -> None:
        """Listen to every watcher (again, for one replaced by a reload); cheap when nothing
        changed."""
        for record in self.records.values():
            watcher = self._find(record.watcher)
            current = self._attached.get(record.watcher)
            if current is not None and current[0] is watcher:
                continue
            if current is not None:
                self._detach(record.watcher)
            if watcher is None:
                continue
            listener = self._listener(record)
            observer = self._observer(record)
            watcher.add_listener(listener)
            watcher.add_output_observer(observer)
            self._attached[record.watcher] = (watcher, listener, observer)
            self._catch_up(record, watcher)

    def detach_all(self) -> None:
        """Stop listening (at shutdown)."""
        for name in list(self._attached):
            self._detach(name)
        for record in self.records.values():
            if record._timer is not None:
                record._timer.cancel()
                record._timer = None

    def _detach(self, name: str) -> None:
        watcher, listener, observer = self._attached.pop(name)
        watcher.remove_listener(listener)
        watcher.remove_output_observer(observer)

    def _catch_up(self, record: ProcRecord, watcher: Any) -> None:
        # a watcher already running when we attach (a reload): its process is RUNNING
        pids = list(getattr(watcher, "pids", []) or [])
        if pids and record.state not in (ProcState.RUNNING, ProcState.STARTING):
            record.pid = pids[0]
            record.start = record.start or time.time()
            self._move(record, ProcState.RUNNING)

    # ------------------------------------------------------------------ events

    def _listener(self, record: ProcRecord) -> Callable[[str, dict[str, Any]], None]:
        def on_event(event: str, payload: dict[str, Any]) -> None:
            if event == "spawn":
                self._spawned(record, payload)
            elif event == "reap":
                self._reaped(record, payload)
            elif event == "kill":
                if record.state in (ProcState.RUNNING, ProcState.STARTING):
                    self._move(record, ProcState.STOPPING)
            elif event == "stop":
                self._watcher_stopped(record)
            elif event == "give_up":
                self._gave_up(record, payload)

        return on_event

    def _observer(self, record: ProcRecord) -> Callable[[int, str, bytes], None]:
        def on_output(pid: int, stream: str, data: bytes) -> None:
            buf = record.output.get(stream)
            if buf is None:
                return
            # a stream with a log file is read from the file: nothing kept in memory
            if not (record.stdout_logfile if stream == "stdout" else record.stderr_logfile):
                buf += data
                if len(buf) > KEEP_OUTPUT:
                    cut = len(buf) - KEEP_OUTPUT
                    del buf[:cut]
                    record.dropped[stream] += cut
            for sink in tuple(self.output_sinks):
                try:
                    sink(record, pid, stream, data)
                except Exception:  # pragma: no cover - a sink never breaks the others
                    log.exception("supervisor output sink failed")

        return on_output

    def _spawned(self, record: ProcRecord, payload: dict[str, Any]) -> None:
        pid = payload.get("process_pid")
        record.pid = pid if isinstance(pid, int) else 0
        record.start = float(payload.get("time") or time.time())
        record.spawnerr = ""
        if record.state is ProcState.BACKOFF:
            record.tries += 1
        else:
            record.tries = 0
        self._move(record, ProcState.STARTING)
        if record._timer is not None:
            record._timer.cancel()
            record._timer = None
        if record.startsecs <= 0:
            self._move(record, ProcState.RUNNING)
            return
        pid_then = record.pid

        def running() -> None:
            record._timer = None
            if record.state is ProcState.STARTING and record.pid == pid_then:
                record.tries = 0
                self._move(record, ProcState.RUNNING)

        record._timer = asyncio.get_running_loop().call_later(record.startsecs, running)

    def _reaped(self, record: ProcRecord, payload: dict[str, Any]) -> None:
        pid = payload.get("process_pid")
        if isinstance(pid, int) and record.pid and pid != record.pid:
            return  # an older process of the watcher: not the one we show
        if record._timer is not None:
            record._timer.cancel()
            record._timer = None
        code = payload.get("exit_code")
        record.exitstatus = code if isinstance(code, int) and code >= 0 else 0
        record.stop = float(payload.get("time") or time.time())
        watcher = self._find(record.watcher)
        status = watcher.status() if watcher is not None else "stopped"
        if record.state is ProcState.STOPPING or status in ("stopping", "stopped"):
            self._move(record, ProcState.STOPPED)
        elif record.state is ProcState.STARTING:
            record.spawnerr = "Exited too quickly (process log may have details)"
            self._move(record, ProcState.BACKOFF)
        else:
            record.expected = isinstance(code, int) and code in record.exitcodes
            self._move(record, ProcState.EXITED)
        record.pid = 0

    def _gave_up(self, record: ProcRecord, payload: dict[str, Any]) -> None:
        # spawn retries exhausted (a command that cannot run) or no retry left: FATAL
        if record.state in (ProcState.STOPPED, ProcState.STARTING, ProcState.BACKOFF):
            reason = str(payload.get("reason") or "")
            if record.state is not ProcState.BACKOFF or not record.spawnerr:
                record.spawnerr = reason[:200]
            if record._timer is not None:
                record._timer.cancel()
                record._timer = None
            record.stop = time.time()
            record.pid = 0
            self._move(record, ProcState.FATAL)

    def _watcher_stopped(self, record: ProcRecord) -> None:
        if record.state is ProcState.BACKOFF:
            self._move(record, ProcState.FATAL)
        elif record.state in (ProcState.STARTING, ProcState.RUNNING, ProcState.STOPPING):
            record.stop = time.time()
            self._move(record, ProcState.STOPPED)
            record.pid = 0

    def _move(self, record: ProcRecord, new: ProcState) -> None:
        old = record.state
        if old is new:
            return
        record.state = new
        record.changed.set()
        record.changed = asyncio.Event()
        transition = Transition(record, old, new, record.pid, record.tries, record.expected)
        for observer in tuple(self.observers):
            try:
                observer(transition)
            except Exception:  # pragma: no cover - an observer never breaks the others
                log.exception("supervisor state observer failed")

    # ------------------------------------------------------------------ queries

    def find(self, namespec: str) -> ProcRecord | None:
        """The process named ``group:name`` (or ``name`` when that is its namespec)."""
        record = self.records.get(namespec)
        if record is None and ":" in namespec:
            group, _, name = namespec.partition(":")
            if group == name:
                record = self.records.get(name)
        return record

    def group(self, name: str) -> list[ProcRecord]:
        """Every process of group ``name``, in priority order (Supervisor's, then names)."""
        return list(self._groups.get(name, ()))

    def lexical(self) -> list[ProcRecord]:
        """Every process by group name, then process name (``getAllProcessInfo``)."""
        return sorted(self.records.values(), key=lambda r: (r.group, r.name))

    def by_priority(self) -> list[ProcRecord]:
        """Every process as Supervisor's ``*AllProcesses`` go through them: groups by
        priority then name, processes by priority then name."""
        return sorted(
            self.records.values(), key=lambda r: (r.group_priority, r.group, r.priority, r.name)
        )

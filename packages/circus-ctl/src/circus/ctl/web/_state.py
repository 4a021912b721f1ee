"""What the dashboard knows about one daemon: a snapshot folded from control answers.

Pure data and pure functions (no I/O), so the page, the websocket and ``/metrics`` all read
the same cached snapshot and the folding can be tested without a daemon.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DaemonState", "ProcessStats", "WatcherState", "parse_bytes"]

_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}


def parse_bytes(value: Any) -> float | None:
    """Turn a ``stats`` memory figure (``"8.23M"``, ``"512K"``, ``1234``) into bytes.

    Returns None for ``"N/A"`` or anything unreadable. The daemon sends human strings with
    1024-based suffixes, so the result is approximate to the string's precision.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip().upper().removesuffix("IB").removesuffix("B")
    suffix = text[-1:] if text[-1:].isalpha() else ""
    number = text[: len(text) - len(suffix)] if suffix else text
    if suffix not in _UNITS:
        return None
    try:
        return float(round(float(number) * _UNITS[suffix]))
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass
class ProcessStats:
    """One process's latest figures; None where the daemon answered ``"N/A"``."""

    pid: int
    wid: int | None = None
    cpu: float | None = None
    mem_percent: float | None = None
    rss: float | None = None
    age: float | None = None
    cmdline: str = ""
    #: Readiness (``starting``, ``ready``, ``unready``, ``unhealthy``) and the last sd_notify
    #: ``STATUS=`` text, for a watcher with readiness or liveness; None / "" otherwise.
    health: str | None = None
    status_text: str = ""

    @classmethod
    def from_info(cls, pid: int, info: Mapping[str, Any]) -> ProcessStats:
        """Build from one ``stats`` info dict (upstream's keys)."""
        wid = info.get("wid")
        return cls(
            pid=pid,
            wid=wid if isinstance(wid, int) and not isinstance(wid, bool) else None,
            cpu=_number(info.get("cpu")),
            mem_percent=_number(info.get("mem")),
            rss=parse_bytes(info.get("mem_info1")),
            age=_number(info.get("age")),
            cmdline=str(info.get("cmdline") or ""),
            health=str(info["health"]) if isinstance(info.get("health"), str) else None,
            status_text=str(info.get("status_text") or ""),
        )

    def to_json(self) -> dict[str, Any]:
        """The shape sent to the page."""
        return {
            "pid": self.pid,
            "wid": self.wid,
            "cpu": self.cpu,
            "mem": self.mem_percent,
            "rss": self.rss,
            "age": self.age,
            "cmdline": self.cmdline,
            "health": self.health,
            "status_text": self.status_text,
        }


def _total(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


@dataclass
class WatcherState:
    """One watcher: its state (``active``, ``stopped``...), processes and counters."""

    name: str
    status: str = "unknown"
    processes: dict[int, ProcessStats] = field(default_factory=dict)
    restarts: int = 0
    #: While ``status`` is ``crash-looping``: the daemon's details (exits, exit_code, ...).
    crash_loop: dict[str, Any] | None = None
    #: Bumped whenever ``processes`` changes (a stats answer, a spawn or reap event), so a
    #: snapshot can leave out a process table the pages already have.
    version: int = 0
    #: The watchers this one requires (``depends_on``); None until asked (see DaemonLink).
    depends_on: list[str] | None = None

    @property
    def cpu(self) -> float | None:
        """Sum of the processes' CPU percentages (None when none is known)."""
        return _total([p.cpu for p in self.processes.values()])

    @property
    def rss(self) -> float | None:
        """Sum of the processes' resident memory in bytes (None when none is known)."""
        return _total([p.rss for p in self.processes.values()])

    @property
    def mem_percent(self) -> float | None:
        """Sum of the processes' memory percentages."""
        return _total([p.mem_percent for p in self.processes.values()])

    def to_json(self, processes: bool = True) -> dict[str, Any]:
        """The shape sent to the page; without ``processes`` the process table is ``null``
        (unchanged since the page's last snapshot)."""
        return {
            "name": self.name,
            "status": self.status,
            "numprocesses": len(self.processes),
            "cpu": self.cpu,
            "mem": self.mem_percent,
            "rss": self.rss,
            "restarts": self.restarts,
            "crash_loop": self.crash_loop,
            "depends_on": list(self.depends_on or ()),
            "processes": [p.to_json() for _, p in sorted(self.processes.items())]
            if processes
            else None,
        }


@dataclass
class DaemonState:
    """Everything known about one daemon, as of ``updated`` (epoch seconds).

    ``index`` identifies the daemon in URLs and messages; ``connected`` is False until the
    first answer and after any poll that got no answer, with ``error`` saying why.
    """

    index: int
    endpoint: str
    connected: bool = False
    error: str | None = None
    watchers: dict[str, WatcherState] = field(default_factory=dict)
    circusd: ProcessStats | None = None
    pubsub_endpoint: str | None = None
    updated: float = 0.0

    def fold(
        self,
        status: Mapping[str, Any],
        stats: Mapping[str, Any] | None,
        dstats: Mapping[str, Any] | None = None,
    ) -> None:
        """Replace the watcher table with the answers of ``status``, ``stats`` and ``dstats``.

        Watchers missing from ``status`` are forgotten (removed with ``rm``); restart
        counters of the others survive. ``stats`` None keeps every process table as it is
        (the per-process figures are asked for less often than ``status``, see DaemonLink).
        """
        statuses = status.get("statuses") or {}
        infos = (stats or {}).get("infos") or {}
        names = {str(n) for n in statuses} | {str(n) for n in infos}
        old = self.watchers
        fresh: dict[str, WatcherState] = {}
        for name in sorted(names):
            watcher = old.get(name) or WatcherState(name)
            watcher.status = str(statuses.get(name, watcher.status))
            loop = (status.get("crash_loops") or {}).get(name)
            watcher.crash_loop = dict(loop) if isinstance(loop, Mapping) else None
            health = (status.get("health") or {}).get(name)
            if stats is None:
                if _fold_health(watcher.processes, health):
                    watcher.version += 1
                fresh[name] = watcher
                continue
            processes = _processes(infos.get(name))
            _fold_health(processes, health)
            watcher.processes = processes
            watcher.version += 1
            fresh[name] = watcher
        self.watchers = fresh
        info = (dstats or {}).get("info")
        if isinstance(info, Mapping):
            daemon_pid = info.get("pid")
            self.circusd = ProcessStats.from_info(
                daemon_pid if isinstance(daemon_pid, int) else 0, info
            )
        self.connected = True
        self.error = None
        self.updated = time.time()

    def fold_stats(self, stats: Mapping[str, Any]) -> None:
        """Replace the process tables with a ``stats`` answer, keeping the watchers' states
        and the readiness the last ``status`` gave (fresher than ``stats``)."""
        infos = stats.get("infos") or {}
        if not isinstance(infos, Mapping):
            return
        for name in sorted({str(n) for n in infos} | set(self.watchers)):
            watcher = self.watchers.get(name)
            if watcher is None:
                watcher = self.watchers[name] = WatcherState(name)
            processes = _processes(infos.get(name))
            for pid, proc in processes.items():
                old = watcher.processes.get(pid)
                if old is not None and old.health is not None:
                    proc.health, proc.status_text = old.health, old.status_text
            watcher.processes = processes
            watcher.version += 1
        self.updated = time.time()

    def process_started(self, watcher: str, pid: int, started: Any = None) -> None:
        """A ``spawn`` event: ``pid`` joins ``watcher``'s table (figures come with the next
        stats answer)."""
        state = self.watchers.get(watcher)
        if state is None or pid in state.processes:
            return
        age = time.time() - started if isinstance(_number(started), float) else None
        state.processes[pid] = ProcessStats(pid=pid, age=age)
        state.version += 1

    def process_gone(self, watcher: str, pid: int) -> None:
        """A ``reap`` event: ``pid`` leaves ``watcher``'s table."""
        state = self.watchers.get(watcher)
        if state is not None and state.processes.pop(pid, None) is not None:
            state.version += 1

    def count_restart(self, watcher: str) -> None:
        """Count one process of ``watcher`` that exited without being asked to."""
        state = self.watchers.get(watcher)
        if state is None:
            state = self.watchers[watcher] = WatcherState(watcher)
        state.restarts += 1

    def to_json(self, known: Mapping[str, int] | None = None) -> dict[str, Any]:
        """The snapshot message sent to the page (``type: snapshot``).

        ``known`` maps watcher names to the :attr:`WatcherState.version` the pages already
        have: those process tables are sent as ``null`` (unchanged). Without it, all are sent.
        """
        known = known or {}
        return {
            "type": "snapshot",
            "daemon": self.index,
            "endpoint": self.endpoint,
            "connected": self.connected,
            "error": self.error,
            "updated": self.updated,
            "circusd": self.circusd.to_json() if self.circusd else None,
            "watchers": [
                w.to_json(processes=known.get(name) != w.version)
                for name, w in sorted(self.watchers.items())
            ],
        }

    def versions(self) -> dict[str, int]:
        """Each watcher's process-table version (what a snapshot just sent carried)."""
        return {name: w.version for name, w in self.watchers.items()}


def _processes(table: Any) -> dict[int, ProcessStats]:
    """One watcher's process table from its part of a ``stats`` answer."""
    processes: dict[int, ProcessStats] = {}
    if isinstance(table, Mapping):
        for pid_text, info in table.items():
            try:
                pid = int(pid_text)
            except (TypeError, ValueError):
                continue
            # A process that vanished between listing and sampling answers a string.
            if isinstance(info, Mapping):
                processes[pid] = ProcessStats.from_info(pid, info)
    return processes


def _fold_health(processes: dict[int, ProcessStats], table: Any) -> bool:
    """Readiness from the ``status`` answer's ``health`` table (fresher than ``stats``);
    True when a process's readiness or status text changed."""
    if not isinstance(table, Mapping):
        return False
    changed = False
    for pid_text, row in table.items():
        try:
            proc = processes.get(int(pid_text))
        except (TypeError, ValueError):
            continue
        if proc is None or not isinstance(row, Mapping):
            continue
        health, text = row.get("health"), row.get("status_text")
        if isinstance(health, str) and health != proc.health:
            proc.health = health
            changed = True
        if isinstance(text, str) and text != proc.status_text:
            proc.status_text = text
            changed = True
    return changed

"""circus-top: live CPU and memory per watcher and process.

Reads the stats channel (``stat.*`` topics published every second by circusd-stats or a
compatible daemon). If no stats publisher answers, it falls back to polling the ``stats``
command over the control channel, so it works against any daemon. ``--once`` prints one
plain table and exits; otherwise a curses view refreshes until ``q``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from . import __version__, protocol
from ._client import CircusClient
from ._consumer import CircusConsumer
from .errors import CallError, CtlError

__all__ = ["ProcessRow", "Snapshot", "main", "render_table"]


@dataclass
class ProcessRow:
    """One process's latest figures (``"N/A"`` where the daemon could not read them)."""

    watcher: str
    pid: str
    command: str
    cpu: Any
    mem: Any
    age: Any
    seen: float = field(default_factory=time.monotonic)


class Snapshot:
    """The latest row per (watcher, pid); rows not refreshed within ``ttl`` are dropped."""

    def __init__(self, ttl: float = 3.0) -> None:
        self.ttl = ttl
        self.rows: dict[tuple[str, str], ProcessRow] = {}

    def update(self, watcher: str, pid: str, info: Mapping[str, Any]) -> None:
        """Record the figures of one process from a stats info dict."""
        command = info.get("name") or info.get("cmdline") or ""
        self.rows[(watcher, pid)] = ProcessRow(
            watcher,
            pid,
            str(command),
            info.get("cpu", "N/A"),
            info.get("mem", "N/A"),
            info.get("age", "N/A"),
        )

    def add_stat_message(self, topic: str, payload: Mapping[str, Any]) -> None:
        """Fold one ``stat.*`` message in (aggregates and socket stats are recomputed/ignored)."""
        try:
            watcher, sub = protocol.parse_stat_topic(topic)
        except CtlError:
            return
        if sub is None or watcher == "sockets":
            return
        self.update(watcher, sub, payload)

    def add_stats_answer(self, answer: Mapping[str, Any]) -> None:
        """Fold in a ``stats`` command answer (``infos: {watcher: {pid: info}}``)."""
        for watcher, processes in (answer.get("infos") or {}).items():
            if not isinstance(processes, Mapping):
                continue
            for pid, info in processes.items():
                if isinstance(info, Mapping):
                    self.update(str(watcher), str(pid), info)

    def expire(self) -> None:
        """Forget processes not reported within ``ttl`` seconds (they exited)."""
        now = time.monotonic()
        for key in [k for k, row in self.rows.items() if now - row.seen > self.ttl]:
            del self.rows[key]

    def by_watcher(self) -> dict[str, list[ProcessRow]]:
        """Rows grouped by watcher name (sorted), processes sorted by pid."""
        groups: dict[str, list[ProcessRow]] = {}
        for (watcher, _), row in sorted(
            self.rows.items(), key=lambda kv: (kv[0][0], _pid(kv[0][1]))
        ):
            groups.setdefault(watcher, []).append(row)
        return groups


def _pid(pid: str) -> int:
    return int(pid) if pid.isdigit() else 0


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _fmt_pct(value: Any) -> str:
    number = _num(value)
    return "N/A" if number is None else f"{number:.1f}"


def _fmt_mem(value: Any) -> str:
    number = _num(value)
    return "N/A" if number is None else f"{number:.3f}"


def _fmt_age(value: Any) -> str:
    number = _num(value)
    if number is None or math.isnan(number):
        return "N/A"
    seconds = int(number)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


_HEADER = f"{'WATCHER':<20} {'PID':>8} {'COMMAND':<16} {'CPU%':>6} {'MEM%':>7} {'AGE':>8}"


def render_table(snapshot: Snapshot) -> str:
    """Render the plain table: a row per process, then a per-watcher total row.

    The total row shows the process count, the summed CPU and memory, and the oldest age.
    """
    lines = [_HEADER]
    for watcher, rows in snapshot.by_watcher().items():
        for row in rows:
            lines.append(
                f"{watcher:<20} {row.pid:>8} {row.command[:16]:<16} {_fmt_pct(row.cpu):>6} "
                f"{_fmt_mem(row.mem):>7} {_fmt_age(row.age):>8}"
            )
        cpus = [c for c in (_num(r.cpu) for r in rows) if c is not None]
        mems = [m for m in (_num(r.mem) for r in rows) if m is not None]
        ages = [a for a in (_num(r.age) for r in rows) if a is not None]
        lines.append(
            f"{watcher:<20} {'(' + str(len(rows)) + ')':>8} {'total':<16} "
            f"{_fmt_pct(sum(cpus) if cpus else 'N/A'):>6} "
            f"{_fmt_mem(sum(mems) if mems else 'N/A'):>7} "
            f"{_fmt_age(max(ages) if ages else 'N/A'):>8}"
        )
    if len(lines) == 1:
        lines.append("(no processes)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- sources


def _collect_round(consumer: CircusConsumer, first_wait: float) -> Snapshot | None:
    """Read one publishing round from the stats channel, or None if nothing arrives.

    A round ends when a topic comes again (the publisher started its next burst) or 1.5 s
    after the first message.
    """
    first = consumer.recv(first_wait)
    if first is None:
        return None
    snapshot = Snapshot()
    snapshot.add_stat_message(*first)
    seen = {first[0]}
    deadline = time.monotonic() + 1.5
    while (remaining := deadline - time.monotonic()) > 0:
        message = consumer.recv(remaining)
        if message is None or message[0] in seen:
            break
        seen.add(message[0])
        snapshot.add_stat_message(*message)
    return snapshot


def _poll_control(client: CircusClient) -> Snapshot:
    snapshot = Snapshot()
    snapshot.add_stats_answer(client.call("stats", {}))
    return snapshot


def _discover_stats_endpoint(ctl_endpoint: str, timeout: float, **ssh: Any) -> str | None:
    try:
        with CircusClient(ctl_endpoint, timeout, **ssh) as client:
            options = client.call("globaloptions", {}).get("options") or {}
    except CtlError:
        return None
    endpoint = options.get("stats_endpoint")
    return str(endpoint) if endpoint else None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="circus-top",
        description="Live CPU and memory of Circus watchers and processes.",
    )
    p.add_argument(
        "--endpoint",
        help="stats endpoint (default: asked from circusd, else "
        f"{protocol.DEFAULT_STATS_ENDPOINT})",
    )
    p.add_argument(
        "--ctl-endpoint",
        help="control endpoint, for discovery and the polling "
        "fallback (default: $CIRCUSCTL_ENDPOINT or "
        f"{protocol.DEFAULT_ENDPOINT})",
    )
    p.add_argument(
        "--process-timeout",
        type=float,
        default=3.0,
        help="forget a process not reported for this long (default 3)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=3.0,
        help="seconds to wait for the stats channel before polling (default 3)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=protocol.DEFAULT_TIMEOUT,
        help="control channel timeout (default 5)",
    )
    p.add_argument("--ssh", metavar="USER@HOST:PORT", help="tunnel through SSH")
    p.add_argument("--ssh_keyfile", "--ssh-keyfile", metavar="FILE", help="SSH key")
    p.add_argument(
        "--curve-key", metavar="FILE", help="our CURVE NAME.key_secret (env CIRCUSCTL_CURVE_KEY)"
    )
    p.add_argument(
        "--curve-server-key",
        metavar="FILE",
        help="circusd's public CURVE key (env CIRCUSCTL_CURVE_SERVER_KEY)",
    )
    p.add_argument("--once", action="store_true", help="print one table and exit")
    p.add_argument("--version", action="version", version=f"circus-top {__version__}")
    return p


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    """Run circus-top; return the exit code (1 if neither channel answers)."""
    ns = _parser().parse_args(argv)
    out = stdout or sys.stdout
    ctl = ns.ctl_endpoint or os.environ.get("CIRCUSCTL_ENDPOINT") or protocol.DEFAULT_ENDPOINT
    # the same connection options (SSH tunnel, CURVE keys) for every client and consumer
    ssh = {
        "ssh_server": ns.ssh,
        "ssh_keyfile": ns.ssh_keyfile,
        "curve_key": ns.curve_key or os.environ.get("CIRCUSCTL_CURVE_KEY") or None,
        "curve_server_key": (
            ns.curve_server_key or os.environ.get("CIRCUSCTL_CURVE_SERVER_KEY") or None
        ),
    }
    stats_endpoint = ns.endpoint or _discover_stats_endpoint(ctl, min(ns.timeout, 2.0), **ssh)
    stats_endpoint = stats_endpoint or protocol.DEFAULT_STATS_ENDPOINT
    try:
        consumer = CircusConsumer("stat.", stats_endpoint, **ssh)
    except CtlError as exc:
        print(f"circus-top: {exc}", file=sys.stderr)
        return 1
    with consumer:
        snapshot = _collect_round(consumer, ns.wait)
        client: CircusClient | None = None
        try:
            if snapshot is None:
                client = CircusClient(ctl, ns.timeout, **ssh)
                try:
                    snapshot = _poll_control(client)
                except (CtlError, CallError) as exc:
                    print(
                        f"circus-top: no stats on {stats_endpoint} within {ns.wait:g}s, "
                        f"and the control channel failed: {exc}",
                        file=sys.stderr,
                    )
                    return 1
            if ns.once:
                print(render_table(snapshot), file=out)
                return 0
            from ._top_curses import run_curses

            return run_curses(consumer, client, snapshot, ns.process_timeout)
        except KeyboardInterrupt:
            return 0
        finally:
            if client is not None:
                client.close()

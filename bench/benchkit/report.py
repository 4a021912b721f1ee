"""Medians, ratios, targets, the text table and the JSON document.

Every ratio is ``value(a) / value(b)`` of the medians, whatever the unit: for times below 1 is
faster; for MB/s (stdout) above 1 is faster. Targets apply to ``ours`` (bench/README.md).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .settings import Settings
from .workloads import Results


@dataclass(frozen=True)
class Row:
    """One table row: a metric key, what it is, its unit."""

    key: str
    label: str
    unit: str


@dataclass(frozen=True)
class Target:
    """A promise about ``ours`` on ``key``: against a peer's median, or an absolute bound.

    ``ref`` None means ``ours <= bound`` in the row's unit; otherwise the ratio
    ``ours / ref`` must be ``<= bound`` (or ``>= bound`` when ``at_least``).
    """

    key: str
    text: str
    bound: float
    ref: str | None = None
    at_least: bool = False
    ref_key: str | None = None  # with ``ref``: ours <= ref's median of ref_key + bound

    def check(
        self, medians: dict[str, float | None], ref_medians: dict[str, float | None] | None = None
    ) -> tuple[float | None, bool | None]:
        """(the compared figure, met?) -- (None, None) when something was not measured.

        ``ref_medians`` are the medians of ``ref_key`` (only for a target that has one).
        """
        ours = medians.get("ours")
        if ours is None:
            return None, None
        if self.ref is None:
            return ours, ours <= self.bound
        if self.ref_key is not None:
            base = (ref_medians or {}).get(self.ref)
            if base is None:
                return None, None
            return ours, ours <= base + self.bound
        # several peers ("circus,supervisor"): the figure is the ratio to the hardest of them
        refs = [medians.get(r) for r in self.ref.split(",")]
        if not all(refs):
            return None, None
        ratios = [ours / r for r in refs if r]
        ratio = min(ratios) if self.at_least else max(ratios)
        return ratio, ratio >= self.bound if self.at_least else ratio <= self.bound


def rows_for(settings: Settings) -> list[Row]:
    """The table rows for what ``settings`` measures, in display order."""
    mn = settings.metrics_n
    rows = [Row(f"start.{n}", f"start {n:,}", "s") for n in settings.ns]
    rows += [Row(f"stop.{n}", f"stop {n:,}", "s") for n in settings.ns]
    rows += [Row(f"rss.{n}", f"daemon RSS, {n:,} procs", "MiB") for n in settings.ns]
    rows += [Row(f"launch.{n}", f"launch to {n:,} running", "s") for n in settings.launch_ns]
    rows += [
        Row("idle_cpu", f"daemon CPU, {mn:,} procs, {settings.idle_seconds:g} s idle", "ms"),
        Row("rtt.status", f"status round trip, {mn:,} procs", "ms"),
        Row("rtt.list", f"list round trip, {mn:,} procs", "ms"),
        Row("cli.status", f"CLI status wall time, {mn:,} procs", "ms"),
        Row("respawn", f"respawn after SIGKILL (median of {settings.respawns})", "ms"),
        Row("stdout", f"stdout to file, {settings.stdout_bytes / 1e6:g} MB (raw: splice)", "MB/s"),
        Row("stdout.cat", "  raw: pipe through cat", "MB/s"),
        Row("stdout.direct", "  raw: child writes the file", "MB/s"),
    ]
    flood = f"{settings.chatty_n:,} chatty writers, {settings.chatty_rate:g} MB/s"
    rows += [
        Row("chatty.cpu", f"{flood}: daemon CPU per MB to file", "ms/MB"),
        Row("chatty.lost", "  lines lost or torn in the file", "lines"),
        Row("chatty.status", "  status round trip during it, median", "ms"),
        Row("chatty.status_max", "  status round trip during it, max", "ms"),
        Row("chatty.follow.cpu", "  + a logs -f follower: daemon CPU per MB", "ms/MB"),
        Row("chatty.follow.missed", "  + a logs -f follower: lines it missed or got torn", "lines"),
        Row("chatty.follow.seq", "    missed, announced by seq (circusd dropped them)", "lines"),
        Row("chatty.follow.unexplained", "    missed, no seq gap seen", "lines"),
        Row("chatty.follow.torn", "    torn", "lines"),
        Row("chatty.follow.kept_up", "    follower kept up (1 yes, 0 no; median of runs)", "-"),
    ]
    return rows


def targets_for(settings: Settings) -> list[Target]:
    """The issue's targets; the absolute ones only hold at the N they were set for."""
    t = [
        Target("start.1000", "<= 1.5x raw", 1.5, "raw"),
        Target("stop.1000", "<= 2x raw", 2.0, "raw"),
        Target("rss.1000", "<= Circus", 1.0, "circus"),
        Target("respawn", "<= 3x raw", 3.0, "raw"),
        Target("launch.200", "<= 0.5x Circus", 0.5, "circus"),
        Target("launch.1000", "<= 0.5x Circus", 0.5, "circus"),
        Target("stdout", ">= Supervisor", 1.0, "supervisor", at_least=True),
        # "unmeasurable": not one clock tick (10 ms) of CPU over the idle window.
        Target("idle_cpu", "unmeasurable (< 1 tick)", 10.0),
        Target("chatty.cpu", "<= Circus and Supervisor", 1.0, "circus,supervisor"),
        Target("chatty.lost", "none", 0.0),
        Target("chatty.follow.missed", "none", 0.0),
    ]
    if settings.metrics_n in (1000, 10_000):
        t.append(Target("rtt.list", "<= 10 ms", 10.0))
    if settings.metrics_n == 10_000:
        t.append(Target("cli.status", "<= 150 ms", 150.0))
    t += [
        Target("start.10000", "<= 1.5x raw", 1.5, "raw"),
        Target("rss.10000", "<= Circus at 1,000 + 20 MiB", 20.0, "circus", ref_key="rss.1000"),
    ]
    if settings.chatty_n == 1000:
        t.append(Target("chatty.status_max", "<= 10 ms throughout", 10.0))
    return t


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None) -> str:
    """A number in about 3 significant digits, '-' when missing."""
    if value is None:
        return "-"
    a = abs(value)
    if a >= 100:
        return f"{value:,.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def ratio_pairs(peers: tuple[str, ...]) -> list[tuple[str, str]]:
    """Which ratios the table shows: each peer to raw, and ours to each other peer."""
    pairs = [(p, "raw") for p in peers if p != "raw" and "raw" in peers]
    pairs += [("ours", p) for p in peers if p not in ("ours", "raw") and "ours" in peers]
    return pairs


_SHORT = {"supervisor": "sup"}


def build(
    settings: Settings,
    results: Results,
    backends: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The JSON document: machine, settings, per-metric runs/medians/errors, ratios, targets."""
    peers = settings.peers
    metrics: dict[str, Any] = {}
    for row in rows_for(settings):
        values = {}
        for b in peers:
            runs = results.values.get(b, {}).get(row.key, [])
            errors = results.errors.get(b, {}).get(row.key, [])
            if runs or errors:
                values[b] = {"runs": runs, "errors": errors, "median": _median(runs)}
        if not values:
            continue
        medians = {b: v["median"] for b, v in values.items()}
        ratios = {
            f"{a}/{b}": medians[a] / medians[b]
            for a, b in ratio_pairs(peers)
            if medians.get(a) is not None and medians.get(b)
        }
        metrics[row.key] = {
            "label": row.label,
            "unit": row.unit,
            "values": values,
            "ratios": ratios,
        }
    targets = []
    for t in targets_for(settings):
        medians = {b: v["median"] for b, v in metrics.get(t.key, {}).get("values", {}).items()}
        refs = metrics.get(t.ref_key, {}).get("values", {}) if t.ref_key else {}
        figure, met = t.check(medians, {b: v["median"] for b, v in refs.items()})
        targets.append({"metric": t.key, "target": t.text, "figure": figure, "met": met})
    return {
        "schema": 1,
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "ns": list(settings.ns),
            "launch_ns": list(settings.launch_ns),
            "metrics_n": settings.metrics_n,
            "stdout_bytes": settings.stdout_bytes,
            "respawns": settings.respawns,
            "chatty": [settings.chatty_n, settings.chatty_rate, settings.chatty_seconds],
            "idle_seconds": settings.idle_seconds,
            "rtt_calls": settings.rtt_calls,
            "cli_calls": settings.cli_calls,
            "runs": settings.runs,
            "peers": list(peers),
            "only": sorted(settings.only),
            "small": settings.small,
        },
        "backends": backends,
        "metrics": metrics,
        "targets": targets,
    }


def table(doc: dict[str, Any]) -> str:
    """The text table of ``doc`` (medians, ratios, targets for ours)."""
    peers = [p for p in doc["settings"]["peers"]]
    pairs = ratio_pairs(tuple(peers))
    targets = {t["metric"]: t for t in doc["targets"]}
    head = ["workload", "unit", *peers]
    head += [f"{_SHORT.get(a, a)}/{_SHORT.get(b, b)}" for a, b in pairs]
    head += ["target (ours)", "met"]
    lines = [head]
    for key, m in doc["metrics"].items():
        cells = [m["label"], m["unit"]]
        for p in peers:
            v = m["values"].get(p)
            if v is None:
                cells.append("-")
            elif v["median"] is None:
                cells.append("FAIL")
            else:
                cells.append(fmt(v["median"]) + ("*" if v["errors"] else ""))
        cells += [fmt(m["ratios"].get(f"{a}/{b}")) for a, b in pairs]
        t = targets.get(key)
        if t is None:
            cells += ["", ""]
        else:
            met = {True: "yes", False: "NO", None: "-"}[t["met"]]
            cells += [t["target"], met]
        lines.append(cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = []
    for i, row in enumerate(lines):
        out.append(
            "  ".join(
                c.ljust(w) if j == 0 or j >= len(head) - 2 else c.rjust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    notes = [
        "medians of {runs} run(s); ratios are a/b of the medians (MB/s: higher is better);".format(
            runs=doc["settings"]["runs"]
        ),
        "'-' not measured or not applicable, FAIL every run failed, * some runs failed.",
    ]
    for name, b in doc["backends"].items():
        if not b["available"]:
            notes.append(f"{name}: skipped: {b['reason']}")
    return "\n".join(out + [""] + notes)


def machine() -> dict[str, Any]:
    """What the figures were measured on (load average included: the machine is shared)."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
    }

"""What one bench invocation measures: the N values, sizes, repeat counts and selections."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
ROOT = BENCH_DIR.parent
CACHE_DIR = ROOT / ".cache"
DEFAULT_JSON = BENCH_DIR / "results" / "latest.json"

PEERS = ("raw", "ours", "circus", "supervisor")
WORKLOADS = (
    "start",
    "stop",
    "rss",
    "idle_cpu",
    "rtt",
    "cli",
    "respawn",
    "stdout",
    "launch",
    "chatty",
)
FULL_NS = (10, 100, 1000, 5000)
SMALL_NS = (10,)
LAUNCH_NS = (200, 1000)  # the N of the launch row (its target is set at these two)
SMALL_LAUNCH_NS = (10,)
METRICS_N = 1000  # the N at which idle CPU, round trips and the CLI call are measured


@dataclass(frozen=True)
class Settings:
    """Everything a run measures; built from the command line by :func:`parse_args`."""

    ns: tuple[int, ...] = FULL_NS
    launch_ns: tuple[int, ...] = LAUNCH_NS
    stdout_bytes: int = 200_000_000
    respawns: int = 20
    chatty_n: int = 1000  # chatty row: writers, MB/s in all, seconds of writing
    chatty_rate: float = 50.0
    chatty_seconds: float = 10.0
    idle_seconds: float = 10.0
    rtt_calls: int = 50
    cli_calls: int = 5
    runs: int = 3
    peers: tuple[str, ...] = PEERS
    only: frozenset[str] = field(default_factory=lambda: frozenset(WORKLOADS))
    json_path: Path = DEFAULT_JSON
    plot: bool = True
    small: bool = False
    metrics_at: int | None = None  # --metrics-n: one of ``ns``

    @property
    def metrics_n(self) -> int:
        """The N used for idle CPU, control round trips and the CLI call.

        ``--metrics-n`` when given; else 1,000 when it is measured; otherwise the largest N
        below it (so --small still exercises those workloads, on its tiny N).
        """
        if self.metrics_at is not None:
            return self.metrics_at
        below = [n for n in self.ns if n <= METRICS_N]
        return max(below) if below else min(self.ns)

    def wants(self, workload: str) -> bool:
        """True when ``workload`` was selected (all are, unless --only narrowed them)."""
        return workload in self.only


def _csv(value: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"bad {what} {','.join(bad) or value!r}: expected a comma list of {','.join(allowed)}"
        )
    return items


def _ns(value: str) -> tuple[int, ...]:
    try:
        ns = tuple(sorted({int(v) for v in value.split(",") if v.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad --ns {value!r}: expected e.g. 10,100") from None
    if not ns or min(ns) < 1:
        raise argparse.ArgumentTypeError(f"bad --ns {value!r}: expected positive integers")
    return ns


def build_parser() -> argparse.ArgumentParser:
    """The ``bench/run.py`` command line."""
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Measure circusd against the raw reference, Circus 0.19 and Supervisor 4.3.",
    )
    p.add_argument(
        "--small",
        action="store_true",
        help="CI smoke sizes: N=10, 5 MB of stdout, 3 respawns, 1 s idle, 20 chatty writers "
        "for 1 s, 1 run",
    )
    p.add_argument(
        "--only",
        type=lambda v: _csv(v, WORKLOADS, "workload"),
        help=f"comma list of workloads to measure (default all: {','.join(WORKLOADS)})",
    )
    p.add_argument(
        "--peers",
        type=lambda v: _csv(v, PEERS, "peer"),
        help=f"comma list of what to measure (default all: {','.join(PEERS)})",
    )
    p.add_argument("--runs", type=int, help="repeat every measurement K times (default 3)")
    p.add_argument("--ns", type=_ns, help="override the N values, e.g. 10,100,1000")
    p.add_argument(
        "--launch-ns",
        type=_ns,
        help=f"the N values of the launch row (default {','.join(map(str, LAUNCH_NS))})",
    )
    p.add_argument(
        "--metrics-n",
        type=int,
        help="the N (one of --ns) at which idle CPU, round trips and the CLI call are measured "
        f"(default {METRICS_N:,}, else the largest N below it)",
    )
    p.add_argument("--json", type=Path, help=f"where to write the JSON (default {DEFAULT_JSON})")
    p.add_argument("--no-plot", action="store_true", help="do not draw the PNG")
    return p


def parse_args(argv: list[str] | None = None) -> Settings:
    """Parse the command line into :class:`Settings` (``--small`` first, then overrides)."""
    a = build_parser().parse_args(argv)
    if a.small:
        s = Settings(
            ns=SMALL_NS,
            launch_ns=SMALL_LAUNCH_NS,
            stdout_bytes=5_000_000,
            respawns=3,
            chatty_n=20,
            chatty_rate=1.0,
            chatty_seconds=1.0,
            idle_seconds=1.0,
            rtt_calls=10,
            cli_calls=2,
            runs=1,
            small=True,
        )
    else:
        s = Settings()
    if a.runs is not None and a.runs < 1:
        build_parser().error("--runs must be >= 1")
    ns = a.ns or s.ns
    if a.metrics_n is not None and a.metrics_n not in ns:
        build_parser().error(f"--metrics-n {a.metrics_n} is not one of --ns {ns}")
    return replace(
        s,
        ns=ns,
        metrics_at=a.metrics_n,
        launch_ns=a.launch_ns or s.launch_ns,
        runs=a.runs or s.runs,
        peers=a.peers or s.peers,
        only=frozenset(a.only) if a.only else s.only,
        json_path=a.json or s.json_path,
        plot=not a.no_plot,
    )

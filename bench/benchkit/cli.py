"""``bench/run.py``: measure, print the table, write the JSON and the PNG."""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Any

from . import plot, report
from .backends import Backend, make_backend
from .procs import BenchError, raise_nofile
from .settings import Settings, parse_args
from .workloads import Results, Runner


def _backends(settings: Settings) -> tuple[list[Backend], dict[str, dict[str, Any]]]:
    """The usable backends, and for the report what each one is or why it was skipped."""
    usable, info = [], {}
    for name in settings.peers:
        backend = make_backend(name)
        reason = backend.unavailable()
        if reason is None:
            try:
                backend.prepare()
            except BenchError as exc:
                reason = str(exc)
        info[name] = {
            "available": reason is None,
            "reason": reason,
            "what": backend.describe() if reason is None else None,
        }
        if reason is None:
            usable.append(backend)
        else:
            print(f"[bench] {name}: skipped: {reason}", file=sys.stderr)
    return usable, info


def measure(settings: Settings, backends: list[Backend]) -> Results:
    """Run every selected workload ``settings.runs`` times, backends interleaved per step."""
    results = Results()
    runners = [Runner(b, settings, results) for b in backends]
    for run in range(settings.runs):
        for r in runners:
            r.run = run
        for n in settings.ns:
            for r in runners:
                r.sized(n)
        for n in settings.launch_ns:
            for r in runners:
                r.launch(n)
        for r in runners:
            r.respawn()
        for r in runners:
            r.stdout()
        for r in runners:
            r.chatty()
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 once the table and JSON are written)."""
    settings = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every session's context manager stops its daemon.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    began = time.monotonic()
    soft, _ = raise_nofile()
    print(f"[bench] RLIMIT_NOFILE soft limit {soft}", file=sys.stderr)
    backends, info = _backends(settings)
    results = measure(settings, backends)
    doc = report.build(settings, results, info)
    doc["duration_s"] = round(time.monotonic() - began, 1)
    text = report.table(doc)
    doc["table"] = text
    settings.json_path.parent.mkdir(parents=True, exist_ok=True)
    settings.json_path.write_text(json.dumps(doc, indent=2) + "\n")
    print(text)
    print(f"\njson: {settings.json_path}")
    if settings.plot:
        png = settings.json_path.with_suffix(".png")
        print(plot.draw(doc, png, build_venv=not settings.small))
    return 0

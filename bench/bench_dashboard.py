#!/usr/bin/env python3
"""The dashboard at N processes: does the page stay live, and what does serving it cost circusd?

One fresh circusd (ours) autostarts N ``sleep 3600`` copies; once all run, its CPU is read over
``--idle`` seconds with no dashboard (the baseline). Then ``circushttpd --endpoint ...`` (the
dashboard, a separate process polling circusd every ``--interval`` s) starts, headless
Chromium (Debian's ``/usr/bin/chromium`` driven by Playwright, as in tests/web) opens the page,
and a ``MutationObserver`` on the page's daemon tables records a timestamp for every batch of
DOM changes (one per rendered update). Once the page shows N processes, a window of
``--seconds`` s is measured:

* page updates: how many in the window, per second, and the longest gap between two (the
  page is live when an update comes at least once a second);
* CPU, as % of one core over the window: circusd (the daemon's cost of being watched is this
  minus the baseline), circushttpd, and Chromium (all its processes);
* with ``--open``, the watcher's row is clicked first, so its N process rows are shown.

Usage: python bench/bench_dashboard.py [--n 10000] [--seconds 30] [--idle 10] [--interval 1]
       [--open] [--json PATH]
Heavy (N processes, CPU figures): run it under ``flock /tmp/bench.lock``. circusd needs a
descriptor or more per process: RLIMIT_NOFILE's hard limit must be at least N + 2,000.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil  # noqa: E402
from benchkit.backends import ProgramSpec, make_backend  # noqa: E402
from benchkit.backends.daemon import daemon_env  # noqa: E402
from benchkit.procs import BenchError, cpu_seconds, raise_nofile, wait_for  # noqa: E402
from circus.ctl.web.testing import Circushttpd, chromium_page, chromium_path  # noqa: E402

SLEEP = shutil.which("sleep") or "/bin/sleep"

# Installed in the page: one timestamp per batch of DOM changes under #daemons.
OBSERVE = """() => {
  window.__updates = [];
  const target = document.getElementById("daemons");
  new MutationObserver(() => window.__updates.push(performance.now()))
    .observe(target, { subtree: true, childList: true, characterData: true, attributes: true });
  return performance.now();
}"""

SHOWN = """() => {
  const cell = document.querySelector('tr.watcher[data-watcher="sleepers"] .nprocs');
  return cell ? Number(cell.textContent) : -1;
}"""


def _log(msg: str) -> None:
    print(f"[dashboard] {msg}", file=sys.stderr, flush=True)


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            pass
    return total


def _chromium_pids() -> list[int]:
    me = psutil.Process()
    found = []
    for child in me.children(recursive=True):
        try:
            if "chrom" in child.name():
                found.append(child.pid)
        except psutil.Error:
            pass
    return found


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One run: circusd with ``args.n`` sleeps, its baseline, then the dashboard and the page."""
    soft, hard = raise_nofile()
    if soft < args.n + 2000:
        raise BenchError(f"RLIMIT_NOFILE {soft}: {args.n + 2000} needed for N = {args.n}")
    if chromium_path() is None:
        raise BenchError("chromium is not installed (apt-get install chromium)")
    backend = make_backend("ours")
    reason = backend.unavailable()
    if reason:
        raise BenchError(reason)
    out: dict[str, Any] = {"n": args.n, "interval": args.interval, "open": args.open}
    spec = ProgramSpec("sleepers", (SLEEP, "3600"), "sleep", args.n, autostart=True)
    wd = Path(tempfile.mkdtemp(prefix="cdash-", dir="/tmp"))
    try:
        _log(f"circusd with {args.n} sleeps")
        with backend.open(spec, wd) as sess:
            out["launch_s"] = sess.launch_took
            daemon = sess.daemon_pid
            assert daemon is not None
            time.sleep(1.0)  # start-up work done
            before = cpu_seconds(daemon)
            time.sleep(args.idle)
            out["circusd_idle_pct"] = (cpu_seconds(daemon) - before) / args.idle * 100
            _log(f"baseline: circusd {out['circusd_idle_pct']:.2f} % over {args.idle:g} s")
            env = daemon_env()
            control = getattr(sess, "control")  # noqa: B009 - CircusSession's endpoint
            with Circushttpd(
                "--endpoint", control, "--interval", str(args.interval), env=env, timeout=60
            ) as httpd:
                _log(f"circushttpd at {httpd.url}")
                with chromium_page(httpd.url) as page:
                    out.update(_watch(page, args, daemon, httpd.proc.pid))
            sess.track()
    finally:
        shutil.rmtree(wd, ignore_errors=True)
    return out


def _watch(page: Any, args: argparse.Namespace, daemon: int, httpd: int) -> dict[str, Any]:
    t0 = time.monotonic()
    wait_for(lambda: page.evaluate(SHOWN) == args.n, 120, f"the page showing {args.n}", 0.2)
    first = time.monotonic() - t0
    _log(f"the page shows {args.n} processes after {first:.1f} s")
    if args.open:
        page.click('tr.watcher[data-watcher="sleepers"] td.name')
        wait_for(
            lambda: (
                page.evaluate("() => document.querySelectorAll('tr.proc:not([hidden])').length")
                >= args.n
            ),
            120,
            "the process rows shown",
            0.2,
        )
    chrome = _chromium_pids()
    time.sleep(2.0)  # one more update: what the click set off is done
    page_t0 = page.evaluate(OBSERVE)
    c0 = (cpu_seconds(daemon), cpu_seconds(httpd), _cpu(chrome))
    w0 = time.monotonic()
    time.sleep(args.seconds)
    stamps = page.evaluate("() => window.__updates")
    page_t1 = page.evaluate("() => performance.now()")
    wall = time.monotonic() - w0
    c1 = (cpu_seconds(daemon), cpu_seconds(httpd), _cpu(chrome))
    shown = page.evaluate(SHOWN)
    # The batches of one rendered update arrive within a few ms: group them.
    updates: list[float] = []
    for t in stamps:
        if not updates or t - updates[-1] > 50:
            updates.append(t)
    edges = [page_t0, *updates, page_t1]
    gaps = [(b - a) / 1000 for a, b in zip(edges, edges[1:], strict=False)]
    return {
        "first_full_page_s": round(first, 2),
        "window_s": round(wall, 1),
        "page_updates": len(updates),
        "page_updates_per_s": round(len(updates) / wall, 2),
        "page_max_gap_s": round(max(gaps), 2),
        "page_gaps_over_1_1s": sum(g > 1.1 for g in gaps),
        "page_shows": shown,
        "circusd_pct": round((c1[0] - c0[0]) / wall * 100, 2),
        "circushttpd_pct": round((c1[1] - c0[1]) / wall * 100, 2),
        "chromium_pct": round((c1[2] - c0[2]) / wall * 100, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="processes (default 10,000)")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured window (default 30)")
    ap.add_argument("--idle", type=float, default=10.0, help="baseline window (default 10)")
    ap.add_argument("--interval", type=float, default=1.0, help="circushttpd --interval")
    ap.add_argument("--open", action="store_true", help="show the N process rows")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    result = measure(args)
    result["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["machine"] = f"{platform.node()} {os.cpu_count()} cores, Python {sys.version.split()[0]}"
    result["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

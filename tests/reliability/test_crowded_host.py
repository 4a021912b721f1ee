"""circusd on a crowded host: what it costs must be what it owns, not what the machine holds.

psutil's ``Process.children()`` reads the stat file of every process on the machine. Run for
each worker on the daemon's loop, one ``stats`` on a host with 3,000 unrelated processes held
every other request for ~150 ms (a SIGTERM too: 4 s with 100 workers). The tests below start a
crowd of unrelated ``sleep`` processes (not circusd's) and compare against a baseline taken in
the same test without it: ratios, not wall-clock limits. They also check that a spawn retried
forever does not keep quit or SIGTERM waiting, and the stats channel's cadence under load.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import zmq
from circus.ctl import CircusClient
from crowd import Crowd

pytestmark = pytest.mark.slow

CROWD = 3000
WORKERS = 4


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


class Hammer:
    """A thread asking ``stats`` back to back on its own connection; counts the answers."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.calls = 0
        self.failures: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        client = CircusClient(self.endpoint, timeout=30, check=False)
        try:
            while not self._stop.is_set():
                answer = client.call("stats", {})
                if answer.get("status") != "ok":
                    self.failures.append(answer)
                self.calls += 1
        except Exception as exc:  # a timeout is a failure of the daemon, reported below
            self.failures.append(exc)
        finally:
            client.close()

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def _list_latencies(endpoint: str, count: int = 150) -> list[float]:
    """``count`` ``list`` round trips, 10 ms apart; their latencies in seconds."""
    client = CircusClient(endpoint, timeout=30, check=False)
    out = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            assert client.call("list", {})["status"] == "ok"
            out.append(time.perf_counter() - start)
            time.sleep(0.01)  # pacing of the probe, not a synchronisation
    finally:
        client.close()
    return out


def _phase(daemon: Any) -> dict[str, float]:
    """List latency while stats is hammered, and circusd's CPU per stats answered."""
    pid = daemon.proc.pid
    cpu = _cpu(pid)
    with Hammer(daemon.endpoint) as hammer:
        latencies = _list_latencies(daemon.endpoint)
    used = _cpu(pid) - cpu
    assert not hammer.failures, hammer.failures[:3]
    assert hammer.calls > 0
    latencies.sort()
    return {
        "p50": latencies[len(latencies) // 2],
        "p90": latencies[int(len(latencies) * 0.9)],
        "worst": latencies[-1],
        "cpu_per_stats": used / hammer.calls,
        "stats_calls": hammer.calls,
    }


def test_stats_cost_and_loop_latency_do_not_grow_with_the_crowd(circusd, e2e) -> None:
    daemon = circusd(f"[watcher:w]\ncmd = {e2e.SLEEP}\nnumprocesses = {WORKERS}\n")
    e2e.wait(lambda: len(daemon.pids("w")) == WORKERS, 20, "the workers")
    _phase(daemon)  # warm-up: psutil imported, cpu% baselines taken
    quiet = _phase(daemon)
    with Crowd(CROWD) as crowd:
        assert crowd.count >= CROWD * 0.9
        crowded = _phase(daemon)
    report = f"quiet {quiet}\ncrowded {crowded}"
    print(report)
    # One stats used to cost 4 scans of the whole host (~35 ms each at 3,000 processes).
    assert crowded["cpu_per_stats"] < 4 * quiet["cpu_per_stats"] + 0.005, report
    # And they ran on the loop: a list waited for half a stats on average (old: p50 150 ms).
    assert crowded["p50"] < 4 * quiet["p50"] + 0.02, report
    assert crowded["p90"] < 4 * quiet["p90"] + 0.05, report


def _sigterm_to_exit(daemon: Any, e2e: Any, workers: int) -> float:
    """Seconds from SIGTERM to circusd's exit, with ``stats`` hammered meanwhile."""
    e2e.wait(lambda: len(daemon.pids("w")) == workers, 60, "the workers")
    with Hammer(daemon.endpoint):
        e2e.wait(lambda: daemon.call("stats")["status"] == "ok", 30, "a stats")
        daemon.track()
        start = time.monotonic()
        daemon.signal(signal.SIGTERM)
        try:
            code = daemon.wait(120)
        except subprocess.TimeoutExpired:
            pytest.fail("circusd did not exit within 120 s of SIGTERM")
        took = time.monotonic() - start
    assert code == 0, daemon.output()[-2000:]
    assert not [p for p in daemon.descendants if e2e.alive(p)]
    return took


def test_sigterm_on_a_crowded_host_exits_promptly(circusd, e2e, tmp_path: Path) -> None:
    # Many workers: every reap used to list circusd's children, each a scan of the host.
    workers = 100
    body = f"[watcher:w]\ncmd = {e2e.SLEEP}\nnumprocesses = {workers}\ngraceful_timeout = 5\n"
    quiet = _sigterm_to_exit(circusd(body), e2e, workers)
    crowded_dir = tmp_path / "crowded"
    crowded_dir.mkdir()
    with Crowd(CROWD):
        daemon = circusd(body, start=False)
        daemon.__init__(crowded_dir, body, ())  # its own endpoints, config and log
        crowded = _sigterm_to_exit(daemon.start(), e2e, workers)
    print(f"SIGTERM to exit: quiet {quiet:.2f} s, crowded {crowded:.2f} s")
    # What the crowd adds must not scale with workers x host (old: ~3 s more at 3,000).
    assert crowded < 2 * quiet + 1.0, (quiet, crowded)


BAD_DIR = "[watcher:bad]\ncmd = {cmd}\nworking_dir = {dir}\nmax_retry = -1\nretry_in = 0.2\n"


@pytest.mark.parametrize("how", ["quit", "sigterm"])
def test_quit_while_a_spawn_is_retried_forever(circusd, e2e, tmp_path: Path, how: str) -> None:
    missing = tmp_path / "does-not-exist"
    daemon = circusd(
        f"[watcher:ok]\ncmd = {e2e.SLEEP}\n\n" + BAD_DIR.format(cmd=e2e.SLEEP, dir=missing)
    )
    e2e.wait(lambda: daemon.output().count("spawn attempt") >= 3, 30, "spawn retries")
    if how == "quit":
        answer = daemon.call("quit", timeout=30)
        assert answer["status"] == "ok", answer
    else:
        daemon.signal(signal.SIGTERM)
    try:
        code = daemon.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"circusd still runs 30 s after {how} (a spawn retried forever)")
    assert code == 0, daemon.output()[-2000:]


BUSY = "while True: pass"


def test_stats_channel_keeps_its_cadence_under_load(circusd, e2e, tmp_path: Path) -> None:
    stats = f"ipc://{tmp_path}/stats"
    workers = 10
    daemon = circusd(
        f"[circus]\nstatsd = true\nstats_endpoint = {stats}\n\n"
        f"[watcher:w]\ncmd = {e2e.SLEEP}\nnumprocesses = {workers}\n"
    )
    e2e.wait(lambda: len(daemon.pids("w")) == workers, 30, "the workers")
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.subscribe(b"stat.circus")
    sub.connect(stats)
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(3)]
    ticks: list[float] = []
    try:
        with Crowd(CROWD):
            while sub.poll(0):  # rounds queued while the crowd started: received late, as one
                sub.recv_multipart()
            deadline = time.monotonic() + 60
            while len(ticks) < 12 and time.monotonic() < deadline:
                if not sub.poll(1000):
                    continue
                topic, body = sub.recv_multipart()
                if topic == b"stat.circus":  # the round's aggregate: one per round
                    json.loads(body)
                    ticks.append(time.monotonic())
    finally:
        for proc in busy:
            proc.kill()
        for proc in busy:
            proc.wait(10)
        sub.close()
        ctx.term()
    assert len(ticks) >= 6, f"only {len(ticks)} stats rounds in 60 s"
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    median = statistics.median(gaps)
    print(f"stat ticks: median {median:.3f} s, gaps {[round(g, 2) for g in gaps]}")
    assert median < 1.3, gaps

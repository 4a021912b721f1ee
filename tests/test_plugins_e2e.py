"""Every shipped plugin, configured by upstream's dotted path in a real circusd."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

SLEEP = f"{sys.executable} -c 'import time; time.sleep(300)'"


def _sleeper(name: str = "sleeper", extra: str = "") -> str:
    return f"\n[watcher:{name}]\ncmd = {SLEEP}\ngraceful_timeout = 5\n{extra}\n"


def _replaced(daemon, e2e, name: str, timeout: float = 20.0) -> None:
    before = set(daemon.pids(name))
    e2e.wait(
        lambda: (now := set(daemon.pids(name))) and not now & before, timeout, f"{name} replaced"
    )


@pytest.mark.slow
def test_flapping_stops_a_crashing_watcher(circusd, e2e) -> None:
    daemon = circusd(
        f"""
[watcher:crasher]
cmd = {sys.executable} -c 'import sys; sys.exit(3)'

{_sleeper()}

[plugin:flapping]
use = circus.plugins.flapping.Flapping
attempts = 2
window = 30
retry_in = 0.3
max_retry = 1
"""
    )
    e2e.wait(lambda: daemon.call("get", name="crasher", keys=["flapping.active"])["options"]
             ["flapping.active"], 10, "plugin configured the watcher")  # fmt: skip
    # stopped, retried once after retry_in, then given up: stopped for good
    since: list[float] = []

    def stopped_for_good() -> bool:
        if daemon.call("status", name="crasher")["status"] != "stopped":
            since.clear()
            return False
        since.append(time.monotonic())
        return since[-1] - since[0] > 1.5

    e2e.wait(stopped_for_good, 30, "crasher stopped for good")
    # a healthy watcher stopped by hand is not flapping: it stays stopped, nothing retries it
    assert daemon.call("stop", name="sleeper", waiting=True)["status"] == "ok"
    options = daemon.call("get", name="sleeper", keys=["flapping.active", "flapping.window"])
    assert options["options"] == {"flapping.active": True, "flapping.window": 30.0}


def test_watchdog_kills_silent_workers(circusd, e2e, tmp_path: Path) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    beat = tmp_path / "beat.py"
    beat.write_text(
        "import os, socket, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "while True:\n"
        f"    s.sendto(f'{{os.getpid()}};{{time.time()}}'.encode(), ('127.0.0.1', {port}))\n"
        "    time.sleep(0.05)\n"
    )
    daemon = circusd(
        f"""
{_sleeper("silent")}
[watcher:beating]
cmd = {sys.executable} {beat}
graceful_timeout = 5

[plugin:watchdog]
use = circus.plugins.watchdog.WatchDog
loop_rate = 0.3
max_count = 2
port = {port}
"""
    )
    e2e.wait(lambda: daemon.pids("silent") and daemon.pids("beating"))
    beating = daemon.pids("beating")
    _replaced(daemon, e2e, "silent")
    assert daemon.pids("beating") == beating


def test_statsd_emitter_counts_events(circusd, e2e) -> None:
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(0.2)
    try:
        daemon = circusd(
            f"""
{_sleeper()}
[plugin:statsd]
use = circus.plugins.statsd.StatsdEmitter
host = 127.0.0.1
port = {collector.getsockname()[1]}
application_name = demo
"""
        )
        received: list[str] = []

        def counted() -> bool:
            daemon.call("incr", name="sleeper", waiting=True)
            try:
                while True:
                    received.append(collector.recv(512).decode())
            except TimeoutError:
                pass
            return any(m.startswith("circus.demo.watcher.sleeper.spawn:1|c") for m in received)

        e2e.wait(counted, 20, "a statsd counter")
    finally:
        collector.close()


def test_resource_watcher_restarts_a_greedy_watcher(circusd, e2e) -> None:
    daemon = circusd(
        f"""
{_sleeper()}
[plugin:resources]
use = circus.plugins.resource_watcher.ResourceWatcher
watcher = sleeper
loop_rate = 0.2
max_mem = 0.0001
max_count = 2
"""
    )
    e2e.wait(lambda: daemon.pids("sleeper"))
    _replaced(daemon, e2e, "sleeper")


def test_command_reloader_restarts_on_new_executable(circusd, e2e, tmp_path: Path) -> None:
    script = tmp_path / "worker.sh"
    script.write_text("#!/bin/sh\nexec sleep 300\n")
    script.chmod(0o755)
    daemon = circusd(
        f"""
[watcher:worker]
cmd = {script}
graceful_timeout = 5

[plugin:reloader]
use = circus.plugins.command_reloader.CommandReloader
loop_rate = 0.2
"""
    )
    before = set(e2e.wait(lambda: daemon.pids("worker")))

    def touched_and_replaced() -> bool:
        # The plugin compares each round with its previous one, and when it took its first
        # look is unknown (a fixed sleep lost that race under load): change the mtime at
        # every poll, so any round after its first sees a change.
        later = time.time() + 5
        os.utime(script, (later, later))
        now = set(daemon.pids("worker"))
        return bool(now) and not now & before

    e2e.wait(touched_and_replaced, 20, "worker restarted by the reloader")


@pytest.mark.parametrize("use", ["circus.plugins.http_observer.HttpObserver"])
def test_http_observer_restarts_on_error(circusd, e2e, use: str) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: every check fails
    daemon = circusd(
        f"""
{_sleeper()}
[plugin:http]
use = {use}
check_url = http://127.0.0.1:{port}/
loop_rate = 0.3
timeout = 1
restart_on_error = sleeper
"""
    )
    e2e.wait(lambda: daemon.pids("sleeper"))
    _replaced(daemon, e2e, "sleeper")


@pytest.mark.slow
def test_full_stats_sends_gauges(circusd, e2e) -> None:
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(0.2)
    try:
        circusd(
            f"""
{_sleeper()}
[plugin:fullstats]
use = circus.plugins.statsd.FullStats
host = 127.0.0.1
port = {collector.getsockname()[1]}
loop_rate = 0.2
"""
        )
        received: list[str] = []

        def gauged() -> bool:
            try:
                while True:
                    received.append(collector.recv(512).decode())
            except TimeoutError:
                pass
            return any(m.startswith("circus.app.watcher._stats.sleeper.cpu_sum:") for m in received)

        e2e.wait(gauged, 20, "a statsd gauge")
        assert any(m.endswith("|g") for m in received)
    finally:
        collector.close()

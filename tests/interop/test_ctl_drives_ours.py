"""Our circusctl and circus-top against OUR circusd: the parts 0.19 does not have.

``logs`` (history and ``-f``) needs the daemon's ``logs`` command and ``output.*`` topic;
``circus-top`` reads its stats channel. Uses the root conftest's ``circusd`` fixture.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from circus.ctl import top

TICKER = """
[watcher:ticker]
cmd = sh -c 'while true; do echo tick $(date +%s%N); echo oops >&2; sleep 0.05; done'

[watcher:sleeper]
cmd = sleep 300
numprocesses = 2
"""

LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (\S+)\[(\d+)\] ([|!]) (.*)$")


@pytest.fixture
def daemon(circusd: Callable[..., Any], tmp_path) -> Any:
    stats = f"ipc://{tmp_path}/stats"
    return circusd(f"[circus]\nstats_endpoint = {stats}\nstatsd = true\n{TICKER}")


def _ctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "circus.ctl.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_logs_history_and_follow(daemon: Any, wait: Callable[..., Any]) -> None:
    wait(
        lambda: len(daemon.call("logs", name="ticker", lines=5).get("logs", [])) >= 5,
        message="five lines of ticker output",
    )
    history = _ctl("--endpoint", daemon.endpoint, "logs", "-n", "4", "ticker")
    assert history.returncode == 0, history.stderr
    parsed = [LINE.match(line).groups() for line in history.stdout.splitlines()]  # type: ignore[union-attr]
    assert len(parsed) == 4
    assert {p[0] for p in parsed} == {"ticker"}
    assert {(p[2], p[3].split()[0]) for p in parsed} <= {("|", "tick"), ("!", "oops")}

    follow = _ctl(
        "--endpoint", daemon.endpoint, "--json", "logs", "-f", "-n", "0", "--count", "10", "ticker"
    )
    assert follow.returncode == 0, follow.stderr
    entries = [json.loads(line) for line in follow.stdout.splitlines()]
    assert len(entries) == 10
    assert all(e["watcher"] == "ticker" for e in entries)
    ticks = [e["data"] for e in entries if e["stream"] == "stdout"]
    assert ticks == sorted(ticks) and len(set(ticks)) == len(ticks)  # live, in order


def test_logs_for_unknown_watcher(daemon: Any) -> None:
    result = _ctl("--endpoint", daemon.endpoint, "logs", "nosuch")
    assert result.returncode == 3
    assert "nosuch" in result.stderr


@pytest.mark.slow
def test_top_once_reads_our_stats_channel(daemon: Any) -> None:
    buffer = io.StringIO()
    rc = top.main(["--ctl-endpoint", daemon.endpoint, "--once", "--wait", "20"], stdout=buffer)
    assert rc == 0
    rows = [line.split() for line in buffer.getvalue().splitlines()[1:]]
    sleepers = [r for r in rows if r[0] == "sleeper" and r[1].isdigit()]
    assert sorted(int(r[1]) for r in sleepers) == daemon.pids("sleeper")
    assert ["sleeper", "(2)", "total"] in [r[:3] for r in rows]


def test_plain_status_and_list(daemon: Any) -> None:
    status = _ctl("--endpoint", daemon.endpoint, "status")
    assert status.stdout == "sleeper: active\nticker: active\n"
    listing = _ctl("--endpoint", daemon.endpoint, "list")
    assert listing.stdout.strip().split(",") == sorted(listing.stdout.strip().split(","))
    assert {"sleeper", "ticker"} <= set(listing.stdout.strip().split(","))

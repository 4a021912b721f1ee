"""Config files end to end: the shipped example, sockets handed to workers, includes, env,
free-form options, priorities, autostart, stats."""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parents[1]
SLEEP = f"{sys.executable} -c 'import time; time.sleep(300)'"


def test_shipped_example_runs(circusd, e2e, tmp_path: Path) -> None:
    text = (ROOT / "examples" / "circus.ini").read_text()
    # our own endpoints (the header), a free port, absolute paths to the example scripts
    text = re.sub(r"(?m)^(endpoint|pubsub_endpoint) = .*$", "", text)
    text = re.sub(r"(?m)^port = 8080$", "port = 0", text)
    text = text.replace("examples/", f"{ROOT}/examples/")
    daemon = circusd(text)
    e2e.wait(lambda: len(daemon.pids("web")) == 2 and daemon.pids("ticker"))
    [sock] = daemon.call("listsockets")["sockets"]
    assert sock["name"] == "web" and sock["port"] > 0
    url = f"http://127.0.0.1:{sock['port']}/"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read().startswith(b"hello from worker")
    e2e.wait(lambda: (tmp_path / "ticker.log").exists(), message="ticker.log")
    assert daemon.stop() == 0


def test_includes_env_options_priority_autostart(circusd, e2e, tmp_path: Path) -> None:
    (tmp_path / "more.ini").write_text(
        f"[watcher:included]\ncmd = {SLEEP}\npriority = 5\ngraceful_timeout = 5\n"
    )
    code = "import os, time; print(os.environ.get('GREETING'), flush=True); time.sleep(300)"
    daemon = circusd(
        f"""[circus]
include = more.ini

[watcher:env]
cmd = {sys.executable} -c "{code}"
graceful_timeout = 5
custom_key = custom value

[watcher:manual]
cmd = {SLEEP}
autostart = false

[env:env]
GREETING = hello from env
"""
    )
    e2e.wait(lambda: daemon.pids("env") and daemon.pids("included"))
    assert daemon.call("status", name="manual")["status"] == "stopped"
    got = daemon.call("get", name="env", keys=["custom_key", "env"])["options"]
    assert got["custom_key"] == "custom value"
    assert got["env"]["GREETING"] == "hello from env"
    e2e.wait(lambda: daemon.call("logs", name="env")["logs"], message="output")
    assert daemon.call("logs", name="env")["logs"][0]["data"] == "hello from env\n"
    assert daemon.call("options", name="included")["options"]["priority"] == 5


def test_stats_endpoint_publishes(circusd, e2e, tmp_path: Path) -> None:
    stats = f"ipc://{tmp_path}/stats"
    daemon = circusd(
        f"[circus]\nstatsd = true\nstats_endpoint = {stats}\n\n"
        f"[watcher:sleeper]\ncmd = {SLEEP}\ngraceful_timeout = 5\n"
    )
    e2e.wait(lambda: daemon.pids("sleeper"))
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    try:
        sub.subscribe(b"stat.")
        sub.connect(stats)
        topics: dict[str, dict] = {}
        e2e.wait(
            lambda: (
                sub.poll(100)
                and topics.setdefault(*_decode(sub.recv_multipart())) is not None
                and {"stat.sleeper", "stat.circus", "stat.sockets"} <= set(topics)
            ),
            20,
            "stat topics",
        )
    finally:
        sub.close()
        ctx.term()
    pid = daemon.pids("sleeper")[0]
    assert topics["stat.sleeper"]["pid"] == [pid]
    assert daemon.call("globaloptions")["options"]["stats_endpoint"] == stats


def _decode(frames: list[bytes]) -> tuple[str, dict]:
    return frames[0].decode(), json.loads(frames[1])


def test_a_watcher_that_cannot_spawn_does_not_stop_the_daemon(circusd, e2e) -> None:
    daemon = circusd(
        f"[watcher:broken]\ncmd = /nonexistent/program\nmax_retry = 1\n\n"
        f"[watcher:fine]\ncmd = {SLEEP}\ngraceful_timeout = 5\n"
    )
    e2e.wait(lambda: daemon.pids("fine"))
    e2e.wait(lambda: daemon.call("status", name="broken")["status"] == "stopped")
    answer = daemon.call("start", name="broken", waiting=True)
    assert answer["status"] == "error" and answer["tb"] is None
    assert answer["errno"] in (3, 5) and answer["reason"]
    assert daemon.call("status", name="fine")["status"] == "active"
    assert daemon.stop() == 0

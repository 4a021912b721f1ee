"""A crash-looping watcher, seen everywhere a user looks: ``circusctl status`` (plain and
``--json``), the ``crash_loop`` event, and circusd's log (one line per exit, with the exit
code and the next retry; the watcher's start and stop)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from typing import Any

import zmq
from circus.process.testing import wait_until

CRASHER = f"{sys.executable} -c 'raise SystemExit(3)'"
CONFIG = f"""
[watcher:crasher]
cmd = {CRASHER}
autostart = false
graceful_timeout = 2
backoff_max = 1

[watcher:fine]
cmd = {sys.executable} -c 'import time; time.sleep(300)'
graceful_timeout = 2
"""


def _ctl(daemon: Any, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "circus.ctl.cli", "--endpoint", daemon.endpoint, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done
    return done.stdout


def _subscribe(daemon: Any, context: zmq.Context[Any]) -> zmq.Socket[Any]:
    """A SUB socket on the events channel that is known to receive (slow joiner): it has
    seen an ``updated`` event caused after it connected."""
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"watcher.")
    sub.connect(daemon.pubsub)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        daemon.call("set", name="fine", options={"graceful_timeout": 2})
        if sub.poll(200) and sub.recv_multipart()[0] == b"watcher.fine.updated":
            return sub
    raise AssertionError("the events channel never delivered")


def test_crash_loop_everywhere(circusd: Any) -> None:
    daemon = circusd(CONFIG)
    with zmq.Context() as context:
        sub = _subscribe(daemon, context)
        try:
            assert daemon.call("start", name="crasher")["status"] == "ok"
            deadline = time.monotonic() + 60
            event = None
            while event is None and time.monotonic() < deadline:
                if sub.poll(500):
                    topic, payload = sub.recv_multipart()
                    if topic == b"watcher.crasher.crash_loop":
                        event = json.loads(payload)
            assert event is not None, "no crash_loop event"
            assert event["exits"] == 3 and event["exit_code"] == 3
        finally:
            sub.close()

    answer = daemon.call("status")
    assert answer["statuses"] == {"crasher": "crash-looping", "fine": "active"}
    loop = answer["crash_loops"]["crasher"]
    assert loop["exits"] >= 3 and loop["exit_code"] == 3 and loop["next_retry"] > 0
    one = daemon.call("status", name="crasher")
    assert one["status"] == "crash-looping" and one["crash_loop"]["exit_code"] == 3
    assert "crash_loop" not in daemon.call("status", name="fine")

    plain = _ctl(daemon, "status").splitlines()
    assert plain == ["crasher: crash-looping", "fine: active"]
    as_json = json.loads(_ctl(daemon, "--json", "status"))
    assert as_json["crash_loops"]["crasher"]["exit_code"] == 3

    assert daemon.call("stop", name="crasher", waiting=True)["status"] == "ok"
    assert daemon.call("status")["statuses"]["crasher"] == "stopped"
    assert "crash_loops" not in daemon.call("status")

    wait_until(lambda: "crasher stopped" in daemon.output(), 20, "the stop in circusd's log")
    log = daemon.output()
    assert "crasher started" in log and "fine started" in log
    assert "crasher: crash loop over (stopped)" in log
    exits = re.findall(r"crasher: process \d+ exited with code 3 after [\d.]+s; (.*)", log)
    assert len(exits) >= 3, log
    assert exits[0].startswith("respawning now")
    assert any(re.match(r"next retry at \d\d:\d\d:\d\d\.\d \(in [\d.]+s\)", e) for e in exits)
    assert any("crash-looping (3 failed exits in a row)" in e for e in exits), exits

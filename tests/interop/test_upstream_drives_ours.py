"""Upstream Circus 0.19's circusctl and a raw 0.19 subscriber drive and watch OUR circusd.

Upstream runs from its own venv (the ``upstream_circus`` fixture); our circusd is
the ``circusd`` fixture of tests/conftest.py. Every command the 0.19 CLI sends is issued and
its printed answer checked; the 0.19 ``circusctl listen`` (a plain SUB socket printing raw
frames) must see our events with upstream's topics and payloads.
"""

from __future__ import annotations

import ast
import json
import os
import selectors
import shutil
import subprocess
import time
from typing import Any

import pytest

pytestmark = pytest.mark.interop

SLEEP = shutil.which("sleep") or "/bin/sleep"


def _config() -> str:
    return f"""
[watcher:sleeper]
cmd = {SLEEP} 1000
numprocesses = 2
graceful_timeout = 2

[watcher:other]
cmd = {SLEEP} 1000
graceful_timeout = 2

[socket:web]
host = 127.0.0.1
port = 0
"""


class Ctl:
    """Upstream's circusctl against one endpoint."""

    def __init__(self, upstream: Any, endpoint: str) -> None:
        self.argv = [str(upstream.circusctl), "--endpoint", endpoint, "--timeout", "10"]

    def __call__(self, *args: str) -> tuple[int, str, str]:
        done = subprocess.run([*self.argv, *args], capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout, done.stderr

    def ok(self, *args: str) -> str:
        rc, out, err = self(*args)
        assert (rc, err) == (0, ""), f"{args}: rc={rc} err={err!r} out={out!r}"
        return out.strip()

    def json(self, *args: str) -> dict[str, Any]:
        rc, out, err = self("--json", *args)
        assert rc == 0, err
        return json.loads(out)


class Listener:
    """``circusctl listen`` of upstream 0.19 on our pub/sub endpoint."""

    def __init__(self, upstream: Any, pubsub: str) -> None:
        self.proc = subprocess.Popen(
            [str(upstream.circusctl), "--endpoint", pubsub, "listen", "watcher."],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffer = b""
        self.events: list[tuple[str, dict[str, Any]]] = []

    def pump(self, timeout: float) -> None:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if sel.select(timeout):
                self.buffer += self.proc.stdout.read() or b""
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            # "b'watcher.sleeper.spawn': b'{...}'" — the bytes reprs of the two frames
            topic, _, payload = line.decode().partition(": ")
            self.events.append(
                (ast.literal_eval(topic).decode(), json.loads(ast.literal_eval(payload)))
            )

    def wait_for(self, topic: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for seen, payload in self.events:
                if seen == topic:
                    return payload
            left = deadline - time.monotonic()
            assert left > 0, f"{topic} not seen; got {[t for t, _ in self.events]}"
            self.pump(min(left, 0.5))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.mark.slow
def test_upstream_circusctl_drives_our_circusd(upstream_circus, circusd, e2e) -> None:
    daemon = circusd(_config())
    e2e.wait(lambda: len(daemon.pids("sleeper")) == 2 and daemon.pids("other"))
    daemon.close_client()
    ctl = Ctl(upstream_circus, daemon.endpoint)
    listener = Listener(upstream_circus, daemon.pubsub)
    try:
        _drive(ctl, listener, daemon, e2e)
    finally:
        listener.close()
    assert daemon.wait(30) == 0


def _drive(ctl: Ctl, listener: Listener, daemon: Any, e2e: Any) -> None:
    # read-only commands
    assert ctl.ok("list") == "other,sleeper"
    assert ctl.ok("status") == "other: active\nsleeper: active"
    assert ctl.ok("status", "sleeper") == "active"
    assert ctl.ok("numwatchers") == "2"
    assert ctl.ok("numprocesses") == "3"  # before any scaling below
    assert ctl.ok("numprocesses", "sleeper") == "2"
    pids = [int(p) for p in ctl.ok("list", "sleeper").split(",")]
    assert len(pids) == 2
    stats = ctl.ok("stats", "sleeper")
    assert all(str(p) in stats for p in pids)
    assert "Main Process" in ctl.ok("dstats")
    sockets = ctl.ok("listsockets")
    assert "socket 'web' at 127.0.0.1:" in sockets
    options = ctl.ok("globaloptions")
    assert f"endpoint: {daemon.endpoint}" in options
    assert "multicast_endpoint:" in options
    assert "numprocesses: 2" in ctl.ok("options", "sleeper")
    assert ctl.ok("get", "sleeper", "numprocesses", "graceful_timeout") == (
        "numprocesses: 2\ngraceful_timeout: 2.0"
    )
    assert ctl.json("list")["watchers"] == ["other", "sleeper"]

    # give the slow-joining subscriber time to be connected before the first event we check
    # (each `set` publishes an `updated` event and starts nothing)
    e2e.wait(
        lambda: (
            ctl.ok("set", "other", "graceful_timeout", "2"),
            listener.pump(0.3),
            listener.events,
        )[2],
        20,
    )

    # scaling
    assert ctl.ok("incr", "sleeper", "--waiting") == "3"
    spawn = listener.wait_for("watcher.sleeper.spawn")
    assert set(spawn) == {"process_pid", "time"}
    assert ctl.ok("decr", "sleeper", "--waiting") == "2"
    assert ctl.ok("incr", "sleeper") == "ok"  # without --waiting: a bare ok, as upstream
    e2e.wait(lambda: ctl.ok("numprocesses", "sleeper") == "3")
    assert ctl.ok("set", "sleeper", "numprocesses", "2", "--waiting") == "ok"
    assert ctl.ok("get", "sleeper", "numprocesses") == "numprocesses: 2"
    listener.wait_for("watcher.sleeper.updated")

    # lifecycle
    assert ctl.ok("stop", "sleeper", "--waiting") == "ok"
    assert ctl.ok("status", "sleeper") == "stopped"
    kill = listener.wait_for("watcher.sleeper.kill")
    assert set(kill) == {"process_pid", "time"}
    listener.wait_for("watcher.sleeper.stop")
    assert ctl.ok("start", "sleeper", "--waiting") == "ok"
    assert ctl.ok("status", "sleeper") == "active"
    listener.wait_for("watcher.sleeper.start")
    before = set(ctl.ok("list", "sleeper").split(","))
    assert ctl.ok("restart", "sleeper", "--waiting") == "ok"
    assert not before & set(ctl.ok("list", "sleeper").split(","))
    assert ctl.ok("reload", "sleeper", "--waiting") == "ok"
    listener.wait_for("watcher.sleeper.reload")
    assert ctl.ok("reloadconfig") == "ok"

    # signal and kill (the 0.19 CLI sends the signal by name, pid and timeout as strings)
    pid = ctl.ok("list", "sleeper").split(",")[0]
    assert ctl.ok("signal", "sleeper", pid, "WINCH") == "ok"
    assert ctl.ok("signal", "sleeper", "WINCH") == "ok"
    rc, _, err = ctl("signal", "sleeper", "NOSUCHSIG")
    assert rc == 3 and err.startswith("error:")

    # add / rm
    assert ctl.ok("add", "--start", "added", SLEEP, "1000") == "ok"
    listener.wait_for("watcher.added.add")
    e2e.wait(lambda: ctl.ok("status", "added") == "active")
    assert ctl.ok("list") == "added,other,sleeper"
    assert ctl.ok("rm", "added") == "ok"
    listener.wait_for("watcher.added.remove")
    e2e.wait(lambda: ctl.ok("list") == "other,sleeper")

    # errors are printed as upstream does, exit status 3
    rc, out, err = ctl("status", "nosuch")
    assert rc == 3 and "error" in out + err  # 0.19 prints a bare "error" for status
    rc, out, err = ctl("get", "sleeper", "bogus")
    assert rc == 3 and "'bogus' option not found" in err

    # quit: the daemon answers, stops everything and exits
    assert ctl.ok("quit", "--waiting") == "ok"

"""What daemon-reexec carries over, watcher by watcher, and that the children are really
supervised by the new image afterwards."""

from __future__ import annotations

import os
import signal

import pytest
from circus.process.testing import wait_until

CONFIG = """
[watcher:grown]
cmd = sleep 600
numprocesses = 2
graceful_timeout = 5

[watcher:parked]
cmd = sleep 600
numprocesses = 2
graceful_timeout = 5

[watcher:flaky]
cmd = sleep 600
numprocesses = 1
graceful_timeout = 5
"""


def _info(daemon, name: str) -> dict[int, tuple[int, float]]:
    """``{pid: (wid, started)}`` from ``stats``."""
    answer = daemon.call("stats", name=name)
    return {int(pid): (i["wid"], i["started"]) for pid, i in answer["info"].items()}


@pytest.mark.slow
def test_watcher_state_carries_over_and_stays_supervised(circusd, e2e) -> None:
    daemon = circusd(CONFIG)
    wait_until(lambda: len(daemon.pids("grown")) == 2 and daemon.pids("flaky"), 30, "up")
    assert daemon.call("incr", name="grown", nb=2, waiting=True)["status"] == "ok"
    assert daemon.call("decr", name="parked", waiting=True)["status"] == "ok"
    assert daemon.call("stop", name="parked", waiting=True)["status"] == "ok"
    answer = daemon.call("set", name="grown", options={"graceful_timeout": 7}, waiting=True)
    assert answer["status"] == "ok", answer
    # one unrequested death: its replacement has a new pid and a new wid... and keeps them
    victim = daemon.pids("flaky")[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: daemon.pids("flaky") and daemon.pids("flaky")[0] != victim, 30, "respawn")
    wait_until(lambda: len(daemon.pids("grown")) == 4, 30, "4 grown")
    before = {name: _info(daemon, name) for name in ("grown", "flaky")}

    answer = daemon.call("daemon-reexec", timeout=60)
    assert answer["status"] == "ok", answer
    wait_until(lambda: "generation 1 serving" in daemon.output(), 60, "the new image serving")

    # numprocesses after incr/decr, stopped stays stopped, set options, wids and ages
    def option(name: str, key: str) -> object:
        return daemon.call("get", name=name, keys=[key])["options"][key]

    assert option("grown", "numprocesses") == 4 and option("parked", "numprocesses") == 1
    assert daemon.call("status", name="parked")["status"] == "stopped"
    assert daemon.pids("parked") == []
    assert option("grown", "graceful_timeout") == 7
    assert {name: _info(daemon, name) for name in ("grown", "flaky")} == before

    # supervised by the new image: a death is replaced, a stop ends them (exit status known)
    dead = sorted(before["grown"])[0]
    os.kill(dead, signal.SIGKILL)
    wait_until(lambda: dead not in daemon.pids("grown") and len(daemon.pids("grown")) == 4,
               30, "the dead one replaced")  # fmt: skip
    assert not e2e.alive(dead)
    grown = daemon.pids("grown")
    assert daemon.call("stop", name="grown", waiting=True)["status"] == "ok"
    assert [p for p in grown if e2e.alive(p)] == []
    assert daemon.call("start", name="parked", waiting=True)["status"] == "ok"
    assert len(daemon.pids("parked")) == 1

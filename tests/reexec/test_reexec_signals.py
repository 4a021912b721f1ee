"""A SIGTERM sent while circusd re-executes itself is never lost: whichever image gets it
stops every watcher and exits 0 (the new image has it blocked until it can handle it)."""

from __future__ import annotations

import signal
import time

import pytest
from circus.process.testing import wait_until

CONFIG = """
[watcher:idle]
cmd = sleep 600
numprocesses = 4
graceful_timeout = 5
"""


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2])
def test_sigterm_during_the_switch_stops_cleanly(circusd, e2e, delay) -> None:
    daemon = circusd(CONFIG)
    wait_until(lambda: len(daemon.pids("idle")) == 4, 30, "4 idle processes")
    pids = daemon.pids("idle")
    answer = daemon.call("daemon-reexec", timeout=60)
    assert answer["status"] == "ok", answer
    daemon.close_client()
    time.sleep(delay)  # the signal lands before, during or after the exec
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(60) == 0, daemon.output()
    assert [p for p in pids if e2e.alive(p)] == [], daemon.output()

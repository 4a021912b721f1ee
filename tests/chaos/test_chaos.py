"""Chaos in CI: five misbehaving watchers, a process killer and four command storms at once.

The long version of the same run is ``make soak`` (``soak.py``).
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from chaos_engine import GRACEFUL, ChaosRun, tagged
from circus.process.testing import wait_until

pytestmark = pytest.mark.slow

STORM_SECONDS = 8.0


def test_storm_then_everything_back_in_order(tmp_path: Path) -> None:
    with ChaosRun(tmp_path) as run:
        figures = run.storm(STORM_SECONDS)
        run.settle()
        problems = run.check()
        summary = figures.summary()
        assert not problems, f"{problems}\n{summary}\n{run.output()[-2000:]}"
        # the storm did happen: the figures are not those of an idle daemon
        assert figures.answered == figures.requests > 20, summary
        assert figures.kills > 10 and figures.stops > 10, summary
        assert figures.restarts > 10, summary
        # commands are queued per watcher, never behind another watcher's work: reads stay quick
        assert figures.read_median < 0.5, summary
        assert run.proc is not None and run.proc.poll() is None
    assert run.proc.returncode == 0
    wait_until(lambda: not tagged(run.tag), 10, "no process of the run left")


def test_sigterm_mid_storm_stops_everything(tmp_path: Path) -> None:
    with ChaosRun(tmp_path) as run:
        stop = threading.Event()
        storm = threading.Thread(
            target=run.storm,
            kwargs={"seconds": 60, "client_timeout": 3.0, "warm_up": False, "stop": stop},
            daemon=True,
        )
        storm.start()
        try:
            wait_until(lambda: run.figures.answered > 20 and run.figures.kills > 10, 30, "a storm")
            assert run.proc is not None
            began = time.monotonic()
            run.proc.send_signal(signal.SIGTERM)
            rc = run.proc.wait(60)
            elapsed = time.monotonic() - began
        finally:
            stop.set()
            storm.join(30)
        # graceful_timeout is at most GRACEFUL (the storm sets 0.5 or 1.0); the watchers stop
        # concurrently; adopted orphans get 3 s; the rest is margin for a loaded machine
        assert rc == 0, run.output()[-2000:]
        assert elapsed < GRACEFUL + 3.0 + 8.0, f"circusd took {elapsed:.1f} s"
        left = tagged(run.tag)
        assert not left, [(p.pid, p.info) for p in left]

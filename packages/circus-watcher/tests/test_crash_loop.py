"""Crash loops: when a watcher is crash-looping, what it says, what it logs (one line per
exit, rate-limited, with the exit code and the next retry), and when it ends."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from circus.process.testing import async_wait_until
from circus.watcher._crashloop import CRASH_LOOP_EXITS, LOG_BURST

EXIT3 = f"{sys.executable} -c 'raise SystemExit(3)'"


def _fails_then_stays(counter: Path, failures: int) -> str:
    code = (
        "import os, sys, time; p = sys.argv[1]; "
        "n = int(open(p).read()) if os.path.exists(p) else 0; "
        "open(p, 'w').write(str(n + 1)); "
        f"sys.exit(3) if n < {failures} else time.sleep(300)"
    )
    return f'{sys.executable} -c "{code}" {counter}'


def test_crash_loop_is_seen_said_and_logged(
    make: Any, recorder: Any, run_async: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="circus.watcher")

    async def main() -> None:
        w = make(EXIT3, backoff_initial=0.2, backoff_max=0.5)
        await w.start()
        await async_wait_until(lambda: w.crash_loop() is not None, 30, "a crash loop")
        loop = w.crash_loop()
        assert loop is not None
        assert loop["exits"] >= CRASH_LOOP_EXITS and loop["exit_code"] == 3
        assert loop["next_retry"] >= loop["last_exit"] >= loop["since"]
        assert w.status() == "active"  # the state machine's state is unchanged
        events = recorder.of("crash_loop")
        assert len(events) == 1 and events[0]["exits"] == CRASH_LOOP_EXITS
        assert events[0]["exit_code"] == 3
        await w.reload()
        assert not recorder.of("crash_loop_end")
        await w.stop()
        assert w.crash_loop() is None  # a stop ends it
        assert [e["reason"] for e in recorder.of("crash_loop_end")] == ["stopped"]

    run_async(main)
    lines = [r.getMessage() for r in caplog.records if r.name == "circus.watcher"]
    exits = [line for line in lines if "exited with code 3" in line]
    assert len(exits) >= CRASH_LOOP_EXITS
    assert "respawning now" in exits[0]  # the first failure is replaced at once
    assert all("next retry at" in line for line in exits[1:]), exits
    assert any("crash-looping (3 failed exits in a row)" in line for line in exits), exits
    assert lines[0] == "w started" and lines[-1] == "w stopped", lines
    assert "w reloaded" in lines


def test_exit_lines_are_rate_limited(
    make: Any, run_async: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="circus.watcher")

    async def main() -> None:
        w = make(EXIT3, numprocesses=4, backoff_initial=0)  # respawned at once, forever
        await w.start()
        await async_wait_until(
            lambda: sum("more exits not logged" in r.getMessage() for r in caplog.records) >= 1,
            60,
            "a line saying exits were left out",
        )
        await w.stop()

    run_async(main)
    exits = [r for r in caplog.records if "exited with code 3" in r.getMessage()]
    span = exits[-1].created - exits[0].created
    # a burst, then about one a second (the +2: a token refilled at each end of the span)
    assert len(exits) <= LOG_BURST + span + 2, (len(exits), span)


@pytest.mark.slow
def test_crash_loop_ends_when_a_process_stays_up(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    async def main() -> None:
        w = make(
            _fails_then_stays(tmp_path / "n", CRASH_LOOP_EXITS),
            backoff_initial=0.1,
            backoff_reset=1.0,
        )
        await w.start()
        await async_wait_until(lambda: w.crash_loop() is not None, 30, "a crash loop")
        await async_wait_until(
            lambda: w.crash_loop() is None, 30, "the loop to end with a process up"
        )
        assert w.status() == "active" and len(w.pids) == 1
        await recorder.until(lambda: recorder.count("crash_loop_end") == 1, 30)
        assert recorder.of("crash_loop_end")[0]["reason"] == "no failure for 1s"

    run_async(main)


def test_successful_exits_are_no_crash_loop(make: Any, run_async: Any, tmp_path: Path) -> None:
    async def main() -> None:
        w = make(f"{sys.executable} -c 'pass'", backoff_initial=0)
        await w.start()
        await async_wait_until(
            lambda: w._crash.last_exit > 0 and w._policy.streak == 0, 30, "a few exits"
        )
        assert w.crash_loop() is None

    run_async(main)

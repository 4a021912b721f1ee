"""Flapping stops a real crash loop; backoff spaces respawns; user actions never count."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

NO_FLAP = {"flapping.active": False}


def test_flapping_stops_a_crash_loop_then_gives_up(
    make: Any, recorder: Any, run_async: Any
) -> None:
    async def main() -> None:
        w = make(
            "false",
            backoff_initial=0,
            **{"flapping.active": True, "flapping.attempts": 3, "flapping.window": 5,
               "flapping.retry_in": 0.3, "flapping.max_retry": 1},
        )  # fmt: skip
        await w.start()
        # 3 deaths -> stopped; retried once after 0.3 s; 3 more deaths -> stopped for good.
        await recorder.until(lambda: recorder.count("stop") == 2)
        assert w.status() == "stopped"
        assert recorder.count("spawn") == 6
        assert recorder.count("start") == 2
        await asyncio.sleep(1.0)  # longer than retry_in: nothing more may happen
        assert recorder.count("spawn") == 6 and w.status() == "stopped"

    run_async(main)


def test_user_start_after_flapping_starts_afresh(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("false", backoff_initial=0, **{"flapping.active": True, "flapping.attempts": 2,
                                                "flapping.retry_in": 60})  # fmt: skip
        await w.start()
        await recorder.until(w.is_stopped)
        spawned = recorder.count("spawn")
        await w.start()  # cancels the pending retry; a new crash loop is detected again
        await recorder.until(lambda: recorder.count("stop") == 2)
        assert recorder.count("spawn") == spawned * 2

    run_async(main)


def test_user_actions_are_never_flapping(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        flapping = {"flapping.active": True, "flapping.attempts": 2, "flapping.window": 30}
        w = make("sleep 300", numprocesses=3, **flapping)
        for _ in range(3):
            await w.start()
            await w.stop()
        await w.start()
        for pid in w.pids:
            await w.kill_process(pid)
        await w.decr(2)
        await w.reload()
        await w.restart()
        assert w.status() == "active" and len(w.pids) == 1
        stops = recorder.count("stop")
        spawns = recorder.count("spawn")
        os.kill(w.pids[0], 9)  # one crash is not flapping either
        await recorder.until(lambda: recorder.count("spawn") == spawns + 1)
        assert w.status() == "active" and recorder.count("stop") == stops

    run_async(main)


@pytest.mark.slow
def test_backoff_spaces_respawns_and_caps(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("false", backoff_initial=0.2, backoff_factor=2, backoff_max=0.4, **NO_FLAP)
        await w.start()
        await recorder.until(lambda: recorder.count("spawn") >= 7, within=30)
        await w.stop()
        spawns = [p["time"] for p in recorder.of("spawn")]
        reaps = [p["time"] for p in recorder.of("reap")]
        gaps = [spawn - reap for reap, spawn in zip(reaps, spawns[1:], strict=False)][:6]
        # backoff: 0, 0.2, 0.4, then capped at 0.4 (uncapped: 0.8, 1.6, 3.2). The bounds
        # allow a loaded host's delays above each wait, never a wait cut short.
        for gap, want in zip(gaps, [0.0, 0.2, 0.4, 0.4, 0.4, 0.4], strict=True):
            assert gap >= want - 0.02, gaps
        assert gaps[5] < 2.0, f"backoff not capped: {gaps}"  # uncapped it would be 3.2 s

    run_async(main)


def test_success_exits_respawn_without_backoff(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("true", backoff_initial=5, **NO_FLAP)
        await w.start()
        await recorder.until(lambda: recorder.count("spawn") >= 20)  # 5 s backoff would stall

    run_async(main)


def test_stop_cancels_a_pending_backoff(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("false", backoff_initial=0.3, **NO_FLAP)
        await w.start()
        await recorder.until(lambda: recorder.count("reap") >= 2)
        await w.stop()
        spawned = recorder.count("spawn")
        await asyncio.sleep(0.6)  # past the pending backoff: nothing may spawn
        assert recorder.count("spawn") == spawned and w.pids == []

    run_async(main)


def test_give_up_after_stops_for_good_after_n_quick_failures(
    make: Any, recorder: Any, run_async: Any
) -> None:
    async def main() -> None:
        w = make("false", backoff_initial=0, give_up_after=3, backoff_reset=30, **NO_FLAP)
        await w.start()
        await recorder.until(lambda: recorder.count("give_up") == 1)
        assert w.status() == "stopped"
        assert recorder.count("spawn") == 3
        await w.start()  # a user start begins a new streak
        await recorder.until(lambda: recorder.count("give_up") == 2)
        assert recorder.count("spawn") == 6

    run_async(main)

"""The respawn of a process that died on its own: the replacement is forked and announced
first (``reap`` then ``spawn``), and only then is the dead process closed and its exit
recorded and logged; hooks, failed spawns, flapping and a racing stop see what they saw
before."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

SLEEP = "sleep 300"


def _closed(proc: Any) -> bool:
    return proc.stdout is None and proc.stderr is None and proc.pidfd is None


def test_spawn_is_announced_before_the_dead_process_is_closed(
    make: Any, recorder: Any, run_async: Any
) -> None:
    async def main() -> None:
        w = make(SLEEP, backoff_initial=0)
        await w.start()
        (old,) = w.processes.values()
        seen: list[tuple[str, bool]] = []

        def at_event(event: str, payload: dict[str, Any]) -> None:
            if event in ("reap", "spawn"):
                seen.append((event, w._crash.last_exit > 0))

        w.add_listener(at_event)
        os.kill(old.pid, signal.SIGKILL)
        await recorder.until(lambda: recorder.count("spawn") == 2)
        # the exit is recorded (and logged) only once the spawn is out
        assert seen == [("reap", False), ("spawn", False)]
        assert _closed(old) and w._crash.last_exit > 0
        assert w._crash.exit_code == -signal.SIGKILL
        assert w._spawner.pending == 0 and len(w.processes) == 1

    run_async(main)


def test_reap_then_spawn_for_each_of_several_deaths(
    make: Any, recorder: Any, run_async: Any
) -> None:
    async def main() -> None:
        w = make(SLEEP, numprocesses=3, backoff_initial=0)
        await w.start()
        for proc in list(w.processes.values()):
            os.kill(proc.pid, signal.SIGKILL)
        await recorder.until(lambda: recorder.count("spawn") == 6)
        after_start = [(e, p["process_pid"]) for e, p in recorder.events if e in ("reap", "spawn")]
        after_start = after_start[3:]
        # each death: its reap, then the spawn of its replacement, pairwise
        assert [e for e, _ in after_start] == ["reap", "spawn"] * 3
        assert len(w.processes) == 3 and w._spawner.pending == 0

    run_async(main)


def test_a_hook_watcher_keeps_its_order(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        order: list[str] = []

        def hook(name: str) -> Any:
            def call(**kwargs: Any) -> bool:
                order.append(name)
                return True

            return call

        w = make(
            SLEEP,
            backoff_initial=0,
            hooks={n: hook(n) for n in ("before_reap", "after_reap", "before_spawn")},
        )
        w.add_listener(lambda event, payload: event == "hook_success" or order.append(event))
        await w.start()
        order.clear()
        (old,) = w.processes.values()
        os.kill(old.pid, signal.SIGKILL)
        await recorder.until(lambda: recorder.count("spawn") == 2)
        assert order == ["before_reap", "reap", "after_reap", "before_spawn", "spawn"], order
        assert _closed(old)

    run_async(main)


def test_a_failed_respawn_is_counted_and_gives_up(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    program = tmp_path / "prog"
    shutil.copy("/bin/sleep", program)

    async def main() -> None:
        w = make(f"{program} 300", backoff_initial=0, max_retry=2, retry_in=0.01)
        await w.start()
        (old,) = w.processes.values()
        program.unlink()  # the fast-path respawn fails; the retries fail too
        os.kill(old.pid, signal.SIGKILL)
        await recorder.until(lambda: recorder.count("give_up") == 1, 30)
        assert recorder.names().index("reap") < recorder.names().index("give_up")
        assert recorder.count("spawn") == 1  # the first one only
        assert _closed(old) and w._crash.exit_code == -signal.SIGKILL
        assert w._spawner.pending == 0 and not w.processes
        assert w.status() == "stopped"

    run_async(main)


def test_flapping_still_counts_fast_path_respawns(make: Any, recorder: Any, run_async: Any) -> None:
    exit3 = f"{sys.executable} -c 'raise SystemExit(3)'"

    async def main() -> None:
        w = make(
            exit3,
            backoff_initial=0,
            **{"flapping.active": True, "flapping.attempts": 3, "flapping.window": 60,
               "flapping.retry_in": 0.3, "flapping.max_retry": 0},
        )  # fmt: skip
        await w.start()
        await recorder.until(lambda: w.status() == "stopped", 30)
        # the start's spawn and two fast-path respawns, the third death is the flap
        assert recorder.count("reap") == 3 and recorder.count("spawn") == 3
        assert w._spawner.pending == 0 and not w.processes

    run_async(main)


def test_a_stop_racing_a_respawn(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make(SLEEP, numprocesses=2, backoff_initial=0)
        await w.start()
        for _ in range(3):
            for proc in list(w.processes.values()):
                os.kill(proc.pid, signal.SIGKILL)
            await w.stop()  # the deaths' exit callbacks and the stop race in one pass
            assert not w.processes and w._spawner.pending == 0
            assert w.status() == "stopped"
            await w.start()
            assert len(w.processes) == 2
        assert recorder.count("reap") >= recorder.count("spawn") - 2

    run_async(main)

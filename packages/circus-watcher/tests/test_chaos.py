"""Random concurrent operations against crashing and healthy processes: the state stays sane."""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

import pytest
from circus.watcher import WatcherError

COMMANDS = ["sleep 300", "sh -c 'sleep 0.0$$'", "false", "true"]


async def operate(w: Any, rnd: random.Random) -> None:
    choice = rnd.randrange(11)
    if choice == 0:
        await w.start()
    elif choice == 1:
        await w.stop()
    elif choice == 2:
        await w.restart()
    elif choice == 3:
        await w.reload(graceful=rnd.random() < 0.8, sequential=rnd.random() < 0.5)
    elif choice == 4:
        await w.incr(rnd.randint(1, 2))
    elif choice == 5:
        await w.decr(rnd.randint(1, 2))
    elif choice in (6, 7) and w.pids:
        try:
            os.kill(rnd.choice(w.pids), 9)
        except ProcessLookupError:
            pass
    elif choice == 8 and w.pids:
        await w.kill_process(rnd.choice(w.pids))
    elif choice == 9:
        await w.set_numprocesses(rnd.randint(0, 4))
    else:
        await w.signal("CONT")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_random_operations_keep_the_state_sane(
    make: Any, recorder: Any, seed: int, run_async: Any
) -> None:
    async def main() -> None:
        rnd = random.Random(seed)
        w = make(
            COMMANDS[seed % len(COMMANDS)],
            numprocesses=rnd.randint(1, 3),
            graceful_timeout=0.5,
            backoff_initial=rnd.choice([0, 0.05]),
            warmup_delay=rnd.choice([0, 0.02]),
            max_age=rnd.choice([0, 0.3]),
            max_age_variance=0.1,
            **{"flapping.active": seed % 2 == 0, "flapping.retry_in": 0.2,
               "flapping.attempts": 3, "flapping.max_retry": -1},
        )  # fmt: skip
        deadline = time.monotonic() + 1.5

        async def worker() -> None:
            while time.monotonic() < deadline:
                try:
                    await operate(w, rnd)
                except WatcherError:
                    pass  # a pid that died meanwhile
                await asyncio.sleep(rnd.random() * 0.03)

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(3))), 30)
        await asyncio.wait_for(w.stop(), 30)
        assert w.status() == "stopped" and w.pids == []
        assert w._procs.idle and not (w._spawner.pending or w._spawner.timers)
        await recorder.until(lambda: not w._tasks)
        assert recorder.count("spawn") == recorder.count("reap")

    run_async(main)

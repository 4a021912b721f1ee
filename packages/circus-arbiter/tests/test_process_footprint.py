"""What one more process costs the daemon in Python objects: a bounded number of bytes.

bench/ measures circusd's RSS against N (bench/README.md, "Daemon RSS, session 4": about
2.2 KiB of Python objects per ``sleep`` child, all of it bookkeeping). This pins that share
with tracemalloc, so a per-process buffer, cache or closure that creeps in fails here, not
in a bench run months later. It counts bytes, never time.
"""

from __future__ import annotations

import gc
import shutil
import tracemalloc
from collections.abc import Callable
from typing import Any

from circus.arbiter import Arbiter
from circus.ctl import AsyncCircusClient

SLEEP = shutil.which("sleep") or "/bin/sleep"
BEFORE, AFTER = 10, 70  # processes running when the count starts and when it ends
# Bytes of Python objects the daemon keeps per running child. Measured 2.2-2.5 KiB (process
# object, its exit and pipe registrations, output pipes for the logs ring, crash-state entry);
# a 4 KiB buffer per child, or a copy of the environment, goes over.
LIMIT = 4096


def test_one_more_process_costs_a_bounded_number_of_bytes(
    run_arbiter: Callable[..., Any], waiter: Callable[..., Any]
) -> None:
    watcher = {
        "name": "s",
        "cmd": SLEEP,
        "args": "300",
        "numprocesses": BEFORE,
        "graceful_timeout": 5,
        "env": {f"VAR{i}": "x" * 64 for i in range(40)},  # a copy per child would show
    }

    async def body(arbiter: Arbiter, client: AsyncCircusClient) -> float:
        async def running(n: int) -> bool:
            answer = await client.call("list", name="s")
            return len(answer.get("pids", ())) == n

        await waiter(lambda: running(BEFORE), 60, f"{BEFORE} processes running")
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            await client.call("incr", name="s", nb=AFTER - BEFORE, waiting=True)
            await waiter(lambda: running(AFTER), 60, f"{AFTER} processes running")
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        return grown / (AFTER - BEFORE)

    per_process = run_arbiter([watcher], body)
    assert per_process < LIMIT, (
        f"each process costs the daemon {per_process:.0f} bytes of Python objects "
        f"(limit {LIMIT}): something per process was added"
    )

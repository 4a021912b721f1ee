"""A stop ends a start that retries a spawn forever, without waiting out its backoff."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

SLEEP = f"{sys.executable} -c 'import time; time.sleep(60)'"


async def _retrying(make, tmp_path: Path, caplog: pytest.LogCaptureFixture):  # type: ignore[no-untyped-def]
    # retry_in of an hour: only an interrupted backoff lets the start return in time.
    watcher = make(SLEEP, working_dir=str(tmp_path / "missing"), max_retry=-1, retry_in=3600)
    start = asyncio.ensure_future(watcher.start())
    for _ in range(1000):  # the first attempt fails at once: then it sleeps
        if "spawn attempt 1 failed" in caplog.text:
            break
        await asyncio.sleep(0.01)
    assert "spawn attempt 1 failed" in caplog.text
    return watcher, start


def test_stop_interrupts_a_start_retrying_forever(
    make, tmp_path: Path, caplog: pytest.LogCaptureFixture, run_async: Any
) -> None:
    async def main() -> None:
        watcher, start = await _retrying(make, tmp_path, caplog)
        assert await asyncio.wait_for(watcher.stop(), 10) == []
        assert await asyncio.wait_for(start, 10) == {"started": [], "kept": []}
        assert watcher.status() == "stopped"
        assert "spawn attempt 2" not in caplog.text

    run_async(main)


def test_interrupt_frees_the_lock_a_retrying_start_holds(
    make, tmp_path: Path, caplog: pytest.LogCaptureFixture, run_async: Any
) -> None:
    async def main() -> None:
        watcher, start = await _retrying(make, tmp_path, caplog)
        watcher.interrupt()  # what the arbiter does before queueing its stop behind that lock
        await asyncio.wait_for(start, 10)
        assert await asyncio.wait_for(watcher.stop(), 10) == []

    run_async(main)

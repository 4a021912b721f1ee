"""Fixtures: an in-process Arbiter on ipc endpoints in tmp_path, driven by circus.ctl."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from circus.arbiter import Arbiter
from circus.ctl import AsyncCircusClient
from circus.process.testing import async_wait_until, leak_check_fixture

# No test leaves a child process or a descriptor behind (DEVELOPERS.md, test rules).
no_leaks = leak_check_fixture()

Body = Callable[[Arbiter, AsyncCircusClient], Awaitable[Any]]

PY = sys.executable


@pytest.fixture
def endpoints(tmp_path: Path) -> dict[str, str]:
    """Control and pub/sub endpoints as ipc sockets in the test's temp dir."""
    return {"endpoint": f"ipc://{tmp_path}/ctl", "pubsub_endpoint": f"ipc://{tmp_path}/pub"}


@pytest.fixture
def run_arbiter(endpoints: dict[str, str]) -> Callable[..., Any]:
    """``run_arbiter(watchers, body, **kwargs)``: start an Arbiter, run ``body(arbiter,
    client)`` on its loop, always stop it (every child reaped) and return body's result."""

    def run(watchers: list[Any], body: Body, **kwargs: Any) -> Any:
        async def main() -> Any:
            arbiter = Arbiter(watchers, **{**endpoints, **kwargs})
            await arbiter.start_async()
            try:
                async with AsyncCircusClient(endpoints["endpoint"], timeout=10, check=False) as c:
                    return await body(arbiter, c)
            finally:
                await arbiter.stop()

        return asyncio.run(main())

    return run


@pytest.fixture
def waiter() -> Callable[..., Awaitable[Any]]:
    """:func:`circus.process.testing.async_wait_until` (predicate, timeout, message)."""
    return async_wait_until


def sleeper(name: str = "sleeper", n: int = 1, **options: Any) -> dict[str, Any]:
    """A watcher dict running a Python process that sleeps until told to stop."""
    return {
        "name": name,
        "cmd": f"{PY} -c 'import time; time.sleep(300)'",
        "numprocesses": n,
        "graceful_timeout": 5,
        **options,
    }


@pytest.fixture
def make_sleeper() -> Callable[..., dict[str, Any]]:
    """The :func:`sleeper` factory."""
    return sleeper

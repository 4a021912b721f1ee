"""Shared fixtures for circus.watcher tests: an event recorder, a watcher factory, and
``run_async``, which runs a test's async body and stops the watchers it made."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from circus.process.testing import leak_check_fixture, wait_until

T = TypeVar("T")

# No test leaves a child process or a descriptor behind (DEVELOPERS.md, test rules).
no_leaks = leak_check_fixture()


class Recorder:
    """Collects ``(event, payload)`` pairs; waits for conditions with a deadline."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed: asyncio.Event | None = None

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        self.events.append((event, payload))
        if self._changed is not None:
            self._changed.set()

    def names(self) -> list[str]:
        return [event for event, _ in self.events]

    def count(self, name: str) -> int:
        return sum(1 for event, _ in self.events if event == name)

    def of(self, name: str) -> list[dict[str, Any]]:
        return [payload for event, payload in self.events if event == name]

    async def until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, woken by each event (never a sleep loop)."""
        self._changed = asyncio.Event()
        deadline = time.monotonic() + within
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"condition not met in {within}s; events: {self.names()}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
            except TimeoutError:
                pass  # re-check: some conditions (process state) change without an event


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def watchers() -> list[Any]:
    """Watchers made by ``make``; ``run_async`` stops them all after the test's body."""
    return []


@pytest.fixture
def make(watchers: list[Any], recorder: Recorder) -> Callable[..., Any]:
    """``make(cmd, **options)``: a Watcher with test-friendly defaults, recorded and cleaned up."""
    from circus.watcher import Watcher

    def factory(cmd: str, name: str = "w", **options: Any) -> Any:
        options.setdefault("graceful_timeout", 5.0)
        watcher = Watcher(name, cmd, **options)
        watcher.add_listener(recorder)
        watcher.add_listener(_note_sessions)
        watchers.append(watcher)
        return watcher

    return factory


# Every child is its own session leader, and its descendants stay in that session unless
# they leave it: a leftover member of one of these sessions is a leaked (maybe orphaned)
# process, even when it was reparented away from us.
_SESSIONS: set[int] = set()


def _note_sessions(event: str, payload: dict[str, Any]) -> None:
    if event == "spawn":
        _SESSIONS.add(payload["process_pid"])


def _leftover_children() -> list[Any]:
    import psutil

    left = psutil.Process().children(recursive=True)
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) in _SESSIONS and proc not in left:
                left.append(proc)
        except (OSError, psutil.Error):
            continue
    return left


@pytest.fixture
def run_async(watchers: list[Any]) -> Callable[[Callable[[], Awaitable[T]]], T]:
    """``run_async(main)``: ``asyncio.run(main())``, then, on that loop, stop every watcher
    ``make`` made; once the body passed, no process a watcher spawned may be left, not even
    one reparented away from us (the autouse leak check sees only our own descendants)."""
    _SESSIONS.clear()

    def run(main: Callable[[], Awaitable[T]]) -> T:
        async def body() -> T:
            try:
                return await main()
            finally:
                for watcher in watchers:
                    await asyncio.wait_for(watcher.stop(), 30)

        result = asyncio.run(body())
        # a zombie's parent gets no event we could wait on: poll, with a deadline
        try:
            wait_until(lambda: not _leftover_children(), 5, "no process left behind")
        except AssertionError:
            raise AssertionError(f"leftover processes: {_leftover_children()}") from None
        return result

    return run

"""Shared fixtures for circus.watcher tests: an event recorder and hook helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest


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

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, woken by each event (never a sleep loop)."""
        self._changed = asyncio.Event()
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"condition not met in {timeout}s; events: {self.names()}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
            except TimeoutError:
                pass  # re-check: some conditions (process state) change without an event


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()

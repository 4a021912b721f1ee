"""Shared fixtures for circus.watcher tests: an event recorder and hook helpers."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from circus.process.testing import leak_check_fixture

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
    """Watchers made by ``make``; the async test runner stops them all after the test."""
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


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests on a fresh loop; stop their watchers; no process or fd may leak."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    made: list[Any] = pyfuncitem.funcargs.get("watchers", [])  # type: ignore[assignment]

    _SESSIONS.clear()

    async def main() -> None:
        try:
            await pyfuncitem.obj(**kwargs)
        finally:
            for watcher in made:
                await asyncio.wait_for(watcher.stop(), 30)
        # Every process the test started must be gone and reaped (no zombie).
        deadline = time.monotonic() + 5
        # A zombie's parent gets no event we could await: poll, with a deadline.
        while _leftover_children() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        left = _leftover_children()
        assert not left, f"leftover processes: {left}"

    fds_before = set(os.listdir("/proc/self/fd"))
    asyncio.run(main())
    leaked = set(os.listdir("/proc/self/fd")) - fds_before
    assert not leaked, f"fds left open: {[_describe(fd) for fd in leaked]}"
    return True


def _describe(fd: str) -> str:
    try:
        return f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}"
    except OSError:
        return fd

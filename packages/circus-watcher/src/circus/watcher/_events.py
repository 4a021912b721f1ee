"""Event fan-out: listener callbacks, async iterators, and output observers.

Listeners are plain callables ``cb(event, payload)`` called synchronously, in registration
order, on the loop thread; a listener that raises is logged and skipped (one bad listener
never breaks the watcher or the others). ``events()`` iterators each get their own
unbounded queue, created when the iteration starts and removed when it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

logger = logging.getLogger("circus.watcher")

Listener = Callable[[str, dict[str, Any]], Any]
OutputObserver = Callable[[int, str, bytes], Any]

#: Events a watcher emits, with their payload keys (shared/spec/protocol.md §2.2).
EVENTS: dict[str, tuple[str, ...]] = {
    "spawn": ("process_pid", "time"),
    "reap": ("process_pid", "time", "exit_code"),
    "kill": ("process_pid", "time"),
    "start": ("time",),
    "stop": ("time",),
    "reload": ("time",),
    "updated": ("time",),
    "hook_success": ("name", "time"),
    "hook_failure": ("name", "time", "error"),
    # stopped for good on its own: spawn retries exhausted, or flapping with no retry left
    "give_up": ("reason", "time"),
    # entered a crash loop (README "Crash loops"): failed exits in a row, the last code,
    # epoch of the first and last exits and of the next retry
    "crash_loop": ("time", "exits", "exit_code", "since", "last_exit", "next_retry"),
    "crash_loop_end": ("time", "reason"),
    # readiness and liveness (README "Readiness and liveness")
    "ready": ("process_pid", "process_id"),
    "unready": ("process_pid", "process_id", "reason"),
    "unhealthy": ("process_pid", "process_id", "reason"),
    # a running process taken in by Watcher.adopt (after a crash or an exec of the daemon)
    "adopt": ("process_pid", "time", "wid"),
}


class EventHub:
    """Delivers events to listeners and iterators, and output chunks to observers."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._queues: list[asyncio.Queue[tuple[str, dict[str, Any]]]] = []
        self.observers: list[OutputObserver] = []

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event, payload)`` for every event from now on."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener`` (no error if it was not registered)."""
        try:
            self._listeners.remove(listener)
        except ValueError:
            pass

    @property
    def idle(self) -> bool:
        """True when nobody listens: emitting can be skipped altogether."""
        return not self._listeners and not self._queues

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        """Deliver one event to every listener and iterator."""
        for listener in tuple(self._listeners):
            try:
                listener(event, payload)
            except Exception:
                logger.exception("event listener %r failed on %s", listener, event)
        for queue in self._queues:
            queue.put_nowait((event, payload))

    async def iterate(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Yield ``(event, payload)`` for every event emitted while iterating."""
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._queues.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.remove(queue)

    def output(self, pid: int, stream: str, data: bytes) -> None:
        """Deliver one output chunk to every observer."""
        for observer in tuple(self.observers):
            try:
                observer(pid, stream, data)
            except Exception:
                logger.exception("output observer %r failed", observer)

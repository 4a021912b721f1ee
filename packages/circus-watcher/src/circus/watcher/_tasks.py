"""Background tasks of a watcher: kept referenced until done, and logged if they fail."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["Background"]

logger = logging.getLogger("circus.watcher")


class Background:
    """Runs coroutines as tasks on the running loop for one watcher (named in the logs)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.tasks: set[asyncio.Task[Any]] = set()

    def __bool__(self) -> bool:
        """True while a task is running."""
        return bool(self.tasks)

    def run(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background; a failure is logged, never raised."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "watcher %s: background task failed", self._name, exc_info=task.exception()
            )

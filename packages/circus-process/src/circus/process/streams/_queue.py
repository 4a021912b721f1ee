"""QueueStream: chunks kept in memory, for library use and tests."""

from __future__ import annotations

import queue
from typing import Any

from ._base import Chunk

__all__ = ["QueueStream"]


class QueueStream(queue.Queue[Chunk]):
    """A ``queue.Queue`` that receives every chunk dict as is."""

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = options

    def __call__(self, data: Chunk) -> None:
        """Enqueue one chunk."""
        self.put(data)

    def open(self) -> None:
        """Nothing to open."""

    def close(self) -> None:
        """Nothing to close."""

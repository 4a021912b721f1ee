"""Compatibility module: ``from circus.consumer import CircusConsumer`` as with Circus 0.19.

Iterating yields the raw ``(topic, message)`` byte frames forever, as 0.19's consumer does.
New code should use :class:`circus.ctl.CircusConsumer`, which decodes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import zmq
from circus.ctl import CircusConsumer as _CircusConsumer
from circus.ctl import protocol

__all__ = ["CircusConsumer"]


class CircusConsumer(_CircusConsumer):
    """0.19-style subscriber: ``CircusConsumer(topics, context=None, endpoint=...)``."""

    def __init__(
        self,
        topics: Iterable[str | bytes],
        context: zmq.Context[Any] | None = None,
        endpoint: str = protocol.DEFAULT_PUBSUB_ENDPOINT,
        ssh_server: str | None = None,
        timeout: float = 1.0,
    ) -> None:
        super().__init__(topics, endpoint, context, ssh_server=ssh_server)

    def iter_messages(self) -> Iterator[tuple[bytes, bytes]]:
        """Yield raw ``(topic, message)`` frames until the consumer is closed."""
        while True:
            frames = self.recv_frames()
            if frames is None or len(frames) != 2:
                continue
            yield frames[0], frames[1]

    # Raw frames where the base class yields decoded messages: 0.19's contract, on purpose.
    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:  # type: ignore[override]
        return self.iter_messages()

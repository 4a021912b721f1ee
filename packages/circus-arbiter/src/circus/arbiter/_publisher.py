"""The pub/sub channel: a PUB socket publishing ``[topic, json]`` frames (spec/protocol.md §2)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import zmq

from ._endpoints import bind_endpoint, remove_ipc

__all__ = ["Publisher"]

log = logging.getLogger("circus.arbiter")


class Publisher:
    """A PUB socket; :meth:`publish` never blocks (ZeroMQ drops for slow subscribers)."""

    def __init__(self, context: zmq.Context, endpoint: str, owner: str | None = None) -> None:
        self.endpoint = endpoint
        self._socket: zmq.Socket | None = context.socket(zmq.PUB)
        self._socket.linger = 0
        try:
            bind_endpoint(self._socket, endpoint, owner)
        except Exception:
            self._socket.close()
            self._socket = None
            raise

    def publish(self, topic: str, payload: Mapping[str, Any]) -> None:
        """Send one event; silently nothing once closed."""
        if self._socket is None:
            return
        data = json.dumps(payload, default=str).encode()
        try:
            self._socket.send_multipart([topic.encode(), data], flags=zmq.NOBLOCK)
        except zmq.Again:  # pragma: no cover - PUB drops rather than blocks
            pass
        except zmq.ZMQError as exc:  # pragma: no cover
            log.warning("cannot publish %s: %s", topic, exc)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
            remove_ipc(self.endpoint)

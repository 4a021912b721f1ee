"""A tiny statsd UDP client (counters, gauges, timers) for the statsd-speaking plugins."""

from __future__ import annotations

import random
import socket

__all__ = ["StatsdClient"]


class StatsdClient:
    """Fire-and-forget statsd metrics to ``host:port`` under ``prefix``."""

    def __init__(
        self, host: str = "localhost", port: int = 8125, prefix: str = "", sample_rate: float = 1.0
    ) -> None:
        self.address = (host, int(port))
        self.prefix = prefix
        self.sample_rate = float(sample_rate)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def _send(self, bucket: str, value: str) -> None:
        if self.sample_rate < 1 and random.random() > self.sample_rate:
            return
        name = f"{self.prefix}.{bucket}" if self.prefix else bucket
        suffix = f"|@{self.sample_rate}" if self.sample_rate < 1 else ""
        try:
            self._sock.sendto(f"{name}:{value}{suffix}".encode(), self.address)
        except OSError:  # statsd is best effort: a missing collector must not hurt us
            pass

    def increment(self, bucket: str, delta: int = 1) -> None:
        """Add ``delta`` to a counter."""
        self._send(bucket, f"{delta}|c")

    def decrement(self, bucket: str, delta: int = 1) -> None:
        """Subtract ``delta`` from a counter."""
        self._send(bucket, f"{-delta}|c")

    def gauge(self, bucket: str, value: float) -> None:
        """Set a gauge."""
        self._send(bucket, f"{value}|g")

    def timed(self, bucket: str, milliseconds: float) -> None:
        """Record a timing."""
        self._send(bucket, f"{milliseconds}|ms")

    def stop(self) -> None:
        """Close the socket."""
        self._sock.close()

"""A client hammering an HTTP server, counting what a user would call a failed request.

Usage: ``python3 hammer.py PORT [SECONDS]`` prints the counts. A request fails when it is
refused, errors (reset, bad answer, anything but ``200``), or takes longer than ``slow``
seconds (0.5 by default) from when it was due to its last byte. One connection per request,
``rate`` requests a second (open loop). Stdlib only; importable (:class:`Hammer`).
"""

from __future__ import annotations

import collections
import queue
import socket
import sys
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Tally:
    """What the hammer saw. ``versions``: answers per version (the first word of a body)."""

    ok: int = 0
    refused: int = 0
    errors: int = 0
    slow: int = 0
    worst: float = 0.0
    versions: collections.Counter[str] = field(default_factory=collections.Counter)
    samples: list[str] = field(default_factory=list)  # the first failures, described

    @property
    def failed(self) -> int:
        """Refused + errors + slow."""
        return self.refused + self.errors + self.slow

    @property
    def total(self) -> int:
        """Every request sent."""
        return self.ok + self.failed

    def __str__(self) -> str:
        return (
            f"{self.total} requests: {self.failed} failed ({self.refused} refused, "
            f"{self.errors} errors, {self.slow} slow), worst {self.worst:.3f} s, "
            f"versions {dict(self.versions)}"
        )


class Hammer:
    """Requests ``GET /`` on ``host:port`` at ``rate`` per second from :meth:`start` to
    :meth:`stop`.

    Open loop, as real users are: request *i* is due at ``start + i / rate`` whether or not
    the earlier ones were answered, and its time is counted from when it was due, so a
    server that stalls for a second fails every request due in that second, not just the
    one a lone client was waiting on. ``clients`` threads send them.
    """

    def __init__(
        self, port: int, host: str = "127.0.0.1", slow: float = 0.5, rate: float = 200.0,
        clients: int = 32,
    ) -> None:  # fmt: skip
        self.address = (host, port)
        self.slow = slow
        self.rate = rate
        self.tally = Tally()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._due: queue.Queue[float | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._client, name=f"hammer-{i}", daemon=True)
            for i in range(clients)
        ]
        self._pacer = threading.Thread(target=self._pace, name="hammer-pacer", daemon=True)

    def start(self) -> Hammer:
        """Start the client threads."""
        for thread in self._threads:
            thread.start()
        self._pacer.start()
        return self

    def stop(self) -> Tally:
        """Stop sending; wait for the requests in flight and return the tally."""
        self._stop.set()
        self._pacer.join(30)
        for _ in self._threads:
            self._due.put(None)
        for thread in self._threads:
            thread.join(30)
        return self.tally

    def __enter__(self) -> Hammer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _pace(self) -> None:
        began = time.monotonic()
        sent = 0
        while not self._stop.is_set():
            due = began + sent / self.rate
            wait = due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            self._due.put(due)
            sent += 1

    def _client(self) -> None:
        while (due := self._due.get()) is not None:
            late = time.monotonic() - due
            if late > self.slow:  # every client was stuck: it has failed before it is sent
                kind, detail = "ok", ""
            else:
                kind, detail = self._one(self.slow - late)
            took = time.monotonic() - due
            with self._lock:
                tally = self.tally
                tally.worst = max(tally.worst, took)
                if kind == "ok" and took > self.slow:
                    kind, detail = "slow", f"{took:.3f} s"
                if kind == "ok":
                    tally.ok += 1
                    tally.versions[detail] += 1
                    continue
                setattr(tally, kind, getattr(tally, kind) + 1)
                if len(tally.samples) < 20:
                    tally.samples.append(f"{time.time():.3f} {kind}: {detail}")

    def _one(self, budget: float) -> tuple[str, str]:
        # The socket waits a little past the request's budget: by then it has failed (slow),
        # and a server that never answers does not hold the client for long.
        try:
            with socket.create_connection(self.address, timeout=budget + 1.0) as conn:
                conn.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
        except ConnectionRefusedError as exc:
            return "refused", str(exc)
        except TimeoutError:
            return "ok", ""  # counted as slow by its time
        except OSError as exc:
            return "errors", f"{type(exc).__name__}: {exc}"
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.0 200") and not head.startswith(b"HTTP/1.1 200"):
            return "errors", f"answer {head[:40]!r}"
        return "ok", (body.split() or [b"?"])[0].decode(errors="replace")


def main() -> None:
    """``hammer.py PORT [SECONDS]``: hammer for SECONDS (10) and print the tally."""
    port = int(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    with Hammer(port) as hammer:
        time.sleep(seconds)
    print(hammer.tally)


if __name__ == "__main__":
    main()

"""HttpObserver: check a URL periodically, optionally restart a watcher when it fails.

Options: ``check_url`` (http://localhost/), ``loop_rate`` (60 s), ``timeout`` (10 s),
``restart_on_error`` (a watcher name to restart when the check fails), plus the statsd
options (timings go to ``http_stats.request`` and failures to ``http_stats.error``).
Upstream's version passes ``io_loop=`` to tornado's HTTP client and crashes on tornado >= 5;
this one uses the current tornado API.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from .statsd import BaseObserver

__all__ = ["HttpObserver"]

log = logging.getLogger("circus.plugins")


class HttpObserver(BaseObserver):
    """Upstream-compatible HTTP health check."""

    name = "http_observer"

    def __init__(
        self,
        endpoint: str,
        pubsub_endpoint: str,
        check_delay: float = 1.0,
        ssh_server: str | None = None,
        **config: Any,
    ) -> None:
        super().__init__(endpoint, pubsub_endpoint, check_delay, ssh_server, **config)
        self.check_url = config.get("check_url", "http://localhost/")
        self.timeout = float(config.get("timeout", 10))
        self.restart_on_error = config.get("restart_on_error")
        self.failures = 0
        self.checks = 0
        self._busy = False

    async def look_after(self) -> None:  # type: ignore[override]
        if self._busy:
            return
        self._busy = True
        client = AsyncHTTPClient()
        start = time.monotonic()
        try:
            await client.fetch(
                HTTPRequest(
                    self.check_url, request_timeout=self.timeout, connect_timeout=self.timeout
                )
            )
        except Exception as exc:
            self.failures += 1
            self.statsd.increment("http_stats.error")
            log.info("http_observer: %s failed: %s", self.check_url, exc)
            if self.restart_on_error:
                self.cast("restart", name=self.restart_on_error)
        else:
            self.statsd.timed("http_stats.request", (time.monotonic() - start) * 1000)
        finally:
            self.checks += 1
            self._busy = False

    def handle_stop(self) -> None:
        AsyncHTTPClient().close()
        super().handle_stop()

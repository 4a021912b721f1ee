"""Flapping: stop a watcher whose processes die too often, retry later, give up at last.

Options (strings, as in the INI file): ``attempts`` (2), ``window`` (1 s), ``retry_in`` (7 s),
``max_retry`` (5; -1 = forever); per-watcher overrides are read from the watcher's own
``flapping.<option>`` options. When ``attempts`` unexpected deaths happen within ``window``
seconds the watcher is stopped, started again ``retry_in`` seconds later, and after
``max_retry`` such rounds left stopped.

The watcher layer has crash-loop protection built in (restart policy and back-off); this plugin
keeps upstream's stop/retry behaviour for configs that ask for it. Fixed from upstream: deaths
caused by circus itself (a ``kill`` event precedes them: stop, decr, reload) are not counted,
so stopping a watcher by hand is never mistaken for flapping (upstream #809, #965); and our
control channel queues commands per watcher, so the plugin's ``stop`` is never lost.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ._base import CircusPlugin

__all__ = ["Flapping"]

log = logging.getLogger("circus.plugins")


class Flapping(CircusPlugin):
    """Upstream-compatible flapping detection."""

    name = "flapping"

    def __init__(
        self,
        endpoint: str,
        pubsub_endpoint: str,
        check_delay: float = 1.0,
        ssh_server: str | None = None,
        **config: Any,
    ) -> None:
        super().__init__(endpoint, pubsub_endpoint, check_delay, ssh_server, **config)
        self.attempts = int(config.get("attempts", 2))
        self.window = float(config.get("window", 1))
        self.retry_in = float(config.get("retry_in", 7))
        self.max_retry = int(config.get("max_retry", 5))
        self.timelines: dict[str, list[float]] = {}
        self.tries: dict[str, int] = {}
        self.killed: set[int] = set()
        self.configs: dict[str, dict[str, Any]] = {}
        self.timers: dict[str, Any] = {}

    def handle_stop(self) -> None:
        if self.loop is not None:
            for handle in self.timers.values():
                self.loop.remove_timeout(handle)
        self.timers.clear()

    def handle_recv(self, data: list[bytes]) -> None:
        watcher, event, msg = self.split_data(data)
        payload = self.load_message(msg)
        pid = payload.get("process_pid")
        if event == "kill" and isinstance(pid, int):
            self.killed.add(pid)
        elif event == "reap":
            if pid in self.killed:
                self.killed.discard(pid)
                return
            self.check(watcher, float(payload.get("time") or time.time()))
        elif event == "updated":
            self.configs.pop(watcher, None)
        elif event == "remove":
            self.reset(watcher)

    def option(self, watcher: str, key: str) -> Any:
        """A watcher's ``flapping.<key>`` override, or the plugin's value."""
        conf = self.configs.get(watcher)
        if conf is None:
            conf = {}
            try:
                answer = self.call("options", name=watcher)
                for k, v in (answer.get("options") or {}).items():
                    if k.startswith("flapping."):
                        conf[k[len("flapping.") :]] = v
            except Exception:
                log.debug("flapping: cannot read options of %s", watcher, exc_info=True)
            self.configs[watcher] = conf
        default = getattr(self, key)
        value = conf.get(key, default)
        try:
            return type(default)(value)
        except (TypeError, ValueError):
            return default

    def reset(self, watcher: str) -> None:
        """Forget a watcher's history."""
        self.timelines.pop(watcher, None)
        self.tries.pop(watcher, None)
        handle = self.timers.pop(watcher, None)
        if handle is not None and self.loop is not None:
            self.loop.remove_timeout(handle)

    def check(self, watcher: str, when: float) -> None:
        """Record one unexpected death and act when the watcher flaps."""
        if watcher in self.timers:
            return
        timeline = self.timelines.setdefault(watcher, [])
        timeline.append(when)
        attempts = self.option(watcher, "attempts")
        if len(timeline) < attempts:
            return
        timeline[:] = timeline[-attempts:]
        if timeline[-1] - timeline[0] > self.option(watcher, "window"):
            return
        timeline.clear()
        tries = self.tries.get(watcher, 0)
        max_retry = self.option(watcher, "max_retry")
        log.info("%s is flapping (round %d)", watcher, tries + 1)
        self.call("stop", name=watcher, waiting=True)
        if max_retry != -1 and tries >= max_retry:
            log.info("%s: giving up after %d retries", watcher, tries)
            self.tries.pop(watcher, None)
            return
        self.tries[watcher] = tries + 1
        assert self.loop is not None
        self.timers[watcher] = self.loop.call_later(
            self.option(watcher, "retry_in"), self._retry, watcher
        )

    def _retry(self, watcher: str) -> None:
        self.timers.pop(watcher, None)
        log.info("%s: retrying after flapping", watcher)
        self.cast("start", name=watcher)

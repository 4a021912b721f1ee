"""Flapping: stop a watcher whose processes die too often, retry later, give up at last.

Options (strings, as in the INI file): ``attempts`` (2), ``window`` (1 s), ``retry_in`` (7 s),
``max_retry`` (5; -1 = forever), ``active`` (true). A watcher's own ``flapping.<option>``
values win over the plugin's, as upstream.

The watcher layer has flapping detection built in (same option names, ``flapping.*``), so this
plugin maps onto it instead of re-implementing it over casts: at start, and for every watcher
added later, it turns ``flapping.active`` on and fills in the plugin's values for the options
the watcher left at their defaults (with the ``set`` command). The detection itself then runs
inside the watcher, on the exit events: nothing can be lost between a ``reap`` and a ``stop``
(upstream's cast raced the arbiter lock), and exits caused by circus itself (stop, decr,
reload, kill) are never counted, so stopping a watcher by hand is never mistaken for flapping
(upstream #809, #965).
"""

from __future__ import annotations

import logging
from typing import Any

from ._base import CircusPlugin

__all__ = ["Flapping"]

log = logging.getLogger("circus.plugins")

# The watcher layer's defaults for its built-in detection (circus.watcher options).
_WATCHER_DEFAULTS = {"attempts": 2, "window": 1.0, "retry_in": 7.0, "max_retry": 5}


class Flapping(CircusPlugin):
    """Upstream-compatible flapping plugin, mapped onto the watchers' built-in detection."""

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
        self.settings = {
            "attempts": int(config.get("attempts", 2)),
            "window": float(config.get("window", 1)),
            "retry_in": float(config.get("retry_in", 7)),
            "max_retry": int(config.get("max_retry", 5)),
        }
        self.configured: set[str] = set()

    def initialize(self) -> None:
        super().initialize()
        for watcher in self.call("list").get("watchers", []):
            self.configure(watcher)

    def handle_recv(self, data: list[bytes]) -> None:
        watcher, event, _ = self.split_data(data)
        if event == "add":
            self.configure(watcher)
        elif event == "remove":
            self.configured.discard(watcher)

    def configure(self, watcher: str) -> None:
        """Turn the watcher's flapping detection on with the plugin's values."""
        answer = self.call("options", name=watcher)
        current = answer.get("options") or {}
        options: dict[str, Any] = {"flapping.active": True}
        for key, value in self.settings.items():
            mine = current.get(f"flapping.{key}", _WATCHER_DEFAULTS[key])
            if mine == _WATCHER_DEFAULTS[key] and value != mine:
                options[f"flapping.{key}"] = value
        result = self.call("set", name=watcher, options=options, waiting=True)
        if result.get("status") != "ok":
            log.warning("flapping: cannot configure %s: %s", watcher, result.get("reason"))
            return
        self.configured.add(watcher)
        log.info("flapping detection on for %s", watcher)

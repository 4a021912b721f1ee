"""Plugins and the dashboard: processes the daemon runs as its own watchers.

Each ``[plugin:NAME]`` (or ``Arbiter(plugins=[...])`` entry) is a singleton watcher running
``circus-plugin`` against the daemon's endpoints (``_plugin_watchers``); ``httpd = true``
adds the ``circushttpd`` socket and a singleton watcher running the dashboard on it
(``_httpd``). Both connect back with circusd's own key pair when CURVE is on. When a reload
moves an endpoint or changes circusd's keys, the dashboard is replaced by one told the new
ones and the plugins named by the reload are re-created.

A dashboard that would refuse to start (an unreadable or short token, or none off loopback)
is refused once, by :func:`check_dashboard` when the arbiter is made, rather than respawned
over and over.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._errors import ArbiterError

if TYPE_CHECKING:
    from ._channels import Channels
    from ._settings import ArbiterSettings
    from ._watcher_set import WatcherSet

__all__ = ["PluginSet", "check_dashboard", "named_plugin"]

log = logging.getLogger("circus.arbiter")


class PluginSet:
    """The plugin and dashboard watchers of one daemon.

    Args:
        plugins: ``[{"name": ..., "use": "dotted.Class", **options}]``.
        settings: returns the daemon's current settings (endpoints come from ``channels``).
        channels: the daemon's channels (endpoints, circusd's key files).
        watchers: where the plugin and dashboard watchers live.
    """

    def __init__(
        self,
        plugins: Iterable[Mapping[str, Any]],
        settings: Callable[[], ArbiterSettings],
        channels: Channels,
        watchers: WatcherSet,
    ) -> None:
        self.specs: list[dict[str, Any]] = [named_plugin(p) for p in plugins]
        self._settings = settings
        self._channels = channels
        self._watchers = watchers
        self._httpd_args: str | None = None  # the running dashboard's command line

    def initial_watchers(self) -> list[dict[str, Any]]:
        """At start, once the channels are open: the dashboard's watcher spec (its socket
        added to the watcher set's) and those of the active plugins."""
        from ._plugin_watchers import is_active

        specs = []
        if self._settings().httpd:
            dashboard = self._add_httpd()
            if dashboard is not None:
                specs.append(dashboard)
        specs += [self._plugin_watcher(p) for p in self.specs if is_active(p)]
        return specs

    def _add_httpd(self) -> dict[str, Any] | None:
        """``httpd = true``: bind the dashboard's socket, return its watcher (upstream's way).

        With CURVE on, the dashboard connects with circusd's own (always authorized) keys.
        """
        from ._httpd import HTTPD_NAME, httpd_available, httpd_socket

        reason = httpd_available()
        if reason is not None:
            log.error("httpd = true, but the dashboard cannot run: %s", reason)
            return None
        sockets = self._watchers.sockets
        if HTTPD_NAME in sockets:
            return None  # already added (a reloadconfig keeps the running dashboard)
        settings = self._settings()
        sockets.add(httpd_socket(settings.httpd_host, settings.httpd_port))
        spec = self._httpd_watcher()
        self._httpd_args = spec["args"]
        return spec

    def _httpd_watcher(self) -> dict[str, Any]:
        from ._httpd import httpd_watcher

        settings = self._settings()
        return httpd_watcher(
            self._channels.endpoint,
            self._channels.pubsub_endpoint,
            settings.httpd_token_file,
            self._channels.own_key_files(),
            close_outputs=settings.httpd_close_outputs,
        )

    async def renew_httpd(self, rekeyed: bool) -> None:
        """After a reload moved an endpoint or changed circusd's keys (``rekeyed``: new key
        material, maybe under the same file names): the dashboard started with the old ones
        is replaced by one given the new ones (its socket is kept)."""
        from ._httpd import HTTPD_NAME

        current = self._watchers.table.find(HTTPD_NAME)
        if current is None or self._httpd_args is None:
            return
        spec = self._httpd_watcher()
        if spec["args"] == self._httpd_args and not rekeyed:
            return
        await self._watchers.remove(current)
        self._httpd_args = spec["args"]
        watcher = self._watchers.create(spec.pop("name"), spec.pop("cmd"), **spec)
        await self._watchers.start(watcher)

    def _plugin_watcher(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """The watcher spec running plugin ``spec`` against the current endpoints
        (``debug``: the plugin logs at debug level, as upstream)."""
        from ._plugin_watchers import plugin_watcher

        settings = self._settings()
        return plugin_watcher(
            spec,
            self._channels.endpoint,
            self._channels.pubsub_endpoint,
            settings.check_delay,
            "debug" if settings.debug else settings.loglevel,
            settings.logoutput,
            self._channels.own_key_files(),
        )

    async def apply(
        self, specs: Mapping[str, Mapping[str, Any]], removed: Iterable[str] = ()
    ) -> None:
        """Re-create (and start) the watchers of the plugins ``specs`` (``{watcher name:
        spec}``) against the current endpoints; remove the watchers named in ``removed``."""
        from ._plugin_watchers import is_active

        dropped = {name.lower() for name in (*removed, *specs)}
        self.specs = [p for p in self.specs if p["name"].lower() not in dropped]
        for name in (*removed, *specs):
            current = self._watchers.table.find(name)
            if current is not None:
                await self._watchers.remove(current)
        ordered = sorted(
            specs.values(), key=lambda s: (-int(s.get("priority", 1)), str(s.get("name")))
        )
        for spec in ordered:
            self.specs.append(named_plugin(spec))
            if not is_active(spec):
                continue
            options = self._plugin_watcher(spec)
            watcher = self._watchers.create(options.pop("name"), options.pop("cmd"), **options)
            await self._watchers.start(watcher)


def check_dashboard(settings: ArbiterSettings) -> None:
    """Refuse, once, a dashboard that would exit at every start and be respawned forever
    (an unreadable or short token, or none off loopback; see ``_httpd.httpd_refusal``).

    Raises:
        ArbiterError: ``<option>: <why>``, naming the option to change.
    """
    if not settings.httpd:
        return
    from ._httpd import httpd_refusal

    refusal = httpd_refusal(settings.httpd_host, settings.httpd_token_file, os.environ)
    if refusal is not None:
        option, message = refusal
        raise ArbiterError(f"{option}: {message}")


def named_plugin(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with its watcher's name: as upstream, ``name``, or ``use`` without one."""
    return {**spec, "name": spec.get("name") or spec.get("use")}

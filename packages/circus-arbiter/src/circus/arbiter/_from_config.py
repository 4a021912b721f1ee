"""Turning a loaded :class:`~circus.arbiter.config.CircusConfig` into what the daemon runs:
its :class:`~._settings.ArbiterSettings` and the watcher, socket and plugin specs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ._curve import config_options
from ._settings import DEFAULT_STATS_ENDPOINT, ArbiterSettings

__all__ = [
    "parts_from_config",
    "plugin_spec",
    "plugin_watcher_name",
    "reloaded",
    "settings_from_config",
    "stats_enabled",
    "DEFAULT_STATS_ENDPOINT",
]


def stats_enabled(daemon: Any) -> bool:
    """Stats run with ``statsd = true`` (the loader already turns an explicit
    ``stats_endpoint`` into ``statsd = true``, as upstream)."""
    return bool(daemon.statsd) and bool(daemon.stats_endpoint)


def plugin_watcher_name(name: str) -> str:
    """The watcher running ``[plugin:NAME]``: named after the whole section, as upstream."""
    return f"plugin:{name}"


def plugin_spec(plugin: Any) -> dict[str, Any]:
    """``{"name", "use", "priority", "active", **options}`` for ``Arbiter(plugins=...)``;
    ``name`` is the plugin's watcher name (``plugin:NAME``)."""
    spec = dict(plugin.options)
    spec.update(
        name=plugin_watcher_name(plugin.name),
        use=plugin.use,
        priority=plugin.priority,
        active=plugin.active,
    )
    return spec


def settings_from_config(config: Any) -> ArbiterSettings:
    """The :class:`~._settings.ArbiterSettings` of a loaded config's ``[circus]``.

    Logging set-up (``loggerconfig``) is circusd's own concern and is not carried over.
    """
    daemon = config.circus
    return ArbiterSettings(
        endpoint=daemon.endpoint,
        pubsub_endpoint=daemon.pubsub_endpoint,
        stats_endpoint=daemon.stats_endpoint if stats_enabled(daemon) else None,
        multicast_endpoint=daemon.multicast_endpoint or "",
        endpoint_owner=daemon.endpoint_owner,
        unauthenticated_access=daemon.unauthenticated_access,
        max_connections=daemon.max_connections,
        spawn_thread=daemon.spawn_thread,
        curve=config_options(config),
        check_delay=daemon.check_delay,
        warmup_delay=daemon.warmup_delay,
        config_file=config.path,
        httpd=daemon.httpd,
        httpd_host=daemon.httpd_host,
        httpd_port=daemon.httpd_port,
        httpd_token_file=daemon.extra.get("httpd_token_file") or None,
        httpd_close_outputs=daemon.httpd_close_outputs,
        loglevel=daemon.loglevel,
        logoutput=daemon.logoutput,
        debug=daemon.debug,
        debug_gc=daemon.debug_gc,
        umask=daemon.umask,
        pidfile=daemon.pidfile,
        on_crash=daemon.on_crash,
        runtime_dir=daemon.runtime_dir,
        fqdn_prefix=daemon.fqdn_prefix,
        statsd_close_outputs=daemon.statsd_close_outputs,
    )


def parts_from_config(config: Any) -> dict[str, list[Any]]:
    """``{"watchers", "sockets", "plugins"}``: what a loaded config runs, as the arguments
    of the watcher, socket and plugin sets (inactive plugins left out)."""
    return {
        "watchers": [_watcher_spec(w) for w in config.watchers],
        "sockets": [s.kwargs for s in config.sockets],
        "plugins": [plugin_spec(p) for p in config.plugins if p.active],
    }


def _watcher_spec(watcher: Any) -> dict[str, Any]:
    """A watcher's keyword arguments, with its ``depends_on`` (for the watcher set)."""
    spec: dict[str, Any] = watcher.kwargs
    if watcher.depends_on:
        spec["depends_on"] = watcher.depends_on
    return spec


def reloaded(current: ArbiterSettings, daemon: Any, curve: Any) -> ArbiterSettings:
    """The settings after a ``reloadconfig`` whose ``[circus]`` is ``daemon`` (a
    ``DaemonConfig``) and CURVE options ``curve``: what a running daemon applies in place
    (endpoints, owner, CURVE, access, ``max_connections``, ``spawn_thread``,
    ``check_delay``, ``warmup_delay``); the rest is kept.
    An empty endpoint keeps the running one."""
    return replace(
        current,
        endpoint=daemon.endpoint or current.endpoint,
        pubsub_endpoint=daemon.pubsub_endpoint or current.pubsub_endpoint,
        stats_endpoint=daemon.stats_endpoint if stats_enabled(daemon) else None,
        multicast_endpoint=daemon.multicast_endpoint or "",
        endpoint_owner=daemon.endpoint_owner,
        unauthenticated_access=daemon.unauthenticated_access,
        max_connections=daemon.max_connections,
        spawn_thread=daemon.spawn_thread,
        curve=curve,
        check_delay=daemon.check_delay,
        warmup_delay=daemon.warmup_delay,
    )

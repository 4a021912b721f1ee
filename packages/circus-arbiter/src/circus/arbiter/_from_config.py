"""Turning a loaded :class:`~circus.arbiter.config.CircusConfig` into Arbiter arguments."""

from __future__ import annotations

from typing import Any

from ._curve import config_options

__all__ = [
    "arbiter_kwargs",
    "plugin_spec",
    "plugin_watcher_name",
    "stats_enabled",
    "DEFAULT_STATS_ENDPOINT",
]

DEFAULT_STATS_ENDPOINT = "tcp://127.0.0.1:5557"


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


def arbiter_kwargs(config: Any) -> dict[str, Any]:
    """Keyword arguments for ``Arbiter`` from a loaded config."""
    daemon = config.circus
    return {
        "watchers": [w.kwargs for w in config.watchers],
        "sockets": [s.kwargs for s in config.sockets],
        "plugins": [plugin_spec(p) for p in config.plugins if p.active],
        "endpoint": daemon.endpoint,
        "pubsub_endpoint": daemon.pubsub_endpoint,
        "stats_endpoint": daemon.stats_endpoint if stats_enabled(daemon) else None,
        "statsd": stats_enabled(daemon),
        "multicast_endpoint": daemon.multicast_endpoint,
        "endpoint_owner": daemon.endpoint_owner,
        "unauthenticated_access": daemon.unauthenticated_access,
        "check_delay": daemon.check_delay,
        "warmup_delay": daemon.warmup_delay,
        "umask": daemon.umask,
        "pidfile": daemon.pidfile,
        "loglevel": daemon.loglevel,
        "logoutput": daemon.logoutput,
        "loggerconfig": daemon.loggerconfig,
        "debug": daemon.debug,
        "debug_gc": daemon.debug_gc,
        "httpd": daemon.httpd,
        "httpd_host": daemon.httpd_host,
        "httpd_port": daemon.httpd_port,
        "httpd_token_file": daemon.extra.get("httpd_token_file") or None,
        "fqdn_prefix": daemon.fqdn_prefix,
        "config_file": config.path,
        "curve": config_options(config),
    }

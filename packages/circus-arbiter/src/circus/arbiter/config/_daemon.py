"""``[circus]`` → :class:`DaemonConfig` (spec/config.md §3)."""

from __future__ import annotations

import re
from typing import Any

from ._convert import EXPECTED_BOOL, EXPECTED_OCTAL, capped, to_bool, to_float, to_int, to_octal
from ._model import SPAWN_THREAD_AUTO, DaemonConfig
from ._section import SectionView

__all__ = ["parse_daemon", "DAEMON_OPTIONS"]

_ZMQ = re.compile(r"(tcp|ipc|inproc|pgm|epgm|ws|wss|vmci|udp)://\S+")
_UDP = re.compile(r"udp://(?P<host>[^\s:/]+):(?P<port>\d+)")
_LEVELS = ("debug", "info", "warning", "error", "critical")
_ENDPOINT = "expected a ZeroMQ endpoint like tcp://127.0.0.1:5555 or ipc:///path/to/sock"


def _endpoint(text: str) -> str:
    value = text.strip()
    if _ZMQ.fullmatch(value) is None:
        raise ValueError(text)
    return value


def _multicast(text: str) -> str | None:
    value = text.strip()
    if not value:
        return None  # an empty value disables discovery, as upstream
    match = _UDP.fullmatch(value)
    if match is None or not 0 < int(match.group("port")) <= 65535:
        raise ValueError(text)
    return value


def _level(text: str) -> str:
    value = text.strip().lower()
    if value not in _LEVELS:
        raise ValueError(text)
    return value


def _port(text: str) -> int:
    value = to_int(text, 0)
    if value > 65535:
        raise ValueError(text)
    return value


def _optional(text: str) -> str | None:
    return text.strip() or None


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _on_crash(text: str) -> str:
    value = text.strip().lower()
    if value not in ("adopt", "replace"):
        raise ValueError(text)
    return value


def _connections(text: str) -> int:
    return to_int(text, 1)


def _spawn_thread(text: str) -> int | None:
    value = text.strip().lower()
    if value == "auto":
        return SPAWN_THREAD_AUTO
    if value == "off":
        return None
    return to_int(value, 0)


def _access(text: str) -> str:
    value = text.strip().lower()
    if value not in ("read", "operate", "full"):
        raise ValueError(text)
    return value


DAEMON_OPTIONS: dict[str, tuple[Any, str]] = {
    "endpoint": (_endpoint, _ENDPOINT),
    "pubsub_endpoint": (_endpoint, _ENDPOINT),
    "stats_endpoint": (_endpoint, _ENDPOINT),
    "multicast_endpoint": (_multicast, "expected udp://GROUP:PORT, or empty to disable"),
    "endpoint_owner": (_optional, ""),
    "unauthenticated_access": (_access, "expected read, operate or full"),
    "max_connections": (_connections, "expected a whole number of connections, at least 1"),
    "spawn_thread": (
        _spawn_thread,
        "expected auto, off or a whole number of open descriptors (0 or more)",
    ),
    "statsd": (to_bool, EXPECTED_BOOL),
    "statsd_close_outputs": (to_bool, EXPECTED_BOOL),
    "check_delay": capped("check_delay", to_float),
    "warmup_delay": capped("warmup_delay", to_float),
    "umask": (to_octal, EXPECTED_OCTAL),
    "pidfile": (_optional, ""),
    "on_crash": (_on_crash, "expected adopt or replace"),
    "runtime_dir": (_optional, ""),
    "loglevel": (_level, "expected one of " + ", ".join(_LEVELS)),
    "logoutput": (str.strip, ""),
    "loggerconfig": (_optional, ""),
    "debug": (to_bool, EXPECTED_BOOL),
    "debug_gc": (to_bool, EXPECTED_BOOL),
    "httpd": (to_bool, EXPECTED_BOOL),
    "httpd_host": (str.strip, ""),
    "httpd_port": (_port, "expected a port number between 0 and 65535"),
    "httpd_close_outputs": (to_bool, EXPECTED_BOOL),
    "fqdn_prefix": (_optional, ""),
    "stream_backend": (_optional, ""),
    "include": (_words, ""),
    "include_dir": (_words, ""),
}


def parse_daemon(view: SectionView | None) -> DaemonConfig:
    """Validate ``[circus]`` (``None``: no such section) into a :class:`DaemonConfig`.

    ``stats_endpoint`` set while ``statsd`` is not set implies ``statsd = true`` (upstream
    does the same even against an explicit ``statsd = false``; we obey the explicit value).

    Raises:
        ConfigError: a badly typed value.
    """
    if view is None:
        return DaemonConfig()
    values: dict[str, Any] = {}
    extra: dict[str, str] = {}
    defaults = DaemonConfig()
    for key in view.names():
        if key in DAEMON_OPTIONS:
            convert, expected = DAEMON_OPTIONS[key]
            values[key] = view.get(key, convert, getattr(defaults, key), expected)
        else:
            view.check_unknown(key, DAEMON_OPTIONS, "daemon option")
            extra[key] = view.options[key].value
    if "stats_endpoint" in values and "statsd" not in values:
        view.warn(
            "stats_endpoint",
            "setting stats_endpoint turns statsd on (as Circus 0.19 does); "
            "add 'statsd = true' to say so",
        )
        values["statsd"] = True
    if values.get("httpd"):
        _check_httpd(view, values.get("httpd_host", defaults.httpd_host), extra)
    return DaemonConfig(**values, extra=extra)


def _check_httpd(view: SectionView, host: str, extra: dict[str, str]) -> None:
    """Refuse, once and here, a dashboard that would exit at every start (and be respawned
    forever): an unusable token, or none off loopback."""
    import os

    from .._httpd import httpd_refusal

    token_file = extra.get("httpd_token_file", "").strip() or None
    refusal = httpd_refusal(host, token_file, os.environ)
    if refusal is not None:
        option, message = refusal
        raise view.error(option, message)

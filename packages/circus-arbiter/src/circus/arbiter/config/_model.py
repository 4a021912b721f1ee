"""The loaded configuration: immutable, typed values the daemon turns into objects."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["DaemonConfig", "WatcherConfig", "SocketConfig", "PluginConfig", "CircusConfig"]

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
DEFAULT_PUBSUB_ENDPOINT = "tcp://127.0.0.1:5556"
DEFAULT_STATS_ENDPOINT = "tcp://127.0.0.1:5557"
#: ``spawn_thread = auto``: circus.process's ``DEFAULT_SPAWN_THREAD_FROM`` (not imported:
#: loading a config stays light; a test keeps the two equal)
SPAWN_THREAD_AUTO = 4096


@dataclass(frozen=True)
class DaemonConfig:
    """The ``[circus]`` section, typed, with our defaults (spec/config.md §3).

    ``multicast_endpoint`` is ``None`` (discovery off) unless the file sets it: upstream
    defaults to announcing the control endpoint on a multicast group bound to 0.0.0.0.
    ``extra`` holds keys we do not know, as written (upstream ignores them).
    ``spawn_thread``: spawns fork from circus.process's small-table spawn thread once that
    many descriptors are open (``auto``: its default, 4,096); ``None`` (``off``): never.
    """

    endpoint: str = DEFAULT_ENDPOINT
    pubsub_endpoint: str = DEFAULT_PUBSUB_ENDPOINT
    stats_endpoint: str = DEFAULT_STATS_ENDPOINT
    multicast_endpoint: str | None = None
    endpoint_owner: str | None = None
    unauthenticated_access: str = "read"
    max_connections: int | None = None
    spawn_thread: int | None = SPAWN_THREAD_AUTO
    statsd: bool = False
    statsd_close_outputs: bool = False
    check_delay: float = 5.0
    warmup_delay: float = 0.0
    umask: int | None = None
    pidfile: str | None = None
    on_crash: str = "adopt"
    runtime_dir: str | None = None
    loglevel: str = "info"
    logoutput: str = "-"
    loggerconfig: str | None = None
    debug: bool = False
    debug_gc: bool = False
    httpd: bool = False
    httpd_host: str = "localhost"
    httpd_port: int = 8080
    httpd_close_outputs: bool = False
    fqdn_prefix: str | None = None
    stream_backend: str | None = None
    include: tuple[str, ...] = ()
    include_dir: tuple[str, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Every field as a plain dict (``extra`` included as a nested dict)."""
        return asdict(self)


@dataclass(frozen=True)
class WatcherConfig:
    """One ``[watcher:NAME]`` section.

    ``kwargs`` is a fresh dict on every access, ready for ``circus.watcher.Watcher(**kwargs)``
    (it includes ``name``); mutating it does not change the config. ``sockets`` names
    (lowercase) the sockets the watcher refers to through ``$(circus.sockets.X)`` in
    ``cmd``/``args`` or ``stdin_socket``. ``depends_on`` names (as written) the watchers it
    requires; it is not a watcher option (``kwargs`` leaves it out). Two configs compare equal
    when name and options are equal (where they were read does not count, nor does
    ``depends_on``: a change of it alone is applied by ``reloadconfig`` without re-creating
    the watcher).
    """

    name: str
    options: Mapping[str, Any]
    sockets: frozenset[str] = frozenset()
    filename: str = field(default="", compare=False)
    lineno: int = field(default=0, compare=False)
    depends_on: tuple[str, ...] = field(default=(), compare=False)

    @property
    def kwargs(self) -> dict[str, Any]:
        """A deep copy of the options: keyword arguments for ``Watcher``."""
        return copy.deepcopy(dict(self.options))

    @property
    def priority(self) -> int:
        """Start order: higher first."""
        return int(self.options.get("priority", 0))

    @property
    def autostart(self) -> bool:
        """Whether the daemon starts it at boot."""
        return bool(self.options.get("autostart", True))


@dataclass(frozen=True)
class SocketConfig:
    """One ``[socket:NAME]`` section; ``kwargs`` (a fresh dict, with ``name``) is for
    ``circus.sockets.CircusSocket(**kwargs)``. ``name`` is lowercase, as upstream."""

    name: str
    options: Mapping[str, Any]
    filename: str = field(default="", compare=False)
    lineno: int = field(default=0, compare=False)

    @property
    def kwargs(self) -> dict[str, Any]:
        """A copy of the options: keyword arguments for ``CircusSocket``."""
        return dict(self.options)


@dataclass(frozen=True)
class PluginConfig:
    """One ``[plugin:NAME]`` section.

    ``use`` is the plugin class's dotted path (not imported here); ``options`` holds every
    other key as the string written (upstream hands them to the plugin as strings, and its
    watcher options such as ``numprocesses`` or ``stdout_stream.*`` to the plugin's watcher);
    ``priority`` and ``active`` are those options, typed and validated.
    """

    name: str
    use: str
    options: Mapping[str, str]
    priority: int = 1
    active: bool = True
    filename: str = field(default="", compare=False)
    lineno: int = field(default=0, compare=False)


@dataclass(frozen=True)
class CircusConfig:
    """A whole loaded config: ``[circus]``, watchers (sorted by name), sockets, plugins.

    ``sources`` lists the files read, main file first then includes in reading order.
    ``supervisor`` is the :class:`circus.arbiter.supervisor.SupervisorConfig` when the file
    was a supervisord.conf (``None`` for a Circus INI file); it does not count in equality.
    """

    path: str
    circus: DaemonConfig
    watchers: tuple[WatcherConfig, ...] = ()
    sockets: tuple[SocketConfig, ...] = ()
    plugins: tuple[PluginConfig, ...] = ()
    sources: tuple[str, ...] = ()
    supervisor: Any = field(default=None, compare=False, repr=False)

    def watcher(self, name: str) -> WatcherConfig:
        """The watcher called ``name`` (case-insensitive). Raises ``KeyError``."""
        for watcher in self.watchers:
            if watcher.name.lower() == name.lower():
                return watcher
        raise KeyError(name)

    def socket(self, name: str) -> SocketConfig:
        """The socket called ``name`` (case-insensitive). Raises ``KeyError``."""
        for sock in self.sockets:
            if sock.name == name.lower():
                return sock
        raise KeyError(name)

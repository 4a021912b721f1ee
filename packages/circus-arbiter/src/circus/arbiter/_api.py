"""The Arbiter's public surface (upstream's names, and what tests and READMEs use).

Each member is a one-line delegation to the component that owns it: the watcher set
(watchers, their locks, sockets and output), the channels (endpoints, publisher, controller)
or the settings. :class:`~._arbiter.Arbiter` inherits it; nothing here holds state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from ._settings import DEFAULT_STATS_ENDPOINT, ArbiterSettings

if TYPE_CHECKING:
    import asyncio

    import zmq.asyncio

    from ._channels import Channels
    from ._plugin_set import PluginSet
    from ._watcher_set import WatcherSet

__all__ = ["ArbiterAPI"]

_SETTING_NAMES = frozenset(f.name for f in fields(ArbiterSettings))


class ArbiterAPI:
    """Views and per-watcher operations of an arbiter, delegated to its parts."""

    settings: ArbiterSettings
    channels: Channels
    watcher_set: WatcherSet
    plugin_set: PluginSet
    _aio_loop: asyncio.AbstractEventLoop | None
    _ioloop: Any

    @property
    def loop(self) -> Any:
        """Tornado's ``IOLoop`` wrapping the asyncio loop the arbiter runs on (``None``
        before :meth:`start_async` and once that loop is closed, unless asked for earlier).

        Made on first use, so a daemon nobody asks never imports tornado. From any thread it
        is the same object (the one ``IOLoop.current()`` gives on the arbiter's loop), so
        ``arbiter.loop.add_callback(fn)`` runs ``fn`` on the arbiter's loop.

        Raises:
            ArbiterError: asked from another thread while the arbiter's loop does not answer
                within 10 seconds (blocked, or stopping).
        """
        if self._ioloop is None and self._aio_loop is not None:
            from ._ioloop import ioloop_for

            self._ioloop = ioloop_for(self._aio_loop)
        return self._ioloop

    @property
    def watchers(self) -> list[Any]:
        """The watchers in start order (priority descending, then name)."""
        return self.watcher_set.ordered()

    @property
    def table(self) -> Any:
        """The watcher table (``_registry.WatcherTable``: lookup, match, locks)."""
        return self.watcher_set.table

    @property
    def sockets(self) -> Any:
        """The bound sockets shared with the watchers (``_sockets.SocketSet``)."""
        return self.watcher_set.sockets

    socket_set = sockets

    @property
    def output(self) -> Any:
        """The output hub (``_output.OutputHub``: lines kept for ``logs``, forwarding)."""
        return self.watcher_set.output

    @property
    def context(self) -> zmq.asyncio.Context:
        """The ZeroMQ context the channels use."""
        return self.channels.context

    @property
    def publisher(self) -> Any:
        """The events channel's ``Publisher`` (``None`` before start)."""
        return self.channels.publisher

    @property
    def controller(self) -> Any:
        """The control channel's ``Controller`` (``None`` before start)."""
        return self.channels.controller

    @property
    def endpoint(self) -> str:
        """The control endpoint."""
        return self.channels.endpoint

    @property
    def pubsub_endpoint(self) -> str:
        """The events endpoint."""
        return self.channels.pubsub_endpoint

    @property
    def stats_endpoint(self) -> str | None:
        """The stats endpoint (``None``: no stats)."""
        return self.channels.stats_endpoint

    @property
    def multicast_endpoint(self) -> str:
        """The discovery group (``""``: off)."""
        return self.channels.multicast_endpoint

    @property
    def endpoint_owner(self) -> str | None:
        """The user owning the ipc endpoints (see ``_authz``)."""
        return self.channels.settings.endpoint_owner

    @property
    def unauthenticated_access(self) -> str:
        """``read``, ``operate`` or ``full`` (see ``_authz``)."""
        return self.settings.unauthenticated_access

    @property
    def check_delay(self) -> float:
        """Reported by ``globaloptions`` and given to plugins; nothing polls on it."""
        return self.settings.check_delay

    @property
    def config_file(self) -> str | None:
        """The INI file ``reloadconfig`` re-reads (``None``: not started from one)."""
        return self.settings.config_file

    @property
    def fqdn(self) -> str:
        """This host's name, as upstream: ``fqdn_prefix@host`` with a prefix."""
        import socket

        try:
            host = socket.getfqdn()
        except OSError:  # pragma: no cover - a host without a resolvable name
            host = socket.gethostname()
        prefix = self.settings.fqdn_prefix
        return f"{prefix}@{host}" if prefix else host

    @property
    def statsd(self) -> bool:
        """Whether the stats channel is on."""
        return self.channels.stats_endpoint is not None

    if not TYPE_CHECKING:  # at run time only: typed code names the settings field

        def __getattr__(self, name: str) -> Any:
            # Upstream's Arbiter kept every option as an attribute (arbiter.warmup_delay,
            # arbiter.httpd_port, ...): those not defined above read the current settings.
            if name in _SETTING_NAMES and "settings" in vars(self):
                return getattr(self.settings, name)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def stopping(self) -> bool:
        """True once the arbiter is shutting down."""
        return self.watcher_set.stopping

    def get_watcher(self, name: str) -> Any:
        """The watcher called ``name`` (any case); ``NotFoundError`` otherwise."""
        return self.watcher_set.get(name)

    def iter_watchers(self, reverse: bool = False) -> list[Any]:
        """Watchers in start order, or stop order with ``reverse``."""
        return self.watcher_set.ordered(reverse=reverse)

    def statuses(self) -> dict[str, str]:
        """``{watcher name: status}`` for every watcher."""
        return self.watcher_set.statuses()

    def numwatchers(self) -> int:
        """Number of watchers."""
        return len(self.watcher_set.table)

    def numprocesses(self) -> int:
        """Total number of running processes."""
        return self.watcher_set.numprocesses()

    def globaloptions(self) -> dict[str, Any]:
        """What ``globaloptions`` answers: upstream's five keys with upstream's value types
        (``stats_endpoint`` is upstream's default address when no stats channel is bound,
        as Circus 0.19 answers whether or not statsd runs)."""
        return {
            "endpoint": self.endpoint,
            "stats_endpoint": self.stats_endpoint or DEFAULT_STATS_ENDPOINT,
            "pubsub_endpoint": self.pubsub_endpoint,
            "check_delay": self.check_delay,
            "multicast_endpoint": self.multicast_endpoint,
        }

    # ------------------------------------------------------------------ watchers

    async def apply_plugins(
        self, specs: Mapping[str, Mapping[str, Any]], removed: Iterable[str] = ()
    ) -> None:
        """Re-create the watchers of the plugins ``specs``; remove those in ``removed``
        (see ``PluginSet.apply``)."""
        await self.plugin_set.apply(specs, removed)

    # ------------------------------------------------------------------ watchers

    def publish_event(self, watcher_name: str, event: str, **payload: Any) -> None:
        """Publish ``watcher.<name>.<event>`` with ``time`` added."""
        self.watcher_set.publish_event(watcher_name, event, **payload)

    async def start_watchers(self, only_autostart: bool = True) -> None:
        """Start watchers in priority order, ``warmup_delay`` apart."""
        await self.watcher_set.start_all(only_autostart)

    async def stop_watchers(self) -> None:
        """Stop every watcher concurrently (each under its own lock)."""
        await self.watcher_set.stop_all()

    async def start_watcher(self, watcher: Any) -> Any:
        """Start one watcher under its lock; the watcher's ``{"started", "kept"}``."""
        return await self.watcher_set.start(watcher)

    async def stop_watcher(self, watcher: Any) -> None:
        """Stop one watcher under its lock."""
        await self.watcher_set.stop(watcher)

    async def restart_watcher(self, watcher: Any) -> Any:
        """Restart one watcher under its lock; ``{"stopped", "started", "kept"}``."""
        return await self.watcher_set.restart(watcher)

    async def reload_watcher(
        self, watcher: Any, graceful: bool = True, sequential: bool = False
    ) -> Any:
        """Reload one watcher under its lock (a stopped watcher is started, as upstream)."""
        return await self.watcher_set.reload(watcher, graceful=graceful, sequential=sequential)

    def create_watcher(self, name: str, cmd: str, **options: Any) -> Any:
        """Create and register a stopped watcher; publishes ``add`` (see
        ``WatcherSet.create`` for the errors)."""
        return self.watcher_set.create(name, cmd, **options)

    async def add_watcher(self, name: str, cmd: str, start: bool = False, **options: Any) -> Any:
        """:meth:`create_watcher`, then start it when ``start``."""
        watcher = self.watcher_set.create(name, cmd, **options)
        if start:
            await self.watcher_set.start(watcher)
        return watcher

    async def rm_watcher(self, watcher: Any, nostop: bool = False) -> None:
        """Unregister a watcher (object or name; publishes ``remove``) and stop it unless
        ``nostop``."""
        await self.watcher_set.remove(watcher, nostop=nostop)

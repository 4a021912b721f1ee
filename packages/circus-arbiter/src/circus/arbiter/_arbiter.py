"""The Arbiter: one daemon, composed of its watcher set, its channels and its plugins.

The parts, each with one job: the :class:`~._watcher_set.WatcherSet` (watchers, their locks,
sockets and output), the :class:`~._channels.Channels` (control, events, stats, discovery
and their CURVE), the :class:`~._plugin_set.PluginSet` (plugin and dashboard watchers).
The Arbiter holds the :class:`~._settings.ArbiterSettings`, wires the parts together and runs
the lifecycle: start, serve until ``quit``, stop, reload.

Everything runs on one asyncio loop (:attr:`Arbiter.loop` is tornado's ``IOLoop`` wrapping the
same loop, so tornado-style code keeps working; tornado is only imported when it is asked for).
Nothing polls: dead processes are noticed by the watcher layer's events, requests by the ROUTER
socket, and the only timer is the stats publisher, which exists only while a ``stats_endpoint``
is configured. ``check_delay`` is accepted for compatibility and reported by ``globaloptions``;
nothing wakes up on it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import zmq.asyncio

from ._authz import announce
from ._channels import Channels
from ._context import CommandContext
from ._errors import ArbiterError
from ._orphans import stop_adopted
from ._plugin_set import PluginSet, check_dashboard
from ._settings import (
    DEFAULT_ENDPOINT,
    DEFAULT_PUBSUB_ENDPOINT,
    ArbiterSettings,
    ignored_options,
)
from ._watcher_set import WatcherSet

__all__ = ["Arbiter"]

log = logging.getLogger("circus.arbiter")

_KEEP: Any = object()  # apply_daemon_options: keep the running CURVE options
_DEFAULT_STATS_ENDPOINT = "tcp://127.0.0.1:5557"


class Arbiter:
    """Runs watchers, sockets, the control and pub/sub channels, stats and plugins.

    The keywords are upstream's (they build an :class:`~._settings.ArbiterSettings`);
    :meth:`from_settings` and :meth:`from_config` take the settings whole.

    Args:
        watchers: ``circus.watcher.Watcher`` objects (or dicts of Watcher keyword arguments
            with at least ``name`` and ``cmd``).
        endpoint: the control ROUTER endpoint.
        pubsub_endpoint: the events PUB endpoint.
        check_delay: accepted for compatibility; supervision is event-driven.
        stats_endpoint: if set, ``stat.*`` topics are published there every
            ``stats_interval`` seconds (1.0, as circusd-stats).
        multicast_endpoint: UDP discovery; off unless given.
        plugins: ``[{"name": ..., "use": "dotted.Class", **options}]``.
        sockets: ``circus.sockets.CircusSocket`` objects or dicts of their keyword arguments.
        warmup_delay: seconds between starting two watchers.
        endpoint_owner: user owning the ipc control/pubsub socket files; that uid may also
            operate every watcher and change those that run as itself (see ``_authz``).
        unauthenticated_access: what peers that are neither circusd's user, root, a CURVE
            key nor the ``endpoint_owner`` may do: ``"read"`` (default), ``"operate"`` or
            ``"full"`` (upstream's behaviour: anything; logged as a warning).
        config_file: the INI file ``reloadconfig`` re-reads.
        output_lines: lines of output kept per watcher for the ``logs`` command.
        ``check_delay``, ``warmup_delay``, ``stats_interval`` and ``output_lines`` beyond their
        ceilings (``circus.watcher.LIMITS``) raise :class:`~circus.watcher.OptionError`.
        curve: CURVE for every endpoint: a ``circus.arbiter._curve.CurveSettings``, or the
            ``[circus]`` options ``curve_secret_key``, ``curve_public_key``,
            ``curve_authorized_keys``, ``insecure_bind`` as a dict. Without it (or
            ``insecure_bind``) a non-loopback tcp endpoint is refused.
        httpd: run the dashboard (``httpd_host``, ``httpd_port``, ``httpd_token_file``;
            ``httpd_close_outputs`` closes its stdout/stderr). One that would refuse to start
            raises :class:`ArbiterError` here.
        debug: plugins log at debug level. ``debug_gc``: ``gc.DEBUG_LEAK`` at start.
        umask: set at start. ``pidfile``: written at start (refused while it names a running
            daemon), removed at exit. ``fqdn_prefix``: :attr:`fqdn`. ``loglevel``,
            ``logoutput``: given to plugins.
        statsd_close_outputs, ssh_server, proc_name, loggerconfig, loop: accepted for
            compatibility; when set, a WARNING at start says why nothing acts on them.
    """

    def __init__(
        self,
        watchers: Iterable[Any] = (),
        endpoint: str = DEFAULT_ENDPOINT,
        pubsub_endpoint: str = DEFAULT_PUBSUB_ENDPOINT,
        check_delay: float = 1.0,
        prereload_fn: Any = None,
        context: zmq.asyncio.Context | None = None,
        loop: Any = None,
        statsd: bool = False,
        stats_endpoint: str | None = None,
        statsd_close_outputs: bool = False,
        multicast_endpoint: str | None = None,
        plugins: Iterable[Mapping[str, Any]] | None = None,
        sockets: Iterable[Any] | None = None,
        warmup_delay: float = 0,
        httpd: bool = False,
        httpd_host: str = "localhost",
        httpd_port: int = 8080,
        httpd_close_outputs: bool = False,
        httpd_token_file: str | None = None,
        debug: bool = False,
        debug_gc: bool = False,
        ssh_server: str | None = None,
        proc_name: str = "circusd",
        pidfile: str | None = None,
        loglevel: str | None = None,
        logoutput: str | None = None,
        loggerconfig: str | None = None,
        fqdn_prefix: str | None = None,
        umask: int | None = None,
        endpoint_owner: str | None = None,
        config_file: str | None = None,
        stats_interval: float = 1.0,
        output_lines: int = 1000,
        curve: Any = None,
        unauthenticated_access: str = "read",
    ) -> None:
        settings = ArbiterSettings(
            endpoint=endpoint,
            pubsub_endpoint=pubsub_endpoint,
            # as upstream's get_arbiter: statsd on without an endpoint uses the default one
            stats_endpoint=stats_endpoint or (_DEFAULT_STATS_ENDPOINT if statsd else None),
            stats_interval=stats_interval,
            multicast_endpoint=multicast_endpoint or "",
            endpoint_owner=endpoint_owner,
            unauthenticated_access=unauthenticated_access,
            curve=curve,
            check_delay=check_delay,
            warmup_delay=warmup_delay,
            output_lines=output_lines,
            config_file=config_file,
            httpd=httpd,
            httpd_host=httpd_host,
            httpd_port=httpd_port,
            httpd_token_file=httpd_token_file,
            httpd_close_outputs=httpd_close_outputs,
            loglevel=loglevel,
            logoutput=logoutput,
            debug=debug,
            debug_gc=debug_gc,
            umask=umask,
            pidfile=pidfile,
            fqdn_prefix=fqdn_prefix,
            statsd_close_outputs=statsd_close_outputs,
            ssh_server=ssh_server,
            proc_name=proc_name,
            loggerconfig=loggerconfig,
        )
        self._compose(settings, watchers, sockets or (), plugins or (), context, prereload_fn)
        self._ignored = ignored_options(settings, loop)

    @classmethod
    def from_settings(
        cls,
        settings: ArbiterSettings,
        watchers: Iterable[Any] = (),
        sockets: Iterable[Any] = (),
        plugins: Iterable[Mapping[str, Any]] = (),
        context: zmq.asyncio.Context | None = None,
        prereload_fn: Callable[[Arbiter], Any] | None = None,
    ) -> Arbiter:
        """An arbiter for ``settings``, running ``watchers``, ``sockets`` and ``plugins``
        (the same kinds of values as the constructor's)."""
        arbiter = cls.__new__(cls)
        arbiter._compose(settings, watchers, sockets, plugins, context, prereload_fn)
        return arbiter

    @classmethod
    def from_config(
        cls,
        config: Any,
        context: zmq.asyncio.Context | None = None,
        prereload_fn: Callable[[Arbiter], Any] | None = None,
        **overrides: Any,
    ) -> Arbiter:
        """An arbiter for a loaded :class:`~circus.arbiter.config.CircusConfig` (the config
        ``reloadconfig`` compares against); ``overrides`` replace settings fields (e.g.
        ``pidfile=None`` when the caller holds the pidfile itself).

        Raises:
            TypeError: an override that is not a settings field.
        """
        from ._from_config import parts_from_config, settings_from_config

        settings = replace(settings_from_config(config), **overrides)
        arbiter = cls.from_settings(
            settings, context=context, prereload_fn=prereload_fn, **parts_from_config(config)
        )
        arbiter.loaded_config = config
        return arbiter

    @classmethod
    def load_from_config(cls, config_file: str, **overrides: Any) -> Arbiter:
        """An arbiter for an INI file (loaded with :func:`circus.arbiter.config.load_config`);
        ``overrides`` as :meth:`from_config`'s."""
        from .config import load_config

        return cls.from_config(load_config(config_file), **overrides)

    def _compose(
        self,
        settings: ArbiterSettings,
        watchers: Iterable[Any],
        sockets: Iterable[Any],
        plugins: Iterable[Mapping[str, Any]],
        context: zmq.asyncio.Context | None,
        prereload_fn: Any,
    ) -> None:
        check_dashboard(settings)  # before anything is made that would need closing
        self.settings = settings
        self.prereload_fn = prereload_fn
        self.channels = Channels(settings, context)
        self.watcher_set = WatcherSet(
            sockets,
            self.channels.publish,
            self.channels.wanted,
            output_lines=settings.output_lines,
            warmup_delay=settings.warmup_delay,
            owner=self,
        )
        self.plugin_set = PluginSet(plugins, lambda: self.settings, self.channels, self.watcher_set)
        self.commands = CommandContext(self.watcher_set, self)
        self.loaded_config: Any = None  # the config reloadconfig compares the file with
        self.pid = os.getpid()
        self.started_at: float | None = None
        self._initial = list(watchers)
        self._ignored = ignored_options(settings)
        self._pidfile: Any = None
        self._exit: asyncio.Event | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._aio_loop: asyncio.AbstractEventLoop | None = None  # the loop the arbiter runs on
        self._ioloop: Any = None  # tornado's IOLoop for it, made on first use of .loop

    # ------------------------------------------------------------------ public views

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
        """What ``globaloptions`` answers."""
        return {
            "endpoint": self.endpoint,
            "stats_endpoint": self.stats_endpoint,
            "pubsub_endpoint": self.pubsub_endpoint,
            "check_delay": self.check_delay,
            "multicast_endpoint": self.multicast_endpoint,
        }

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Run the arbiter on a new asyncio loop until it is stopped (blocking)."""
        asyncio.run(self.run())

    async def run(self, started: Callable[[], None] | None = None) -> None:
        """Start, serve until ``quit``/:meth:`stop`, then release everything.

        Args:
            started: called once the control channel is bound and the autostart watchers
                are started (``circusd --daemon`` releases its waiting parent there).
        """
        await self.start_async()
        try:
            if started is not None:
                started()
            assert self._exit is not None
            await self._exit.wait()
        finally:
            await self._shutdown()

    async def start_async(self) -> None:
        """Bind every endpoint and socket, start plugins and the autostart watchers.

        Returns once the watchers have been started; the control channel already answers
        while they start.

        Raises:
            ArbiterError: an endpoint or socket cannot be bound, CURVE is refused, or the
                ``pidfile`` names a running daemon (everything bound so far is released).
        """
        self._aio_loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        self.started_at = time.time()
        self._apply_process_options()
        self.watcher_set.open()
        try:
            self.channels.open(self.commands, self._stats_snapshot)
            self._initial += self.plugin_set.initial_watchers()
            self.watcher_set.bind_sockets()
            for spec in self._initial:
                self.watcher_set.register_spec(spec)
            self._initial = []
            await self.channels.open_optional()
        except Exception:
            await self._shutdown()
            raise
        self.channels.serve()
        log.info("Arbiter now waiting for commands on %s", self.endpoint)
        announce(self)
        await self.watcher_set.start_all()

    def _apply_process_options(self) -> None:
        """What an arbiter does to its process at start: options that nothing acts on are
        named, then ``umask``, ``debug_gc`` and the ``pidfile``."""
        for option, why in self._ignored:
            log.warning("%s is ignored: %s", option, why)
        settings = self.settings
        if settings.umask is not None:
            os.umask(settings.umask)
        if settings.debug_gc:
            import gc

            gc.set_debug(gc.DEBUG_LEAK)
        if settings.pidfile and self._pidfile is None:
            from ._pidfile import Pidfile, PidfileError

            pidfile = Pidfile(settings.pidfile)
            try:
                pidfile.create()
            except PidfileError as exc:
                raise ArbiterError(str(exc)) from exc
            self._pidfile = pidfile

    def _stats_snapshot(self) -> Any:
        from ._stats import snapshot

        return snapshot(self.watcher_set.ordered(), self.watcher_set.sockets, self.started_at)

    async def quit(self) -> None:
        """Stop every watcher, then let :meth:`run` release everything and return."""
        self.watcher_set.shut()
        await self.watcher_set.stop_all()
        if self._exit is not None:
            self._exit.set()

    async def stop(self) -> None:
        """Stop everything and return once all children are gone and sockets closed."""
        await self.quit()
        await self._shutdown()

    def request_quit(self) -> None:
        """Ask the arbiter to quit from a signal handler or another task (non-blocking)."""
        if self.stopping:
            return
        self._spawn(self.quit())

    def request_reload(self) -> None:
        """SIGHUP: ``reloadconfig`` when started from a file, else reload every watcher."""
        if self.stopping:
            return
        if self.config_file:
            from ._reload import reload_config

            task = self._spawn(reload_config(self))
        else:
            task = self._spawn(self.reload())
        task.add_done_callback(_log_failure)

    async def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.watcher_set.shut()
        await self.watcher_set.stop_all()
        await stop_adopted()
        self.watcher_set.close()
        await self.channels.close()
        if self._pidfile is not None:
            self._pidfile.unlink()
            self._pidfile = None
        self.watcher_set.close_output()
        log.info("Arbiter exiting")

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ reload

    async def reload(self, graceful: bool = True, sequential: bool = False) -> None:
        """Reload every watcher in priority order (``prereload_fn(arbiter)`` first)."""
        if self.prereload_fn is not None:
            self.prereload_fn(self)
        await self.watcher_set.reload_all(graceful=graceful, sequential=sequential)

    async def restart(self) -> None:
        """Stop every watcher and start them again (config re-read when there is a file)."""
        await self.watcher_set.stop_all()
        if self.config_file:
            from ._reload import reload_config

            await reload_config(self, force=True)
        await self.watcher_set.start_all()

    async def apply_daemon_options(self, daemon: Any, curve: Any = _KEEP) -> bool:
        """Apply a reloaded ``[circus]`` section (a ``DaemonConfig``) without restarting the
        watchers; returns whether the endpoints were re-bound (plugins must reconnect).

        ``curve``: the new config's CURVE options (as the ``curve`` argument; left out: the
        running ones). The new config's security applies in full, all or nothing (see
        :meth:`Channels.move`); then ``unauthenticated_access``, ``check_delay``,
        ``warmup_delay`` and the log level, and the dashboard is told the new endpoints.

        Raises:
            ArbiterError: an exposed endpoint without CURVE, bad CURVE settings or key
                files, or an endpoint that cannot be bound (nothing changed).
        """
        from ._from_config import reloaded

        options = self.settings.curve if curve is _KEEP else curve
        new = reloaded(self.settings, daemon, options)
        moved = self.channels.move(new)
        self.settings = new
        self.watcher_set.warmup_delay = new.warmup_delay
        if daemon.loglevel:
            try:
                logging.getLogger().setLevel(daemon.loglevel.upper())
            except ValueError as exc:
                log.error("loglevel: %s", exc)
        if moved.rediscover:
            await self.channels.restart_discovery()
        await self.plugin_set.renew_httpd(moved.rekeyed)
        return moved.rebound

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


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("reload failed: %s", task.exception())

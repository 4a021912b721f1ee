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
from typing import TYPE_CHECKING, Any

import zmq.asyncio
from circus.process import DEFAULT_SPAWN_THREAD_FROM, set_spawn_thread

from ._api import ArbiterAPI
from ._authz import announce
from ._channels import Channels
from ._context import CommandContext
from ._errors import ArbiterError
from ._orphans import stop_adopted
from ._plugin_set import PluginSet, check_dashboard
from ._settings import (
    DEFAULT_ENDPOINT,
    DEFAULT_PUBSUB_ENDPOINT,
    DEFAULT_STATS_ENDPOINT,
    ArbiterSettings,
    ignored_options,
)
from ._watcher_set import WatcherSet

if TYPE_CHECKING:
    from ._crashstate import CrashState
    from ._pidfile import Pidfile

__all__ = ["CRITICAL_EXIT_STATUS", "Arbiter"]

log = logging.getLogger("circus.arbiter")

#: circusd's exit status when a watcher with ``critical = true`` gave up (README "Containers").
CRITICAL_EXIT_STATUS = 3

_KEEP: Any = object()  # apply_daemon_options: keep the running CURVE options


class Arbiter(ArbiterAPI):
    """Runs watchers, sockets, the control and pub/sub channels, stats and plugins.

    The keywords are upstream's (they build an :class:`~._settings.ArbiterSettings`);
    :meth:`from_settings` and :meth:`from_config` take the settings whole. Upstream's views
    and per-watcher methods (``get_watcher``, ``endpoint``, ``add_watcher``...) come from
    :class:`~._api.ArbiterAPI`.

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
        spawn_thread: set at start with ``circus.process.set_spawn_thread`` (process-wide):
            spawns fork from the small-table spawn thread once that many descriptors are
            open, never with ``None`` (its children then survive a ``daemon-reexec`` even
            when they set a parent-death signal).
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
        spawn_thread: int | None = DEFAULT_SPAWN_THREAD_FROM,
    ) -> None:
        settings = ArbiterSettings(
            endpoint=endpoint,
            pubsub_endpoint=pubsub_endpoint,
            # as upstream's get_arbiter: statsd on without an endpoint uses the default one
            stats_endpoint=stats_endpoint or (DEFAULT_STATS_ENDPOINT if statsd else None),
            stats_interval=stats_interval,
            multicast_endpoint=multicast_endpoint or "",
            endpoint_owner=endpoint_owner,
            unauthenticated_access=unauthenticated_access,
            spawn_thread=spawn_thread,
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
        self._pidfile: Pidfile | None = None
        self.crash_state: CrashState | None = None  # see _crashstate (made at start)
        self._exit: asyncio.Event | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._aio_loop: asyncio.AbstractEventLoop | None = None  # the loop the arbiter runs on
        self._ioloop: Any = None  # tornado's IOLoop for it, made on first use of .loop
        #: circusd's link to systemd (``_sdnotify.SystemdNotifier``), None when not under it
        self.systemd: Any = None
        #: the state a ``daemon-reexec`` handed to this image (circusd sets it), else None
        self.handover: dict[str, Any] | None = None
        #: ``generation``, ``switch_began``, ``takeover_ms`` of the last ``daemon-reexec``
        self.reexec_info: dict[str, Any] | None = None
        self._supervisor: Any = None  # a supervisord.conf's XML-RPC API and event listeners
        #: What circusd exits with: 0, or CRITICAL_EXIT_STATUS once a critical watcher gave up.
        self.exit_status = 0
        self.watcher_set.on_give_up = self._on_give_up

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
        handover, self.handover = self.handover, None
        resumed: dict[str, Any] = {}
        try:
            if handover is not None:
                from ._reexec import resume

                # the children are attached before anything awaits: the orphan reaper
                # never takes one of them for an orphan
                resumed = await resume(self, handover)
                self._initial = []
            self.channels.open(self.commands, self._stats_snapshot)
            if handover is None:
                self._initial += self.plugin_set.initial_watchers()
                await self._take_previous_sockets()
                self.watcher_set.bind_sockets()
            supervisor = getattr(self.loaded_config, "supervisor", None)
            if supervisor is not None:  # supervisord.conf: its API
                from .supervisor._services import SupervisorServices

                self._supervisor = SupervisorServices(self, supervisor)
                specs = await self._supervisor.open(self._initial)
                # after a daemon-reexec the watchers, listeners included, are already back
                self._initial = specs if handover is None else []
            for spec in self._initial:
                self.watcher_set.register_spec(spec)
            self._initial = []
            self.watcher_set.check_dependencies()  # depends_on: known names, no cycle
            if self._supervisor is not None:
                self._supervisor.attach()
            await self.channels.open_optional()
        except Exception:
            await self._shutdown()
            raise
        self.channels.serve()
        log.info("Arbiter now waiting for commands on %s", self.endpoint)
        announce(self)
        if handover is not None:
            from ._reexec import finish

            await finish(self, resumed)  # the processes are ours: nothing to recover
            return
        await self._recover()
        await self.watcher_set.start_all()

    def _apply_process_options(self) -> None:
        """What an arbiter does to its process at start: options that nothing acts on are
        named, then ``max_connections``, ``spawn_thread``, ``umask``, ``debug_gc`` and the
        ``pidfile``."""
        for option, why in self._ignored:
            log.warning("%s is ignored: %s", option, why)
        settings = self.settings
        self._apply_max_connections()
        set_spawn_thread(settings.spawn_thread)
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
        try:
            self._open_crash_state()
        except ArbiterError:
            if self._pidfile is not None:
                self._pidfile.unlink()
                self._pidfile = None
            raise

    def _apply_max_connections(self) -> None:
        """``max_connections`` to the connection guard and the supervisor API's servers."""
        from ._connguard import configure

        cap = self.settings.max_connections
        configure(cap)
        for server in self._supervisor.servers if self._supervisor is not None else ():
            server.max_connections = cap

    def _open_crash_state(self) -> None:
        """Take the crash state lock (refused while another daemon runs this config and
        endpoint); only for a daemon run from a config file or given a ``runtime_dir``."""
        settings = self.settings
        if self.crash_state is not None or not (settings.config_file or settings.runtime_dir):
            return
        from ._crashstate import CrashState, default_runtime_dir, state_key

        crash = CrashState(
            settings.runtime_dir or default_runtime_dir(),
            state_key(settings.config_file, settings.endpoint),
            self._crash_snapshot,
            settings.endpoint,
            lambda: self.watcher_set.sockets.fd_map(),
        )
        if crash.acquire():
            self.crash_state = crash
            self.watcher_set.process_changed = crash.changed

    def _crash_snapshot(self) -> dict[str, tuple[str, list[str]]]:
        from ._crashstate import records, watcher_command

        out: dict[str, tuple[str, list[str]]] = {}
        for watcher in self.watcher_set.ordered():
            running = records(getattr(watcher, "processes", {}).values(), False)
            ending = records(getattr(watcher, "ending", {}).values(), True)
            if running or ending:
                out[watcher.name] = (watcher_command(watcher), running + ending)
        return out

    async def _take_previous_sockets(self) -> None:
        """The listening sockets a crashed predecessor's workers still hold (see
        ``_recover.take_sockets``): taken before binding, which would fail."""
        if self.crash_state is None:
            return
        from ._recover import take_sockets

        try:
            await take_sockets(self.crash_state, self.watcher_set.sockets)
        except Exception:
            log.exception("taking the previous circusd's sockets over failed")

    async def _recover(self) -> None:
        """Adopt or replace what a crashed predecessor left running (``on_crash``)."""
        if self.crash_state is None:
            return
        from ._recover import recover

        try:
            await recover(self.crash_state, self.watcher_set, self.settings.on_crash)
        except Exception:
            log.exception("recovering from the previous circusd's crash failed")

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

    def _on_give_up(self, watcher: Any, reason: str) -> None:
        """A watcher stopped for good on its own; a ``critical`` one takes circusd down."""
        if not getattr(watcher.settings, "critical", False):
            log.error("watcher %s gave up: %s", watcher.name, reason)
            return
        log.critical(
            "critical watcher %s gave up (%s): stopping circusd, exit status %d",
            watcher.name,
            reason,
            CRITICAL_EXIT_STATUS,
        )
        self.exit_status = CRITICAL_EXIT_STATUS
        self.request_quit()

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
        if self._supervisor is not None:
            await self._supervisor.close()
        self.watcher_set.shut()
        await self.watcher_set.stop_all()
        await stop_adopted()
        if self.crash_state is not None:
            self.crash_state.close()  # everything is stopped: nothing left to find
            self.crash_state = None
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
        :meth:`Channels.move`); then ``unauthenticated_access``, ``max_connections``,
        ``spawn_thread`` (for the spawns that follow), ``check_delay``, ``warmup_delay`` and
        the log level, and the dashboard is told the new endpoints.

        Raises:
            ArbiterError: an exposed endpoint without CURVE, bad CURVE settings or key
                files, or an endpoint that cannot be bound (nothing changed).
        """
        from ._from_config import reloaded

        options = self.settings.curve if curve is _KEEP else curve
        new = reloaded(self.settings, daemon, options)
        moved = self.channels.move(new)
        self.settings = new
        self._apply_max_connections()
        set_spawn_thread(new.spawn_thread)
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


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("reload failed: %s", task.exception())

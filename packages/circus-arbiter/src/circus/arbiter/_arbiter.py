"""The Arbiter: many watchers and sockets behind one control channel and one pub/sub channel.

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
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from functools import partial
from typing import Any

import zmq
import zmq.asyncio
from circus.ctl.protocol import event_topic

from ._authz import announce, parse_access
from ._controller import Controller
from ._errors import ArbiterError, ConflictError
from ._forward import OutputForwarder
from ._limits import check_arbiter_args
from ._orphans import reap_adopted, stop_adopted
from ._output import OutputHub
from ._publisher import Publisher
from ._registry import WatcherTable
from ._sockets import SocketSet
from ._watchers import make_watcher

__all__ = ["Arbiter", "ThreadedArbiter"]

log = logging.getLogger("circus.arbiter")

_KEEP: Any = object()  # apply_daemon_options: keep the running CURVE options


class Arbiter:
    """Runs watchers, sockets, the control and pub/sub channels, stats and plugins.

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
    """

    def __init__(
        self,
        watchers: Iterable[Any] = (),
        endpoint: str = "tcp://127.0.0.1:5555",
        pubsub_endpoint: str = "tcp://127.0.0.1:5556",
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
        check_arbiter_args(
            check_delay=check_delay,
            warmup_delay=warmup_delay,
            stats_interval=stats_interval,
            output_lines=output_lines,
        )
        try:
            self.unauthenticated_access = parse_access(unauthenticated_access)
        except ValueError:
            raise ArbiterError(
                f"unauthenticated_access = {unauthenticated_access!r}: expected read, "
                "operate or full"
            ) from None
        self.endpoint = endpoint
        self.curve = curve
        self._curve_server: Any = None
        self._curve_idle: Any = None  # keeps the ZAP authenticator after CURVE is reloaded off
        self._httpd_args: str | None = None  # the running dashboard's command line
        self.pubsub_endpoint = pubsub_endpoint
        self.check_delay = check_delay
        self.prereload_fn = prereload_fn
        self.statsd = statsd
        # as upstream's get_arbiter: statsd on without an endpoint uses the default one
        self.stats_endpoint = stats_endpoint or ("tcp://127.0.0.1:5557" if statsd else None)
        self.stats_interval = stats_interval
        self.multicast_endpoint = multicast_endpoint or ""
        self.warmup_delay = warmup_delay
        self.httpd = httpd
        self.httpd_host = httpd_host
        self.httpd_port = httpd_port
        self.httpd_token_file = httpd_token_file
        self.debug = debug
        self.ssh_server = ssh_server
        self.proc_name = proc_name
        self.pidfile = pidfile
        self.loglevel = loglevel
        self.logoutput = logoutput
        self.loggerconfig = loggerconfig
        self.fqdn_prefix = fqdn_prefix
        self.umask = umask
        self.endpoint_owner = endpoint_owner
        self.config_file = config_file
        self.pid = os.getpid()
        self.started_at: float | None = None
        self.plugin_specs: list[dict[str, Any]] = [_named_plugin(p) for p in plugins or ()]
        self.table = WatcherTable()
        self.socket_set = SocketSet(sockets or ())
        self._initial_watchers = list(watchers)
        self._own_context = context is None
        self.context = context if context is not None else zmq.asyncio.Context()
        self.controller: Controller | None = None
        self._retiring: set[Controller] = set()
        self.publisher: Publisher | None = None
        self.output = OutputHub(self._publish, keep=output_lines, wanted=self._wanted)
        self._stats: Any = None
        self._discovery: Any = None
        self._loaded_config: Any = None
        self._exit: asyncio.Event | None = None
        self._started = threading.Event()
        self._stopping = False
        self._closed = False
        self._orphan_check = False  # a reap_adopted is scheduled
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
            self._ioloop = _ioloop_for(self._aio_loop)
        return self._ioloop

    @property
    def watchers(self) -> list[Any]:
        """The watchers in start order (priority descending, then name)."""
        return self.table.ordered()

    @property
    def sockets(self) -> SocketSet:
        """The bound sockets shared with the watchers."""
        return self.socket_set

    @property
    def stopping(self) -> bool:
        """True once the arbiter is shutting down."""
        return self._stopping

    def get_watcher(self, name: str) -> Any:
        """The watcher called ``name`` (any case); ``NotFoundError`` otherwise."""
        return self.table.get(name)

    def iter_watchers(self, reverse: bool = False) -> list[Any]:
        """Watchers in start order, or stop order with ``reverse``."""
        return self.table.ordered(reverse=reverse)

    def statuses(self) -> dict[str, str]:
        """``{watcher name: status}`` for every watcher."""
        return {w.name: w.status() for w in self.table.ordered()}

    def numwatchers(self) -> int:
        """Number of watchers."""
        return len(self.table)

    def numprocesses(self) -> int:
        """Total number of running processes."""
        return sum(len(w.pids) for w in self.table.ordered())

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
        """
        self._aio_loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        self.started_at = time.time()
        if self.output.forwarder is None:
            self.output.forwarder = OutputForwarder()
        try:
            from ._curve import start_curve

            self._curve_server = start_curve(
                self.curve,
                zmq.Context.shadow(self.context.underlying),
                [self.endpoint, self.pubsub_endpoint, self.stats_endpoint],
            )
            self.publisher = Publisher(
                zmq.Context.shadow(self.context.underlying),
                self.pubsub_endpoint,
                self.endpoint_owner,
            )
            self.controller = Controller(self, self.context, self.endpoint)
            self.controller.bind(self.endpoint_owner)
            if self.httpd:
                self._add_httpd()
            self._initial_watchers += [self._plugin_watcher(p) for p in self._active_plugins()]
            self.socket_set.bind_all()
            for spec in self._initial_watchers:
                self._register(make_watcher(spec) if isinstance(spec, Mapping) else spec)
            self._initial_watchers = []
            if self.stats_endpoint:
                from ._stats import StatsPublisher

                self._stats = StatsPublisher(self, self.stats_endpoint, self.stats_interval)
                self._stats.start()
            if self.multicast_endpoint:
                from ._discovery import Discovery

                self._discovery = await Discovery.create(self.multicast_endpoint, self.endpoint)
        except Exception:
            await self._shutdown()
            raise
        self.controller.start()
        log.info("Arbiter now waiting for commands on %s", self.endpoint)
        announce(self)
        await self.start_watchers()
        self._started.set()

    def _add_httpd(self) -> None:
        """``httpd = true``: bind the dashboard's socket and add its watcher (upstream's way).

        With CURVE on, the dashboard connects with circusd's own (always authorized) keys.
        """
        from ._httpd import (
            HTTPD_NAME,
            httpd_available,
            httpd_curve_files,
            httpd_socket,
            httpd_watcher,
        )

        reason = httpd_available()
        if reason is not None:
            log.error("httpd = true, but the dashboard cannot run: %s", reason)
            return
        if HTTPD_NAME in self.socket_set:
            return  # already added (a reloadconfig keeps the running dashboard)
        self.socket_set.add(httpd_socket(self.httpd_host, self.httpd_port))
        spec = httpd_watcher(
            self.endpoint,
            self.pubsub_endpoint,
            self.httpd_token_file,
            httpd_curve_files(self._curve_server),
        )
        self._httpd_args = spec["args"]
        self._initial_watchers.append(spec)

    async def _renew_httpd(self, rekeyed: bool) -> None:
        """After a reload moved an endpoint or changed circusd's keys (``rekeyed``: new key
        material, maybe under the same file names): the dashboard started with the old ones
        is replaced by one given the new ones (its socket is kept)."""
        from ._httpd import HTTPD_NAME, httpd_curve_files, httpd_watcher

        current = self.table.find(HTTPD_NAME)
        if current is None or self._httpd_args is None:
            return
        spec = httpd_watcher(
            self.endpoint,
            self.pubsub_endpoint,
            self.httpd_token_file,
            httpd_curve_files(self._curve_server),
        )
        if spec["args"] == self._httpd_args and not rekeyed:
            return
        await self.rm_watcher(current)
        self._httpd_args = spec["args"]
        watcher = self.create_watcher(spec.pop("name"), spec.pop("cmd"), **spec)
        await self.start_watcher(watcher)

    async def start_watchers(self, only_autostart: bool = True) -> None:
        """Start watchers in priority order, ``warmup_delay`` apart."""
        first = True
        for watcher in self.table.ordered():
            if self._stopping:
                return
            if only_autostart and not getattr(watcher, "autostart", True):
                continue
            if not first and self.warmup_delay:
                await self._pause(float(self.warmup_delay))
                if self._stopping:
                    return
            first = False
            try:
                await self.start_watcher(watcher)
            except Exception as exc:
                # one watcher that cannot spawn must not keep the others (or circusd) down
                log.error("watcher %s failed to start: %s", watcher.name, exc)

    async def _pause(self, seconds: float) -> None:
        # A warmup pause that a quit cuts short.
        assert self._exit is not None
        try:
            await asyncio.wait_for(self._exit.wait(), seconds)
        except TimeoutError:
            pass

    async def stop_watchers(self) -> None:
        """Stop every watcher concurrently (each under its own lock)."""
        watchers = self.table.ordered(reverse=True)
        await asyncio.gather(*(self.stop_watcher(w) for w in watchers), return_exceptions=True)

    async def quit(self) -> None:
        """Stop every watcher, then let :meth:`run` release everything and return."""
        self._stopping = True
        await self.stop_watchers()
        if self._exit is not None:
            self._exit.set()

    async def stop(self) -> None:
        """Stop everything and return once all children are gone and sockets closed."""
        await self.quit()
        await self._shutdown()

    def request_quit(self) -> None:
        """Ask the arbiter to quit from a signal handler or another task (non-blocking)."""
        if self._stopping:
            return
        task = asyncio.get_running_loop().create_task(self.quit())
        self._keep(task)

    def request_reload(self) -> None:
        """SIGHUP: ``reloadconfig`` when started from a file, else reload every watcher."""
        if self._stopping:
            return
        if self.config_file:
            from ._reload import reload_config

            coro = reload_config(self)
        else:
            coro = self.reload()
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(_log_failure)
        self._keep(task)

    @classmethod
    def load_from_config(cls, config_file: str, **overrides: Any) -> Arbiter:
        """An arbiter for an INI file (loaded with :func:`circus.arbiter.config.load_config`)."""
        from ._from_config import arbiter_kwargs
        from .config import load_config

        config = load_config(config_file)
        kwargs = arbiter_kwargs(config)
        kwargs.update(overrides)
        arbiter = cls(**kwargs)
        arbiter._loaded_config = config
        return arbiter

    async def apply_daemon_options(self, daemon: Any, curve: Any = _KEEP) -> bool:
        """Apply a reloaded ``[circus]`` section without restarting the watchers.

        ``curve``: the new config's CURVE options (as the ``curve`` argument; left out: the
        running ones). The new config's security applies in full: its endpoints are checked
        for exposure and bound with its CURVE settings; a new key pair, or CURVE switched on
        or off, re-binds every endpoint; new authorized keys apply at once.

        All or nothing: every check runs and every new socket is bound before anything
        running changes, so a refusal or a bind failure leaves the daemon as it was. The old
        control socket closes only once its in-flight requests, the ``reloadconfig`` itself
        included, have been answered; when the new one needs the same fixed tcp address, it
        is bound then (the only step after the answer). Returns whether the endpoints were
        re-bound (plugins must then reconnect).

        Raises:
            ArbiterError: an exposed endpoint without CURVE, bad CURVE settings or key
                files, or an endpoint that cannot be bound.
        """
        from ._curve import CurveSwitch
        from ._endpoints import (
            bind_again,
            bind_retrying,
            ipc_path,
            owner_uid,
            rebinds_in_place,
            release,
        )
        from ._from_config import stats_enabled

        owner = daemon.endpoint_owner
        stats = daemon.stats_endpoint if stats_enabled(daemon) else None
        options = self.curve if curve is _KEEP else curve
        context = zmq.Context.shadow(self.context.underlying)
        # checks only: nothing running changes before the new sockets are all bound
        switch = CurveSwitch(
            options,
            [daemon.endpoint, daemon.pubsub_endpoint, stats],
            self._curve_server,
            self._curve_idle,
            context,
        )
        owner_uid(owner)
        moved_owner = owner != self.endpoint_owner

        def rebind(new: str | None, old: str | None) -> bool:
            if not new:
                return False
            if new != old:
                return True
            return switch.rekey or (moved_owner and new.startswith("ipc://"))

        new_pub = rebind(daemon.pubsub_endpoint, self.pubsub_endpoint)
        new_ctl = rebind(daemon.endpoint, self.endpoint)
        new_stats = stats != self.stats_endpoint or rebind(stats, self.stats_endpoint)
        # A fixed tcp address bound again must be released by the old socket first. For the
        # control socket that waits until the reloadconfig being run has been answered
        # through it (releasing ends its connections): see _rebind_control.
        ctl_later = new_ctl and daemon.endpoint == self.endpoint
        ctl_later = ctl_later and not rebinds_in_place(daemon.endpoint)

        publisher: Publisher | None = None
        controller: Controller | None = None
        stats_pub: Any = None
        old_owner = self.endpoint_owner
        undo: list[Any] = []

        def in_place(endpoint: str, old: Any, bind: Any) -> Any:
            # ``old``: the object whose socket serves ``endpoint`` now; ``bind()`` makes the
            # new one. Undo binds the old socket there again (its own CURVE settings kept).
            sock = getattr(old, "_socket", None)
            if endpoint not in running or sock is None:
                return bind()
            if rebinds_in_place(endpoint):
                if ipc_path(endpoint) is not None:  # bind() takes the path over
                    undo.append(lambda: bind_again(sock, endpoint, old_owner))
                return bind()
            release(sock, endpoint)
            undo.append(lambda: bind_retrying(lambda: bind_again(sock, endpoint, old_owner)))
            return bind_retrying(bind)

        running = {self.pubsub_endpoint, self.endpoint, self.stats_endpoint}
        switch.stage()
        undo.append(switch.undo)
        try:
            channels = [("pub", daemon.pubsub_endpoint), ("ctl", daemon.endpoint), ("stats", stats)]
            # binding an endpoint again takes it over from the old socket: those binds go last
            channels.sort(key=lambda item: item[1] in running)
            for channel, endpoint in channels:
                if channel == "pub" and new_pub:
                    publisher = in_place(
                        endpoint,
                        self.publisher,
                        lambda: Publisher(context, daemon.pubsub_endpoint, owner),
                    )
                    undo.append(publisher.close)
                elif channel == "ctl" and new_ctl and not ctl_later:
                    controller = Controller(self, self.context, daemon.endpoint)
                    in_place(endpoint, self.controller, partial(controller.bind, owner))
                    undo.append(controller.close)
                elif channel == "stats" and new_stats and stats:
                    from ._stats import StatsPublisher

                    self.endpoint_owner = owner  # StatsPublisher binds with it
                    stats_pub = in_place(
                        endpoint,
                        getattr(self._stats, "_pub", None),
                        lambda: StatsPublisher(self, stats, self.stats_interval),
                    )
                    undo.append(stats_pub.close)
        except BaseException:
            self.endpoint_owner = old_owner
            for step in reversed(undo):
                try:
                    step()
                except Exception as exc:  # pragma: no cover - a rebind of our own address
                    log.error("reload: undoing a step failed: %s", exc)
            raise

        # commit: nothing below refuses
        self._curve_server, self._curve_idle = switch.commit()
        self.curve = options
        self.endpoint_owner = owner
        self.unauthenticated_access = daemon.unauthenticated_access
        self.check_delay = daemon.check_delay
        self.warmup_delay = daemon.warmup_delay
        if daemon.loglevel:
            try:
                logging.getLogger().setLevel(daemon.loglevel.upper())
            except ValueError as exc:
                log.error("loglevel: %s", exc)
        if publisher is not None:
            old_pub, self.publisher = self.publisher, publisher
            self.pubsub_endpoint = daemon.pubsub_endpoint
            if old_pub is not None:
                old_pub.close()
        if controller is not None:
            controller.start()
            old_ctl, self.controller = self.controller, controller
            self.endpoint = daemon.endpoint
            if old_ctl is not None:
                self._retiring.add(old_ctl)
                self._keep(asyncio.get_running_loop().create_task(self._retire(old_ctl)))
        elif ctl_later:
            task = self._rebind_control(self.controller, daemon.endpoint, owner)
            self._keep(asyncio.get_running_loop().create_task(task))
        if new_stats:
            if self._stats is not None:
                self._stats.close()
            self._stats = stats_pub
            if stats_pub is not None:
                stats_pub.start()
            self.stats_endpoint = stats
            self.statsd = bool(stats)
        changed = publisher is not None or new_ctl
        multicast = daemon.multicast_endpoint or ""
        if multicast != self.multicast_endpoint or (changed and multicast):
            if self._discovery is not None:
                self._discovery.close()
                self._discovery = None
            self.multicast_endpoint = multicast
            if multicast:
                from ._discovery import Discovery

                self._discovery = await Discovery.create(multicast, self.endpoint)
        await self._renew_httpd(switch.rekey)
        return changed

    async def _rebind_control(
        self, old: Controller | None, endpoint: str, owner: str | None
    ) -> None:
        # Same fixed tcp address, new CURVE settings: the old socket first answers what it
        # received (the reloadconfig that asked for this included), then gives the address
        # to the new one. There is nothing to refuse any more at this point: the address was
        # ours a moment ago.
        if old is not None:
            self._retiring.add(old)
            await self._retire(old)
        controller = Controller(self, self.context, endpoint)
        deadline = asyncio.get_running_loop().time() + 10.0
        while not self._stopping:
            try:
                controller.bind(owner)
                break
            except ArbiterError as exc:
                if asyncio.get_running_loop().time() > deadline:
                    log.error("the control endpoint %s cannot be bound again: %s", endpoint, exc)
                    return
            await asyncio.sleep(0.01)
        if self._stopping:
            controller.close()
            return
        controller.start()
        self.controller = controller
        log.info("control endpoint %s bound again with the new CURVE settings", endpoint)

    async def _retire(self, controller: Controller) -> None:
        # Answers of requests already received still leave through the old socket.
        try:
            await controller.drain(timeout=60.0)
        finally:
            controller.close()
            self._retiring.discard(controller)

    def _active_plugins(self) -> list[dict[str, Any]]:
        from ._plugin_watchers import is_active

        return [p for p in self.plugin_specs if is_active(p)]

    def _plugin_watcher(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """The watcher spec running plugin ``spec`` against the current endpoints."""
        from ._httpd import httpd_curve_files
        from ._plugin_watchers import plugin_watcher

        return plugin_watcher(
            spec,
            self.endpoint,
            self.pubsub_endpoint,
            self.check_delay,
            self.loglevel,
            self.logoutput,
            httpd_curve_files(self._curve_server),
        )

    async def apply_plugins(
        self, specs: Mapping[str, Mapping[str, Any]], removed: Iterable[str] = ()
    ) -> None:
        """Re-create (and start) the watchers of the plugins ``specs`` (``{watcher name:
        spec}``) against the current endpoints; remove the watchers named in ``removed``."""
        from ._plugin_watchers import is_active

        dropped = {name.lower() for name in (*removed, *specs)}
        self.plugin_specs = [p for p in self.plugin_specs if p["name"].lower() not in dropped]
        for name in (*removed, *specs):
            current = self.table.find(name)
            if current is not None:
                await self.rm_watcher(current)
        ordered = sorted(
            specs.values(), key=lambda s: (-int(s.get("priority", 1)), str(s.get("name")))
        )
        for spec in ordered:
            self.plugin_specs.append(_named_plugin(spec))
            if not is_active(spec):
                continue
            options = self._plugin_watcher(spec)
            watcher = self.create_watcher(options.pop("name"), options.pop("cmd"), **options)
            await self.start_watcher(watcher)

    async def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        await self.stop_watchers()
        await stop_adopted()
        for watcher in self.table.ordered():
            _close_watcher(watcher)
        if self.controller is not None:
            await self.controller.drain()
            self.controller.close()
        for old in list(self._retiring):
            old.close()
        if self._stats is not None:
            self._stats.close()
        if self._discovery is not None:
            self._discovery.close()
        if self.publisher is not None:
            self.publisher.close()
        self.socket_set.close_all()
        for server in (self._curve_server, self._curve_idle):
            if server is not None:  # its ZAP socket would block the context's term
                server.stop()
        self._curve_server = self._curve_idle = None
        if self._own_context:
            self.context.term()
        if self.output.forwarder is not None:
            self.output.forwarder.close(timeout=1.0)
        log.info("Arbiter exiting")

    _tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    def _keep(cls, task: asyncio.Task[Any]) -> None:
        cls._tasks.add(task)
        task.add_done_callback(cls._tasks.discard)

    # ------------------------------------------------------------------ events

    def _wanted(self, topic: str) -> bool:
        return self.publisher is not None and self.publisher.wanted(topic.encode())

    def _publish(self, topic: str, payload: Mapping[str, Any]) -> None:
        if self.publisher is not None:
            self.publisher.publish(topic, payload)

    def publish_event(self, watcher_name: str, event: str, **payload: Any) -> None:
        """Publish ``watcher.<name>.<event>`` with ``time`` added."""
        body = dict(payload)
        body.setdefault("time", time.time())
        self._publish(event_topic(watcher_name, event), body)

    def _reap_adopted(self) -> None:
        self._orphan_check = False
        reap_adopted()

    def _register(self, watcher: Any) -> None:
        if watcher.name in self.table:
            raise ConflictError(f"'{watcher.name}' already exist")
        name = watcher.name

        def on_event(event: str, payload: Mapping[str, Any]) -> None:
            self._publish(event_topic(name, event), payload)
            if event == "updated":  # a `set` may have given a stream a class, or taken it
                _route_output(self.output, watcher)
            elif event == "reap":
                pid = payload.get("process_pid")
                if isinstance(pid, int):
                    self.output.flush_pid(name, pid)
                # a dead worker's own children may now be orphans we adopted: one look per
                # loop pass, however many workers died in it (each look lists every child)
                if not self._orphan_check:
                    self._orphan_check = True
                    asyncio.get_running_loop().call_soon(self._reap_adopted)

        watcher.arbiter = self
        self.socket_set.attach(watcher)
        watcher.add_listener(on_event)
        watcher.add_output_observer(self.output.observer(name))
        _route_output(self.output, watcher)
        self.table.add(watcher)

    # ------------------------------------------------------------------ per-watcher work

    async def start_watcher(self, watcher: Any) -> Any:
        """Start one watcher under its lock; the watcher's ``{"started", "kept"}``."""
        async with self.table.locked(watcher):
            if self._stopping or watcher.name not in self.table:
                return None
            return await watcher.start()

    async def stop_watcher(self, watcher: Any) -> None:
        """Stop one watcher under its lock."""
        # A start holding the lock may be retrying a spawn forever (max_retry = -1): tell it
        # to give up now, or this stop (and a quit) would wait behind it for good.
        interrupt = getattr(watcher, "interrupt", None)
        if interrupt is not None:
            interrupt()
        async with self.table.locked(watcher):
            await watcher.stop()

    async def restart_watcher(self, watcher: Any) -> Any:
        """Restart one watcher under its lock; ``{"stopped", "started", "kept"}``."""
        async with self.table.locked(watcher):
            if self._stopping:
                return None
            return await watcher.restart()

    async def reload_watcher(
        self, watcher: Any, graceful: bool = True, sequential: bool = False
    ) -> Any:
        """Reload one watcher under its lock (a stopped watcher is started, as upstream)."""
        async with self.table.locked(watcher):
            if self._stopping:
                return None
            return await watcher.reload(graceful=graceful, sequential=sequential)

    async def reload(self, graceful: bool = True, sequential: bool = False) -> None:
        """Reload every watcher in priority order."""
        if self.prereload_fn is not None:
            self.prereload_fn(self)
        for watcher in self.table.ordered():
            await self.reload_watcher(watcher, graceful=graceful, sequential=sequential)

    async def restart(self) -> None:
        """Stop every watcher and start them again (config re-read when there is a file)."""
        await self.stop_watchers()
        if self.config_file:
            from ._reload import reload_config

            await reload_config(self, force=True)
        await self.start_watchers()

    def create_watcher(self, name: str, cmd: str, **options: Any) -> Any:
        """Create and register a stopped watcher; publishes ``add``.

        Raises:
            ConflictError: a watcher with that name exists (``'<name>' already exist``).
            MessageError: an option is invalid (the watcher layer's message), or the name
                is longer than a command may name a watcher by (256 characters).
        """
        from ._patterns import check_pattern

        check_pattern(name)
        if name in self.table:
            raise ConflictError(f"'{name}' already exist")
        watcher = make_watcher({"name": name, "cmd": cmd, **options})
        self._register(watcher)
        self.publish_event(name, "add")
        return watcher

    async def add_watcher(self, name: str, cmd: str, start: bool = False, **options: Any) -> Any:
        """:meth:`create_watcher`, then start it when ``start``."""
        watcher = self.create_watcher(name, cmd, **options)
        if start:
            await self.start_watcher(watcher)
        return watcher

    async def rm_watcher(self, watcher: Any, nostop: bool = False) -> None:
        """Unregister a watcher (object or name; publishes ``remove``) and stop it unless
        ``nostop``."""
        if isinstance(watcher, str):
            watcher = self.table.get(watcher)
        self.table.remove(watcher)
        self.publish_event(watcher.name, "remove")
        if not nostop:
            await self.stop_watcher(watcher)
        _close_watcher(watcher)
        self.output.forget(watcher.name)
        self.table.drop_lock(watcher.name)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("reload failed: %s", task.exception())


def _ioloop_for(aio_loop: asyncio.AbstractEventLoop) -> Any:
    """Tornado's IOLoop for ``aio_loop`` (created there by ``IOLoop.current()`` if needed)."""

    def current() -> Any:
        from tornado.ioloop import IOLoop

        return IOLoop.current()

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is aio_loop:
        return current()
    if aio_loop.is_closed():
        return None
    # Off the loop, IOLoop.current() would wrap this thread's loop: ask the arbiter's loop.
    result: futures.Future[Any] = futures.Future()

    def make() -> None:
        try:
            result.set_result(current())
        except BaseException as exc:  # pragma: no cover - handed to the waiting thread
            result.set_exception(exc)

    try:
        aio_loop.call_soon_threadsafe(make)
    except RuntimeError:  # closed meanwhile
        return None
    try:
        return result.result(timeout=10.0)
    except futures.TimeoutError as exc:
        raise ArbiterError("the arbiter's loop did not answer (blocked or stopping)") from exc


def _named_plugin(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with its watcher's name: as upstream, ``name``, or ``use`` without one."""
    return {**spec, "name": spec.get("name") or spec.get("use")}


def _route_output(hub: OutputHub, watcher: Any) -> None:
    """Forward to circusd's stdout/stderr the watcher's streams that have no stream class
    (upstream's children inherit circusd's stdio then)."""
    get = getattr(watcher, "get_opt", None)
    if not callable(get):
        return
    hub.route(watcher.name, get("stdout_stream") is None, get("stderr_stream") is None)


def _close_watcher(watcher: Any) -> None:
    close = getattr(watcher, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # pragma: no cover - closing is best effort at shutdown
            log.debug("closing watcher %s failed", watcher.name, exc_info=True)


class ThreadedArbiter(Arbiter):
    """An :class:`Arbiter` running its own loop in a daemon thread (``background=True``).

    :meth:`start` returns once the watchers are started; :meth:`stop` (from any thread) stops
    everything and joins the thread.
    """

    _thread: threading.Thread | None = None
    _thread_loop: asyncio.AbstractEventLoop | None = None
    _error: BaseException | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start the arbiter thread and wait until it serves (or failed)."""
        self._thread = threading.Thread(target=self._main, name="circus-arbiter", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout) and self._error is None:
            raise ArbiterError("the arbiter did not start in time")
        if self._error is not None:
            raise ArbiterError(f"the arbiter failed to start: {self._error}") from self._error

    def _main(self) -> None:
        async def main() -> None:
            self._thread_loop = asyncio.get_running_loop()
            await self.run()

        try:
            asyncio.run(main())
        except BaseException as exc:
            self._error = exc
            self._started.set()

    def stop(self, timeout: float = 60.0) -> None:  # type: ignore[override]
        """Stop the arbiter from another thread and wait for its thread to end."""
        loop, thread = self._thread_loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            loop.call_soon_threadsafe(self.request_quit)
        thread.join(timeout)

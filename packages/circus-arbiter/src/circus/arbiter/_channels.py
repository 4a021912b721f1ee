"""The daemon's channels: control, events, stats, discovery, and the CURVE that guards them.

:class:`Channels` owns every ZeroMQ endpoint circusd binds: the control ROUTER
(:class:`~._controller.Controller`), the events XPUB (:class:`~._publisher.Publisher`), the
stats PUB (:class:`~._stats.StatsPublisher`, only with a ``stats_endpoint``), UDP multicast
discovery (only with a ``multicast_endpoint``), and the CURVE server securing them
(``_curve``). Their connections are counted by the connection guard (``_connguard``).

:meth:`Channels.open` binds at start (any failure raises before anything serves);
:meth:`Channels.move` takes a running daemon to a reloaded config's endpoints and security:
every check runs and every new socket is bound before anything running changes, so a
refusal or a bind failure leaves everything as it was. The old control socket closes only
once it has answered its in-flight requests (the ``reloadconfig`` that asked included); when
the new one needs the same fixed tcp address it is bound right after that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

import zmq
import zmq.asyncio

from ._controller import Controller
from ._curve import CurveServer, CurveSwitch, start_curve
from ._errors import ArbiterError
from ._publisher import Publisher
from ._settings import ArbiterSettings

if TYPE_CHECKING:  # imported where used: only a stats or multicast endpoint needs them
    from ._discovery import Discovery
    from ._peers import PeerIdentity
    from ._stats import Snapshot, StatsPublisher

__all__ = ["Channels", "Moved"]

log = logging.getLogger("circus.arbiter")

_T = TypeVar("_T")


class _Listener(Protocol):
    """A channel object whose socket listens on ``endpoint`` (see ``Publisher``)."""

    @property
    def endpoint(self) -> str: ...

    @property
    def bound(self) -> bool: ...

    def release(self) -> None: ...

    def bind_again(self, owner: str | None) -> None: ...


class Moved(NamedTuple):
    """What :meth:`Channels.move` changed."""

    rebound: bool  # the control or events endpoint was bound again: clients must reconnect
    rekeyed: bool  # CURVE switched on or off, or a new key pair
    rediscover: bool  # discovery must be restarted (:meth:`Channels.restart_discovery`)


class Channels:
    """The ZeroMQ (and multicast) endpoints of one daemon.

    Args:
        settings: endpoints, ``endpoint_owner``, CURVE and ``stats_interval`` are read.
        context: the ZeroMQ context to make sockets in (``None``: a new one, terminated by
            :meth:`close`).
    """

    def __init__(
        self, settings: ArbiterSettings, context: zmq.asyncio.Context | None = None
    ) -> None:
        self.settings = settings
        self._own_context = context is None
        self.context = context if context is not None else zmq.asyncio.Context()
        self.curve_server: CurveServer | None = None
        self._curve_idle: CurveServer | None = None  # keeps the ZAP authenticator after CURVE
        self.publisher: Publisher | None = None
        self.controller: Controller | None = None
        self._retiring: set[Controller] = set()
        self.stats: StatsPublisher | None = None
        self.discovery: Discovery | None = None
        self._commands: Any = None
        self._stats_source: Callable[[], Snapshot] | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ views

    @property
    def endpoint(self) -> str:
        """The control endpoint."""
        return self.settings.endpoint

    @property
    def pubsub_endpoint(self) -> str:
        """The events endpoint."""
        return self.settings.pubsub_endpoint

    @property
    def stats_endpoint(self) -> str | None:
        """The stats endpoint (``None``: no stats channel)."""
        return self.settings.stats_endpoint

    @property
    def multicast_endpoint(self) -> str:
        """The discovery group (``""``: no discovery)."""
        return self.settings.multicast_endpoint

    def own_key_files(self) -> tuple[str, str] | None:
        """circusd's own ``(secret, public)`` key files, for the processes it runs that must
        connect back (plugins, the dashboard); ``None`` while CURVE is off."""
        from ._httpd import httpd_curve_files

        return httpd_curve_files(self.curve_server)

    # ------------------------------------------------------------------ events

    def publish(self, topic: str, payload: Mapping[str, Any]) -> None:
        """Publish one event (nothing before :meth:`open` or after :meth:`close`)."""
        if self.publisher is not None:
            self.publisher.publish(topic, payload)

    def wanted(self, topic: str) -> bool:
        """Whether any subscriber wants ``topic``."""
        return self.publisher is not None and self.publisher.wanted(topic.encode())

    def _may_read_output(self, who: PeerIdentity) -> bool:
        """Whether a subscriber on a loopback tcp events endpoint gets ``output.*``: the
        policy that shows ``logs`` to control peers (``_secretreads``), read when it subscribes."""
        from ._secretreads import may_read_secrets

        return may_read_secrets(getattr(self._commands, "daemon", None), who)

    # ------------------------------------------------------------------ start and stop

    def open(self, commands: Any, stats_source: Callable[[], Snapshot]) -> None:
        """Start CURVE (refusing exposed endpoints without it), bind the events and control
        endpoints. The control channel serves only after :meth:`serve`.

        Args:
            commands: what the control channel runs requests against (``run_command``).
            stats_source: makes a stats snapshot (``_stats.snapshot``) on the loop.

        Raises:
            ArbiterError: bad CURVE settings, an exposed endpoint, an endpoint in use.
        """
        self._commands, self._stats_source = commands, stats_source
        s = self.settings
        self.curve_server = start_curve(
            s.curve, self._sync_context(), [s.endpoint, s.pubsub_endpoint, s.stats_endpoint]
        )
        self.publisher = Publisher(
            self._sync_context(), s.pubsub_endpoint, s.endpoint_owner, self._may_read_output
        )
        self.controller = Controller(commands, self.context, s.endpoint)
        self.controller.bind(s.endpoint_owner)

    async def open_optional(self) -> None:
        """Bind the stats channel and join the discovery group, when configured."""
        s = self.settings
        if s.stats_endpoint:
            self.stats = self._new_stats(s.stats_endpoint, s.endpoint_owner)
            self.stats.start()
        if s.multicast_endpoint:
            await self.restart_discovery()

    def serve(self) -> None:
        """Start answering control requests."""
        assert self.controller is not None
        self.controller.start()

    async def close(self) -> None:
        """Answer what the control channel received (briefly), then close every socket, stop
        CURVE and terminate a context of our own. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.controller is not None:
            await self.controller.drain()
            self.controller.close()
        for old in list(self._retiring):
            old.close()
        if self.stats is not None:
            self.stats.close()
        if self.discovery is not None:
            self.discovery.close()
        if self.publisher is not None:
            self.publisher.close()
        for server in (self.curve_server, self._curve_idle):
            if server is not None:  # its ZAP socket would block the context's term
                server.stop()
        self.curve_server = self._curve_idle = None
        if self._own_context:
            self.context.term()

    async def reopen(self) -> None:
        """Bind every endpoint again after :meth:`close` and serve (a ``daemon-reexec``
        whose exec failed carries on this way).

        Raises:
            ArbiterError: as :meth:`open`.
        """
        if not self._closed:
            return
        assert self._stats_source is not None
        self._closed = False
        if self._own_context:
            self.context = zmq.asyncio.Context()
        self.open(self._commands, self._stats_source)
        await self.open_optional()
        self.serve()

    # ------------------------------------------------------------------ reload

    def move(self, new: ArbiterSettings) -> Moved:
        """Move to the endpoints, ``endpoint_owner`` and CURVE of ``new`` (other fields are
        ignored), all or nothing: see the module docstring. A new key pair, CURVE switched on
        or off, or a new owner of an ipc endpoint re-binds it; new authorized keys apply at
        once.

        Raises:
            ArbiterError: an exposed endpoint without CURVE, bad CURVE settings or key
                files, an unknown owner, or an endpoint that cannot be bound.
        """
        from ._endpoints import owner_uid, rebinds_in_place

        old = self.settings
        owner, stats = new.endpoint_owner, new.stats_endpoint
        context = self._sync_context()
        # checks only: nothing running changes before the new sockets are all bound
        switch = CurveSwitch(
            new.curve,
            [new.endpoint, new.pubsub_endpoint, stats],
            self.curve_server,
            self._curve_idle,
            context,
        )
        owner_uid(owner)
        moved_owner = owner != old.endpoint_owner

        def rebind(target: str | None, current: str | None) -> bool:
            if not target:
                return False
            if target != current:
                return True
            return switch.rekey or (moved_owner and target.startswith("ipc://"))

        new_pub = rebind(new.pubsub_endpoint, old.pubsub_endpoint)
        new_ctl = rebind(new.endpoint, old.endpoint)
        new_stats = stats != old.stats_endpoint or rebind(stats, old.stats_endpoint)
        # A fixed tcp address bound again must be released by the old socket first. For the
        # control socket that waits until the reloadconfig being run has been answered
        # through it (releasing ends its connections): see _rebind_control.
        ctl_later = new_ctl and new.endpoint == old.endpoint
        ctl_later = ctl_later and not rebinds_in_place(new.endpoint)

        publisher: Publisher | None = None
        controller: Controller | None = None
        stats_pub: StatsPublisher | None = None
        running = {old.pubsub_endpoint, old.endpoint, old.stats_endpoint}
        undo: list[Callable[[], Any]] = []
        in_place = partial(_in_place, running, old.endpoint_owner, undo)
        switch.stage()
        undo.append(switch.undo)
        try:
            order = [("pub", new.pubsub_endpoint), ("ctl", new.endpoint), ("stats", stats)]
            # binding an endpoint again takes it over from the old socket: those binds go last
            order.sort(key=lambda item: item[1] in running)
            for channel, endpoint in order:
                if channel == "pub" and new_pub:
                    publisher = in_place(
                        endpoint,
                        self.publisher,
                        lambda: Publisher(
                            context, new.pubsub_endpoint, owner, self._may_read_output
                        ),
                    )
                    undo.append(publisher.close)
                elif channel == "ctl" and new_ctl and not ctl_later:
                    controller = Controller(self._commands, self.context, new.endpoint)
                    in_place(endpoint, self.controller, partial(controller.bind, owner))
                    undo.append(controller.close)
                elif channel == "stats" and new_stats and stats:
                    stats_pub = in_place(
                        endpoint, self.stats, lambda: self._new_stats(stats, owner)
                    )
                    undo.append(stats_pub.close)
        except BaseException:
            for step in reversed(undo):
                try:
                    step()
                except Exception as exc:  # pragma: no cover - a rebind of our own address
                    log.error("reload: undoing a step failed: %s", exc)
            raise

        # commit: nothing below refuses
        self.curve_server, self._curve_idle = switch.commit()
        changed = publisher is not None or new_ctl
        multicast = new.multicast_endpoint
        rediscover = multicast != old.multicast_endpoint or (changed and bool(multicast))
        self.settings = replace(old, **_channel_fields(new))
        if publisher is not None:
            old_pub, self.publisher = self.publisher, publisher
            if old_pub is not None:
                old_pub.close()
        if controller is not None:
            controller.start()
            old_ctl, self.controller = self.controller, controller
            if old_ctl is not None:
                self._retiring.add(old_ctl)
                self._spawn(self._retire(old_ctl))
        elif ctl_later:
            self._spawn(self._rebind_control(self.controller, new.endpoint, owner))
        if new_stats:
            if self.stats is not None:
                self.stats.close()
            self.stats = stats_pub
            if stats_pub is not None:
                stats_pub.start()
        return Moved(changed, switch.rekey, rediscover)

    async def restart_discovery(self) -> None:
        """(Re)join the discovery group of the current settings, answering with the current
        control endpoint (none: discovery stops)."""
        if self.discovery is not None:
            self.discovery.close()
            self.discovery = None
        if self.settings.multicast_endpoint:
            from ._discovery import Discovery

            self.discovery = await Discovery.create(
                self.settings.multicast_endpoint, self.settings.endpoint
            )

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
        controller = Controller(self._commands, self.context, endpoint)
        deadline = asyncio.get_running_loop().time() + 10.0
        while not self._closed:
            try:
                controller.bind(owner)
                break
            except ArbiterError as exc:
                if asyncio.get_running_loop().time() > deadline:
                    log.error("the control endpoint %s cannot be bound again: %s", endpoint, exc)
                    return
            await asyncio.sleep(0.01)
        if self._closed:
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

    # ------------------------------------------------------------------ helpers

    def _sync_context(self) -> zmq.Context[Any]:
        # Publisher, CURVE and stats use plain (non-asyncio) sockets of the same context.
        return zmq.Context.shadow(self.context.underlying)

    def _new_stats(self, endpoint: str, owner: str | None) -> StatsPublisher:
        from ._stats import StatsPublisher

        assert self._stats_source is not None
        return StatsPublisher(
            self._sync_context(), endpoint, self.settings.stats_interval, owner, self._stats_source
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _channel_fields(new: ArbiterSettings) -> dict[str, Any]:
    """The fields of ``new`` that :meth:`Channels.move` applies."""
    return {
        "endpoint": new.endpoint,
        "pubsub_endpoint": new.pubsub_endpoint,
        "stats_endpoint": new.stats_endpoint,
        "multicast_endpoint": new.multicast_endpoint,
        "endpoint_owner": new.endpoint_owner,
        "curve": new.curve,
    }


def _in_place(
    running: set[str | None],
    old_owner: str | None,
    undo: list[Callable[[], Any]],
    endpoint: str | None,
    holder: _Listener | None,
    bind: Callable[[], _T],
) -> _T:
    """``bind()`` the new socket of a channel on ``endpoint``; when ``holder`` (the running
    one) listens there, it gives the address up first (an ipc path or a wildcard port is
    simply taken over). ``undo`` gets the step that puts ``holder`` back (its own CURVE
    settings kept)."""
    from ._endpoints import bind_retrying, ipc_path, rebinds_in_place

    if endpoint not in running or holder is None or not holder.bound:
        return bind()
    if holder.endpoint != endpoint:
        return bind()  # another channel's address: its bind says whether that can be
    if rebinds_in_place(endpoint):
        if ipc_path(endpoint) is not None:  # bind() takes the path over
            undo.append(partial(holder.bind_again, old_owner))
        return bind()
    holder.release()
    undo.append(lambda: bind_retrying(partial(holder.bind_again, old_owner)))
    return bind_retrying(bind)

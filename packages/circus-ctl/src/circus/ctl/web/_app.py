"""Dashboard: the links to every daemon, the websocket hub and the metrics registry, served
as one tornado application."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import tornado.web
import zmq.asyncio

from ..keys import ClientCurve
from ._auth import AuthPolicy
from ._hosts import HostGuard
from ._hub import Hub
from ._link import DaemonLink
from ._metrics import make_registry
from ._state import DaemonState

__all__ = ["STATIC_DIR", "Dashboard"]

STATIC_DIR = Path(__file__).with_name("static")


class Dashboard:
    """Watch the daemons at ``endpoints`` and serve the page, the API, the websocket and
    ``/metrics`` for them.

    ``pubsub_endpoints`` (same order as ``endpoints``; None entries or a short list mean "ask
    the daemon with ``globaloptions``"). ``curve``: the key pair (and the daemon's public key)
    used with every daemon that requires CURVE. ``allowed_hosts``: more names (``name`` or
    ``name:port``) the page may be requested under, besides the address it is reached on
    and ``localhost``, ``127.0.0.1``, ``[::1]`` with its port (see :mod:`._hosts`). Call
    :meth:`start` on a running loop, serve :meth:`application`, and :meth:`close` when done.

    Raises:
        ValueError: no endpoint.
        WebError: an ``allowed_hosts`` entry is not a host name or address.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        pubsub_endpoints: Sequence[str | None] = (),
        interval: float = 1.0,
        timeout: float = 2.0,
        action_timeout: float = 60.0,
        auth: AuthPolicy | None = None,
        curve: ClientCurve | None = None,
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        if not endpoints:
            raise ValueError("the dashboard needs at least one daemon endpoint")
        self.host_guard = HostGuard.allowing(allowed_hosts)
        self.auth = auth or AuthPolicy()
        self.hub = Hub()
        self.interval = interval
        self._context = zmq.asyncio.Context()
        pubsubs = list(pubsub_endpoints) + [None] * (len(endpoints) - len(pubsub_endpoints))
        self.links = [
            DaemonLink(
                index,
                endpoint,
                self.hub.publish,
                pubsub_endpoint=pubsub,
                interval=interval,
                timeout=timeout,
                action_timeout=action_timeout,
                context=self._context,
                curve=curve,
            )
            for index, (endpoint, pubsub) in enumerate(zip(endpoints, pubsubs, strict=False))
        ]
        self.registry = make_registry(self.states)
        self._tasks: list[asyncio.Task[None]] = []

    def states(self) -> list[DaemonState]:
        """The current snapshot of every daemon, in ``endpoints`` order."""
        return [link.state for link in self.links]

    def link(self, index: int) -> DaemonLink:
        """The link to daemon number ``index``.

        Raises:
            KeyError: no such daemon.
        """
        if not 0 <= index < len(self.links):
            raise KeyError(f"no daemon number {index} (there are {len(self.links)})")
        return self.links[index]

    def start(self) -> None:
        """Start polling every daemon (on the running asyncio loop)."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(link.run()) for link in self.links]

    async def close(self) -> None:
        """Stop polling and close every socket."""
        for link in self.links:
            link.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []
        # Let the links' cancelled consumer tasks run their cleanup before the context ends.
        await asyncio.sleep(0)
        self._context.term()

    def application(self, **settings: Any) -> tornado.web.Application:
        """The tornado application serving this dashboard: it answers only requests whose
        ``Host`` names it (421 otherwise) and puts the security headers on every response."""
        from ._handlers import routes
        from ._secure import GuardedApplication

        return GuardedApplication(
            routes(),
            dashboard=self,
            host_guard=self.host_guard,
            cookie_secret=self.auth.cookie_secret,
            static_path=str(STATIC_DIR),
            websocket_ping_interval=20,
            **settings,
        )

"""``CircusPlugin``: the base class of plugins, with upstream's interface.

A plugin is a client of the daemon like any other: a DEALER connected to the control endpoint
(:meth:`call` waits for the answer, :meth:`cast` does not) and a SUB connected to the pub/sub
endpoint, subscribed to ``watcher.`` events, whose messages go to :meth:`handle_recv`.
:meth:`handle_init` runs before the loop starts, :meth:`handle_stop` when it stops.

How they run, as upstream: circusd makes each ``[plugin:NAME]`` a ``plugin:NAME`` singleton
watcher whose process is ``circus-plugin``; there the plugin runs on its own thread with its
own event loop (``self.loop`` is that thread's tornado ``IOLoop``), so a blocking :meth:`call`
never holds up the plugin's signal handling.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import zmq
from circus.watcher import parse_bool
from tornado.ioloop import IOLoop, PeriodicCallback
from zmq.eventloop.zmqstream import ZMQStream

__all__ = ["CircusPlugin", "to_bool"]

log = logging.getLogger("circus.plugins")


def to_bool(value: Any) -> bool:
    """A config value (string from the INI file, or a bool) as a boolean, read by the daemon's
    one boolean parser (``circus.watcher.parse_bool``); anything that is not a boolean is
    false."""
    try:
        return parse_bool(value)
    except ValueError:
        return False


class CircusPlugin:
    """Base class of Circus plugins (upstream-compatible constructor and methods).

    Args:
        endpoint: the daemon's control endpoint.
        pubsub_endpoint: the daemon's events endpoint.
        check_delay: kept for compatibility (plugins used it as a polling period).
        ssh_server: kept for compatibility; tunnelling is not supported.
        **config: the ``[plugin:NAME]`` options, as strings.
    """

    name = ""
    call_timeout = 10.0

    def __init__(
        self,
        endpoint: str,
        pubsub_endpoint: str,
        check_delay: float = 1.0,
        ssh_server: str | None = None,
        **config: Any,
    ) -> None:
        self.daemon = True
        self.config = config
        self.active = to_bool(config.get("active", True))
        self.endpoint = endpoint
        self.pubsub_endpoint = pubsub_endpoint
        self.check_delay = check_delay
        self.ssh_server = ssh_server
        self.context = zmq.Context()
        self._id = uuid.uuid4().hex.encode()
        self.running = False
        self.loop: IOLoop | None = None
        self.client: zmq.Socket[Any] | None = None
        self.sub_socket: zmq.Socket[Any] | None = None
        self.substream: ZMQStream | None = None
        self._periodics: list[PeriodicCallback] = []
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def initialize(self) -> None:
        """Create the DEALER and SUB sockets on the current loop."""
        from .._curve import client_curve_for

        self.client = self.context.socket(zmq.DEALER)
        self.client.setsockopt(zmq.IDENTITY, self._id)
        self.client.linger = 0
        curve = client_curve_for(self.endpoint)  # circusd's own keys when CURVE is on
        if curve is not None:
            curve.apply(self.client)
        self.client.connect(self.endpoint)
        self.sub_socket = self.context.socket(zmq.SUB)
        self.sub_socket.linger = 0
        self.sub_socket.setsockopt(zmq.SUBSCRIBE, b"watcher.")
        curve = client_curve_for(self.pubsub_endpoint)
        if curve is not None:
            curve.apply(self.sub_socket)
        self.sub_socket.connect(self.pubsub_endpoint)
        self.substream = ZMQStream(self.sub_socket, self.loop)
        self.substream.on_recv(self._dispatch)

    def start(self) -> None:
        """Initialise and run the plugin's loop until :meth:`stop` (blocking)."""
        if not self.active:
            raise ValueError(f"plugin {self.name or type(self).__name__} is not active")
        self.loop = IOLoop.current()
        self.handle_init()
        self.initialize()
        self.running = True
        self.loop.start()

    def stop(self) -> None:
        """Stop the loop; :meth:`handle_stop` runs first."""
        if not self.running:
            return
        self.running = False
        try:
            self.handle_stop()
        finally:
            for periodic in self._periodics:
                periodic.stop()
            if self.loop is not None:
                self.loop.stop()

    def close(self) -> None:
        """Release the sockets and the context (after the loop has stopped)."""
        if self.substream is not None:
            self.substream.close()
            self.substream = None
            self.sub_socket = None
        for sock in (self.sub_socket, self.client):
            if sock is not None:
                sock.close(linger=0)
        self.sub_socket = self.client = None
        self.context.term()

    def periodic(self, callback: Callable[[], Any], seconds: float) -> PeriodicCallback:
        """Run ``callback`` every ``seconds`` on the plugin's loop (stopped with the plugin)."""
        periodic = PeriodicCallback(callback, max(seconds, 0.001) * 1000)
        self._periodics.append(periodic)
        periodic.start()
        return periodic

    # -- talking to the daemon -----------------------------------------------------------------

    def call(self, command: str, **props: Any) -> dict[str, Any]:
        """Send a command and wait for its answer (blocks this plugin's thread only).

        Raises:
            TimeoutError: no answer within ``call_timeout`` seconds.
        """
        assert self.client is not None, "call() before initialize()"
        msg_id = uuid.uuid4().hex
        message = {"command": command, "properties": props, "id": msg_id}
        with self._lock:
            self.client.send(json.dumps(message).encode())
            while True:
                if not self.client.poll(int(self.call_timeout * 1000)):
                    raise TimeoutError(f"no answer to {command!r} from {self.endpoint}")
                answer = json.loads(self.client.recv())
                if isinstance(answer, dict) and answer.get("id") == msg_id:
                    return answer

    def cast(self, command: str, **props: Any) -> None:
        """Send a command the daemon runs without answering."""
        assert self.client is not None, "cast() before initialize()"
        message = {"command": command, "properties": props, "msg_type": "cast"}
        with self._lock:
            self.client.send(json.dumps(message).encode())

    # -- hooks for subclasses --------------------------------------------------------------------

    def _dispatch(self, data: list[bytes]) -> None:
        try:
            self.handle_recv(data)
        except Exception:
            log.exception("plugin %s failed on %r", self.name or type(self).__name__, data[:1])

    def handle_recv(self, data: list[bytes]) -> None:
        """An event ``[topic, json]`` arrived; subclasses must implement it."""
        raise NotImplementedError

    def handle_stop(self) -> None:
        """Called when the plugin stops."""

    def handle_init(self) -> None:
        """Called before the sockets exist and the loop runs."""

    # -- helpers (upstream's static methods) ------------------------------------------------------

    @staticmethod
    def split_data(data: list[bytes]) -> tuple[str, str, bytes]:
        """``(watcher, event, payload)`` of an event; splits on the last dot, so watcher
        names containing dots survive (upstream split on every dot)."""
        topic, msg = data[0], data[1]
        text = topic.decode("utf-8", "replace")
        _, _, rest = text.partition(".")
        watcher, _, event = rest.rpartition(".")
        return watcher, event, msg

    @staticmethod
    def load_message(msg: bytes) -> Any:
        """The decoded JSON payload of an event."""
        return json.loads(msg)

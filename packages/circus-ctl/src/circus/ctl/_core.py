"""Transport-independent logic shared by the sync and async clients.

Both clients do the same things around a DEALER socket: build a request, wait for the frame
whose ``id`` matches (skipping stale answers to earlier, timed-out requests), turn an error
answer into :class:`~circus.ctl.errors.CallError`, and tell "nobody is listening" apart from
"connected but no answer". Keeping that here means the two clients cannot drift.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

import zmq

from . import protocol
from .errors import CallError, CallTimeout, DaemonUnreachable, ProtocolError

# A client made just before its daemon binds (a script starting both, a test) keeps waiting
# this long for it; refusals that go on past it fail the call at once, not at its timeout.
REFUSED_GRACE = 1.0

# Connection-state events we follow on the socket monitor; HANDSHAKE_SUCCEEDED is what
# proves a ZMTP peer (a real daemon) answered, not just a TCP accept.
MONITOR_EVENTS = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_CONNECT_RETRIED
)


def build_message(
    command: str | Mapping[str, Any], properties: Mapping[str, Any] | None, props: Mapping[str, Any]
) -> dict[str, Any]:
    """Turn the arguments of ``call()`` into a request object with an id.

    ``command`` is a command name, or (as with 0.19's ``CircusClient.call``) a whole message
    object or its JSON text.
    """
    if isinstance(command, str) and command.lstrip().startswith("{"):
        command = json.loads(command)
    if isinstance(command, Mapping):
        message = dict(command)
        if properties or props:
            merged = dict(message.get("properties") or {})
            merged.update(properties or {})
            merged.update(props)
            message["properties"] = merged
        message.setdefault("properties", {})
        if message.get("id") is None:
            message["id"] = protocol.new_id()
        return message
    merged = dict(properties or {})
    merged.update(props)
    return protocol.make_request(command, merged)


def match_answer(frame: bytes, request_id: Any) -> dict[str, Any] | None:
    """Return the decoded answer if ``frame`` answers ``request_id``, else None.

    Frames that are not JSON, or answer another id, are stale answers to earlier requests
    and are skipped rather than failing the call.
    """
    try:
        answer = protocol.decode_answer(frame)
    except ProtocolError:
        return None
    if answer.get("id") != request_id:
        return None
    return answer


def decode_any_answer(frame: bytes) -> dict[str, Any] | None:
    """Decode an answer frame, or return None for a frame that is not an answer."""
    try:
        return protocol.decode_answer(frame)
    except ProtocolError:
        return None


def check_answer(answer: dict[str, Any], check: bool) -> dict[str, Any]:
    """Raise CallError for an error answer when ``check`` is set; return the answer."""
    if check and answer.get("status") == "error":
        raise CallError(answer)
    return answer


def ipc_problem(endpoint: str) -> str:
    """Explain why an ``ipc://`` endpoint cannot work, or return '' if it might."""
    if not endpoint.startswith("ipc://"):
        return ""
    path = endpoint[len("ipc://") :]
    if path.startswith("@"):  # abstract namespace: nothing on disk to check
        return ""
    if not os.path.exists(path):
        return f"{path} does not exist (is circusd running with this endpoint?)"
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except ConnectionRefusedError:
        return f"nothing listens on {path} (a stale socket file left by a dead circusd?)"
    except OSError as exc:
        return f"cannot connect to {path}: {exc.strerror or exc}"
    finally:
        probe.close()
    return ""


def no_answer_error(
    endpoint: str,
    timeout: float,
    command: str,
    connected: bool,
    refused: bool = False,
    rejected: bool = False,
    transport: bool = False,
    auth_failed: bool = False,
) -> DaemonUnreachable | CallTimeout:
    """Pick the error for a call that got no answer.

    A refused handshake (``rejected``, ``auth_failed``) ends the call as soon as it is seen,
    so its message says what happened and claims no waiting; the others came after the whole
    ``timeout`` and say so.
    """
    if connected:
        return CallTimeout(endpoint, timeout, command)
    if auth_failed:
        return _refused(
            endpoint,
            timeout,
            f"circusd on {endpoint} refused our CURVE key (is its public .key file in "
            "circusd's curve_authorized_keys directory?)",
        )
    if rejected:
        return _refused(
            endpoint,
            timeout,
            f"{endpoint} refused our ZeroMQ handshake: something listens there but it is not "
            "a circusd control socket (is it the pub/sub or stats endpoint? or does circusd "
            "require CURVE: --curve-key/--curve-server-key, curve_key/curve_server_key?)",
        )
    if transport:
        detail = "a connection was made but no ZeroMQ handshake came back (not a circusd?)"
    else:
        detail = ipc_problem(endpoint)
        if not detail and refused and not endpoint.startswith("ipc://"):
            detail = "connection refused: nothing listens on that address"
    return DaemonUnreachable(endpoint, timeout, detail)


def _refused(endpoint: str, timeout: float, message: str) -> DaemonUnreachable:
    # DaemonUnreachable's own text says "(waited <timeout>s)", untrue for a handshake refused
    # at once; same class and attributes, only the message differs.
    error = DaemonUnreachable(endpoint, timeout)
    error.args = (message,)
    return error


def pending(socket: zmq.Socket[Any]) -> bool:
    """True when ``socket`` has a message waiting (sync or asyncio socket; never blocks)."""
    events = socket.get(zmq.EVENTS)
    return isinstance(events, int) and bool(events & zmq.POLLIN)


def configure_dealer(socket: zmq.Socket[Any]) -> None:
    """Apply the options 0.19's circusctl uses: a uuid4-hex identity and LINGER=0."""
    socket.setsockopt(zmq.IDENTITY, protocol.new_id().encode("ascii"))
    socket.setsockopt(zmq.LINGER, 0)


def ssh_tunnel_library() -> str | None:
    """Return the SSH library zmq.ssh would use (paramiko or pexpect), or None if neither."""
    import importlib.util

    for name in ("paramiko", "pexpect"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


def connect(
    socket: zmq.Socket[Any], endpoint: str, ssh_server: str | None, ssh_keyfile: str | None
) -> None:
    """Connect ``socket`` to ``endpoint``, through an SSH tunnel when ``ssh_server`` is set.

    Raises:
        CtlError: if an SSH tunnel is asked for but neither paramiko nor pexpect is installed.
    """
    if not ssh_server:
        socket.connect(endpoint)
        return
    from .errors import CtlError

    if ssh_tunnel_library() is None:
        raise CtlError(
            "--ssh needs paramiko or pexpect (used by zmq.ssh) and neither is installed: "
            "pip install paramiko"
        )
    from zmq import ssh

    # pyzmq's stub says a stdlib socket.socket; the function takes (and we pass) a zmq socket.
    ssh.tunnel_connection(socket, endpoint, ssh_server, keyfile=ssh_keyfile)  # type: ignore[call-overload]


class ConnectionState:
    """What the socket monitor has told us about the connection to the daemon.

    ``connected``: a ZeroMQ peer of a compatible type completed the handshake. ``rejected``:
    a transport connection was made but the handshake failed or was dropped (a PUB socket or
    a non-ZeroMQ server on that address). ``refused``: connection attempts were refused.
    ``transport``: a transport connection was made at some point. ``refused_late``:
    attempts were still refused :data:`REFUSED_GRACE` seconds after the client connected.
    """

    def __init__(self) -> None:
        self._since = time.monotonic()
        self.connected = False
        self.refused = False
        self.refused_late = False
        self.rejected = False
        self.transport = False
        self.auth_failed = False

    def update(self, event: Mapping[str, Any]) -> None:
        """Fold one monitor event in."""
        kind = event.get("event")
        if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.connected, self.refused, self.rejected = True, False, False
        elif kind == zmq.EVENT_CONNECTED:
            self.refused, self.refused_late, self.transport = False, False, True
        elif kind in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
            self.rejected = True
        elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self.rejected = self.auth_failed = True
        elif kind == zmq.EVENT_DISCONNECTED:
            if not self.connected:
                self.rejected = True
            self.connected = False
        elif kind == zmq.EVENT_CONNECT_RETRIED and not self.connected:
            self.refused = True
            if time.monotonic() - self._since >= REFUSED_GRACE:
                self.refused_late = True

    @property
    def wrong_peer(self) -> bool:
        """True when what listens on the endpoint refused our handshake (not a circusd)."""
        return self.rejected and not self.connected

    @property
    def never_reached(self) -> bool:
        """True when nothing ever accepted a connection and attempts were still refused past
        the grace (a tcp port nobody listens on, an ipc path without a live socket)."""
        return self.refused_late and not self.transport and not self.connected

    @property
    def give_up(self) -> bool:
        """True when waiting out the timeout cannot help: fail the call now.

        A client that was connected once keeps waiting when its daemon goes away (it may be
        restarting); one that never reached anything fails at the first refusal past
        :data:`REFUSED_GRACE`. Fold in every pending monitor event before asking: a queued
        refusal may be followed by the connection that ended it.
        """
        return self.wrong_peer or self.never_reached

    def error(self, endpoint: str, timeout: float, command: str) -> DaemonUnreachable | CallTimeout:
        """The error for a call that got no answer in time (or that :attr:`give_up`)."""
        if self.never_reached and not self.wrong_peer:
            detail = ipc_problem(endpoint) or "nothing listens on that address"
            return _refused(endpoint, timeout, f"connection refused: {endpoint}: {detail}")
        return no_answer_error(
            endpoint,
            timeout,
            command,
            self.connected,
            self.refused,
            self.rejected,
            self.transport,
            self.auth_failed,
        )

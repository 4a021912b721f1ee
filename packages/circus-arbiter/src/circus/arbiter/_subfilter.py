"""Which subscribers of a loopback tcp pub/sub endpoint get ``output.*``.

A watcher's output lines are what the kernel keeps from other users (a pipe), and the
control channel shows them only to peers with the operate right (``logs``). A PUB socket
sends to whoever subscribed, so on an ipc endpoint the socket file's mode decides; on tcp
anybody local can connect. There, the events socket runs in ZeroMQ's *manual* XPUB mode
(``ZMQ_XPUB_MANUAL``): a subscription takes effect only when circusd applies it, to the
connection it came from. :class:`SubscriptionFilter` judges each connection when its first
subscription is read:

* the connection is the one the subscription came in on (its descriptor, ``SRCFD``, still
  connected to our port from the address libzmq recorded), and its client socket's owner is
  found as for a control message (``_peers.tcp_owner_uid``: one ``sock_diag`` request);
* a peer the policy lets read output (:func:`._secretreads.may_read_secrets`: admin on tcp,
  ``endpoint_owner``, ``unauthenticated_access = operate`` or ``full``) gets what it asked;
* any other peer (another uid, an unknown one, a connection gone or not ours) gets its
  subscription without ``output.``: a prefix under ``output.`` is not applied, and a shorter
  one (``""``, ``"out"``, ...) is applied as the prefixes that branch off ``output.`` at each
  byte (at most 7 x 255 of them, about a millisecond, shared by all connections in libzmq's
  trie). Every other topic reaches it as before.

A connection is judged once (until its descriptor serves another connection): a policy
made stricter by ``reloadconfig`` applies to subscriptions made after it. The judgment of a
connection gone before its subscription is read does not matter: nothing reaches a closed
connection, and its descriptor number serves only connections made after it.

The filter also counts the prefixes subscribers asked for (what the publisher's
``wanted`` reads): libzmq passes every subscription in manual mode (the same one twice from
a connection, too) and one cancellation per prefix a connection held, whether it cancels or
goes away; a connection's repeated subscription is counted once, and a count that would
fall to zero is checked against the connections still there (``_drop``: never too few,
which would starve a follower). A read-only subscriber's
``""`` counts as wanting output (the message is encoded; ZeroMQ sends it to nobody).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import zmq

from ._peers import PeerIdentity, tcp_fd_ends, tcp_owner_uid

__all__ = ["OUTPUT_PREFIX", "SubscriptionFilter", "without_output"]

log = logging.getLogger("circus.arbiter")

OUTPUT_PREFIX = b"output."
_SUBSCRIBE = int(zmq.SUBSCRIBE)
_UNSUBSCRIBE = int(zmq.UNSUBSCRIBE)
_SRCFD = int(zmq.SRCFD)
_BRANCHES: dict[int, tuple[bytes, ...]] = {}


def without_output(prefix: bytes) -> tuple[bytes, ...]:
    """The prefixes that match what ``prefix`` matches except topics under ``output.``."""
    if prefix.startswith(OUTPUT_PREFIX):
        return ()
    if not OUTPUT_PREFIX.startswith(prefix):
        return (prefix,)
    depth = len(prefix)
    branches = _BRANCHES.get(depth)
    if branches is None:
        branches = _BRANCHES[depth] = tuple(
            OUTPUT_PREFIX[:k] + bytes((byte,))
            for k in range(depth, len(OUTPUT_PREFIX))
            for byte in range(256)
            if byte != OUTPUT_PREFIX[k]
        )
    return branches


class _Connection:
    __slots__ = ("peer", "full", "prefixes")

    def __init__(self, peer: tuple[str, int], full: bool) -> None:
        self.peer = peer
        self.full = full
        self.prefixes: set[bytes] = set()


class SubscriptionFilter:
    """Applies the subscriptions a manual-mode XPUB socket reads (see the module's docstring).

    Args:
        port: the tcp port the socket listens on now, ``None`` when unknown; asked for each
            new connection (an endpoint bound again may listen elsewhere). A descriptor
            connected elsewhere is not one of its connections.
        may_read_output: whether a peer may get ``output.*``.
        wanted: the set of prefixes somebody asked for, kept up to date in place.
    """

    def __init__(
        self,
        port: Callable[[], int | None],
        may_read_output: Callable[[PeerIdentity], bool],
        wanted: set[bytes],
    ) -> None:
        self.port = port
        self._judge = may_read_output
        self._wanted = wanted
        self._counts: dict[bytes, int] = {}
        self._connections: dict[int, _Connection] = {}
        self._holders: dict[bytes, set[int]] = {}  # prefix -> descriptors said to hold it

    def notice(self, sock: zmq.Socket[Any], frame: zmq.Frame) -> None:
        """Handle one message read from the socket (right after the read: libzmq applies a
        subscription to the connection the last message came from)."""
        data = frame.bytes
        if not data or data[0] > 1:
            return  # not a subscription message
        subscribe, prefix = data[0] == 1, data[1:]
        fd = _srcfd(frame)
        if fd is None:
            if not subscribe:  # a connection that went away: libzmq removed its prefixes
                self._drop(prefix)
            return
        conn = self._connection(fd, frame)
        if subscribe:
            if conn is None:
                self._count(prefix, 1)  # gone already: its cancellation follows
                return
            if prefix not in conn.prefixes:
                conn.prefixes.add(prefix)
                self._holders.setdefault(prefix, set()).add(fd)
                self._count(prefix, 1)
            option = _SUBSCRIBE
        else:
            if conn is not None:
                conn.prefixes.discard(prefix)
                self._holders.get(prefix, set()).discard(fd)
            self._drop(prefix)
            if conn is None:
                return
            option = _UNSUBSCRIBE
        for applied in (prefix,) if conn.full else without_output(prefix):
            sock.setsockopt(option, applied)

    def _drop(self, prefix: bytes) -> None:
        """One connection no longer holds ``prefix``. Which one is not always said (a
        connection that went away), and a subscription read after its connection had gone,
        when the descriptor served a newer one, was counted for that newer one (whose own
        repeat was then not counted): so before ``prefix`` is taken for unwanted, the
        connections said to hold it are asked whether they are still there. Never too few
        (which would starve a follower); one too many at worst, until that connection goes."""
        count = self._counts.get(prefix, 0) - 1
        if count <= 0:
            holders = self._holders.get(prefix, set())
            for fd in list(holders):
                conn = self._connections.get(fd)
                if conn is None or not self._serves(fd, conn):
                    holders.discard(fd)
                    if conn is not None:
                        conn.prefixes.discard(prefix)
            count = len(holders)
            if not holders:
                self._holders.pop(prefix, None)
        self._count(prefix, count - self._counts.get(prefix, 0))

    def _serves(self, fd: int, conn: _Connection) -> bool:
        ends = tcp_fd_ends(fd)
        return ends is not None and ends[0] == conn.peer

    def _count(self, prefix: bytes, step: int) -> None:
        count = self._counts.get(prefix, 0) + step
        if count > 0:
            self._counts[prefix] = count
            self._wanted.add(prefix)
        else:
            self._counts.pop(prefix, None)
            self._wanted.discard(prefix)

    def _connection(self, fd: int, frame: zmq.Frame) -> _Connection | None:
        ends = tcp_fd_ends(fd)
        if ends is None:
            return None
        peer, local = ends
        port = self.port()
        if port is not None and local[1] != port:
            return None  # the descriptor now serves something else: ours is gone
        recorded = _peer_address(frame)
        if recorded is not None and _plain(recorded) != _plain(peer[0]):
            return None
        conn = self._connections.get(fd)
        if conn is not None and conn.peer == peer:
            return conn
        if conn is not None:  # the descriptor serves a newer connection
            for prefix in conn.prefixes:
                holders = self._holders.get(prefix)
                if holders is not None:
                    holders.discard(fd)
        uid = tcp_owner_uid(peer, local)
        who = PeerIdentity("tcp", uid=uid, address=f"{peer[0]}:{peer[1]}")
        try:
            full = bool(self._judge(who))
        except Exception:  # never stop publishing: a peer that cannot be judged reads no output
            log.exception("pub/sub: cannot judge %s; no output.* for it", who.describe())
            full = False
        conn = self._connections[fd] = _Connection(peer, full)
        return conn


def _srcfd(frame: zmq.Frame) -> int | None:
    try:
        fd = frame.get(_SRCFD)
    except zmq.ZMQError:  # no metadata: libzmq's own cancellation of a closed connection
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


def _peer_address(frame: zmq.Frame) -> str | None:
    try:
        value = frame.get("Peer-Address")
    except zmq.ZMQError:
        return None
    return value if isinstance(value, str) else None


def _plain(ip: str) -> str:
    ip = ip.strip("[]")
    return ip[len("::ffff:") :] if ip.startswith("::ffff:") and "." in ip else ip

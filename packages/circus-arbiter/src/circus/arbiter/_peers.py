"""Who sent a control message, as the kernel (or CURVE) tells it.

A :class:`MessagePeer` wraps the received frame and finds out on first use only, so read-only
commands never pay for it:

* **CURVE**: a message on a CURVE server socket carries the ``User-Id`` the ZAP handler gave
  the client's key (its z85 text); ZAP already refused every key not authorized.
* **ipc**: the peer's uid/gid/pid. libzmq records them with ``SO_PEERCRED`` when the
  connection is accepted and hands them over with each message (``Peer-Address``
  ``localhost:UID:GID:PID``). When the connection's fd (``SRCFD``) is still a unix socket,
  ``SO_PEERCRED`` is asked again and must agree: that fd number may meanwhile belong to
  another connection, so the record made at accept time is the one trusted.
* **loopback tcp**: the connection's two ends (``getpeername``/``getsockname`` on the fd the
  message came in on), then the client's own socket (local address = our peer, remote = us)
  as the kernel lists it: its owner's uid is the user who opened it (the ident technique,
  without a network round trip). The socket is looked up by its four addresses with one
  ``sock_diag`` netlink request (~20 us); only where netlink is unavailable is
  ``/proc/net/tcp`` (or ``tcp6``) read instead, which the kernel builds by walking every
  socket of the host (15 ms with 6,000 of them). Only sockets still held by a process and
  connected (established or closing) count: a closed socket is listed as uid 0.
* anything else (a non-loopback client, a lookup that fails): the peer is unknown.

Nothing is cached beyond the one message. Only the standard library and pyzmq's frame
accessors are used; ``ipaddress`` is not loaded.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any

__all__ = [
    "IN_PROCESS",
    "MessagePeer",
    "PeerIdentity",
    "find_tcp_owner",
    "parse_ipc_address",
    "tcp_fd_ends",
    "tcp_owner_uid",
]

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid

# sock_diag (linux/sock_diag.h, linux/inet_diag.h)
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_DIAG_REQ = struct.Struct("=BBBBI")  # family, protocol, ext, pad, states
_DIAG_PORTS = struct.Struct("!HH")  # sport, dport (network order)
_DIAG_TAIL = struct.Struct("=III")  # interface, cookie (INET_DIAG_NOCOOKIE: all ones)
_DIAG_MSG_HEAD = struct.Struct("=BBBB")  # family, state, timer, retrans
_DIAG_MSG_REST = struct.Struct("=IIIII")  # expires, rqueue, wqueue, uid, inode
_DIAG_STATES = {1, 4, 5, 8, 9, 11}  # ESTABLISHED, FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING
_UNAVAILABLE = object()
# /proc/net/tcp states of a connected socket that has carried data (ESTABLISHED and the
# closing states). TIME_WAIT (06) and request sockets (0C) list uid 0 whoever opened them.
_OWNED_STATES = {"01", "04", "05", "08", "09", "0B"}


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """What is known of a peer. ``uid`` ``None`` and no ``key``: unknown.

    ``via``: ``"ipc"``, ``"tcp"``, ``"curve"``, or ``"in-process"`` (a caller inside circusd,
    such as :meth:`Controller.dispatch` without a peer).
    """

    via: str
    uid: int | None = None
    gid: int | None = None
    pid: int | None = None
    key: str | None = None
    address: str | None = None

    def describe(self) -> str:
        """A short text for answers and logs, e.g. ``uid 65534 (nobody) on ipc, pid 42``."""
        if self.via == "in-process":
            return "circusd itself"
        if self.key is not None:
            return f"CURVE key {self.key}"
        where = self.via if self.address is None else f"{self.via} {self.address}"
        if self.uid is None:
            return f"an unknown peer on {where}"
        text = f"uid {self.uid}{_user_name(self.uid)} on {where}"
        return text if self.pid is None else f"{text}, pid {self.pid}"


IN_PROCESS = PeerIdentity("in-process")


def _user_name(uid: int) -> str:
    import pwd

    try:
        return f" ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return ""


class MessagePeer:
    """The sender of one received control message; :meth:`identity` asks on first use.

    Args:
        frame: a frame of the message (received with ``copy=False``).
        transport: the endpoint's transport (``ipc``, ``tcp``, ...).
        curve: the socket is a CURVE server.
        port: for tcp, the port our socket listens on (a connection whose local port differs
            came in elsewhere: its fd number was reused).
    """

    __slots__ = ("_frame", "_transport", "_curve", "_port", "_identity")

    def __init__(self, frame: Any, transport: str, curve: bool, port: int | None) -> None:
        self._frame = frame
        self._transport = transport
        self._curve = curve
        self._port = port
        self._identity: PeerIdentity | None = None

    def identity(self) -> PeerIdentity:
        """Who sent the message (resolved once)."""
        if self._identity is None:
            self._identity = self._resolve()
            self._frame = None  # the frame's metadata is no longer needed
        return self._identity

    def _resolve(self) -> PeerIdentity:
        frame = self._frame
        if self._curve:
            # only trusted on a CURVE socket: without ZAP a client can send a User-Id itself
            key = _property(frame, "User-Id")
            if key:
                return PeerIdentity("curve", key=key)
        if self._transport == "ipc":
            return _ipc_identity(frame)
        if self._transport == "tcp":
            return _tcp_identity(frame, self._port)
        return PeerIdentity(self._transport)


def _property(frame: Any, name: str) -> str | None:
    try:
        value = frame.get(name)
    except Exception:  # zmq.ZMQError: no such property on this message
        return None
    return value if isinstance(value, str) else None


def _srcfd(frame: Any) -> int | None:
    import zmq

    try:
        fd = frame.get(zmq.SRCFD)
    except Exception:  # a libzmq without SRCFD, or none for this message
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


def parse_ipc_address(text: str | None) -> tuple[int, int, int] | None:
    """``(uid, gid, pid)`` from libzmq's ipc ``Peer-Address`` ``localhost:UID:GID:PID``."""
    if not text:
        return None
    parts = text.split(":")
    if len(parts) != 4 or parts[0] != "localhost" or not all(p.isdigit() for p in parts[1:]):
        return None
    return int(parts[1]), int(parts[2]), int(parts[3])


def _dup_socket(fd: int) -> socket.socket | None:
    try:
        copy = os.dup(fd)
    except OSError:
        return None
    try:
        return socket.socket(fileno=copy)
    except OSError:  # not a socket (any more)
        os.close(copy)
        return None


def _peercred(fd: int) -> tuple[int, int, int] | None:
    """``(uid, gid, pid)`` of the unix socket ``fd``'s peer, or ``None``."""
    sock = _dup_socket(fd)
    if sock is None:
        return None
    with sock:
        if sock.family != socket.AF_UNIX:
            return None
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        except OSError:
            return None
    pid, uid, gid = _PEERCRED.unpack(raw)
    return uid, gid, pid


def _ipc_identity(frame: Any) -> PeerIdentity:
    recorded = parse_ipc_address(_property(frame, "Peer-Address"))
    fd = _srcfd(frame)
    asked = _peercred(fd) if fd is not None else None
    if recorded is not None and asked is not None and recorded[0] != asked[0]:
        return PeerIdentity("ipc")  # the fd now belongs to another connection
    found = recorded or asked
    if found is None:
        return PeerIdentity("ipc")
    uid, gid, pid = found
    return PeerIdentity("ipc", uid=uid, gid=gid, pid=pid)


def tcp_fd_ends(fd: int) -> tuple[tuple[str, int], tuple[str, int]] | None:
    """``(peer, local)`` (host, port) of the connected tcp socket ``fd``; ``None`` when
    ``fd`` is closed, not a tcp socket, or not connected."""
    sock = _dup_socket(fd)
    if sock is None:
        return None
    with sock:
        try:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                return None
            return sock.getpeername()[:2], sock.getsockname()[:2]
        except OSError:
            return None


def _tcp_identity(frame: Any, port: int | None) -> PeerIdentity:
    fd = _srcfd(frame)
    ends = tcp_fd_ends(fd) if fd is not None else None
    if ends is None:
        return PeerIdentity("tcp")
    peer, local = ends
    address = f"{peer[0]}:{peer[1]}"
    if port is not None and local[1] != port:
        return PeerIdentity("tcp", address=address)
    recorded = _property(frame, "Peer-Address")
    if recorded is not None and _plain_ip(recorded) != _plain_ip(peer[0]):
        return PeerIdentity("tcp", address=address)
    uid = tcp_owner_uid(peer, local)
    return PeerIdentity("tcp", uid=uid, address=address)


def _plain_ip(text: str) -> str:
    text = text.strip("[]")
    return text[len("::ffff:") :] if text.startswith("::ffff:") and "." in text else text


def _is_loopback(ip: str) -> bool:
    ip = _plain_ip(ip)
    return ip.startswith("127.") or ip == "::1"


def tcp_owner_uid(
    peer: tuple[str, int], local: tuple[str, int], proc: str = "/proc/net"
) -> int | None:
    """The uid owning the client socket of the loopback connection ``peer`` → ``local``.

    ``None`` unless both ends are loopback addresses and the client's socket is found in
    ``proc``'s ``tcp``/``tcp6`` tables, established and held by a process.
    """
    if not (_is_loopback(peer[0]) and _is_loopback(local[0])):
        return None
    found = _diag_owner(peer, local)
    if found is not _UNAVAILABLE:
        return found  # type: ignore[return-value]
    for table, peer_hex, local_hex in _encodings(peer[0], local[0]):
        try:
            with open(os.path.join(proc, table), encoding="ascii") as file:
                text = file.read()
        except OSError:
            continue
        uid = find_tcp_owner(text, f"{peer_hex}:{peer[1]:04X}", f"{local_hex}:{local[1]:04X}")
        if uid is not None:
            return uid
    return None


def _diag_owner(peer: tuple[str, int], local: tuple[str, int]) -> object:
    """The uid owning the socket whose local end is ``peer`` and remote end ``local``, asked
    with one exact ``SOCK_DIAG_BY_FAMILY`` request; ``None`` when there is none (or it is not
    held by a process); ``_UNAVAILABLE`` when netlink cannot answer."""
    src, dst = _plain_ip(peer[0]), _plain_ip(local[0])
    family = socket.AF_INET if "." in src and "." in dst else socket.AF_INET6
    try:
        sockid = (
            _DIAG_PORTS.pack(peer[1], local[1])
            + _diag_address(family, src)
            + _diag_address(family, dst)
            + _DIAG_TAIL.pack(0, 0xFFFFFFFF, 0xFFFFFFFF)
        )
    except OSError:
        return None
    body = _DIAG_REQ.pack(family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
    header = _NLMSG_HDR.pack(
        _NLMSG_HDR.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0
    )
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as link:
            link.settimeout(1.0)
            link.sendto(header + body, (0, 0))
            data = link.recv(8192)
    except OSError:
        return _UNAVAILABLE
    if len(data) < _NLMSG_HDR.size + 4:
        return _UNAVAILABLE
    kind = _NLMSG_HDR.unpack_from(data)[1]
    if kind == _NLMSG_ERROR:
        code = -struct.unpack_from("=i", data, _NLMSG_HDR.size)[0]
        return None if code == errno.ENOENT else _UNAVAILABLE
    rest_at = _NLMSG_HDR.size + _DIAG_MSG_HEAD.size + len(sockid)
    if kind != _SOCK_DIAG_BY_FAMILY or len(data) < rest_at + _DIAG_MSG_REST.size:
        return _UNAVAILABLE
    state = _DIAG_MSG_HEAD.unpack_from(data, _NLMSG_HDR.size)[1]
    ports = _DIAG_PORTS.unpack_from(data, _NLMSG_HDR.size + _DIAG_MSG_HEAD.size)
    uid, inode = _DIAG_MSG_REST.unpack_from(data, rest_at)[3:]
    if ports != (peer[1], local[1]) or state not in _DIAG_STATES or inode == 0:
        return None
    return uid


def _diag_address(family: int, ip: str) -> bytes:
    return socket.inet_pton(family, ip).ljust(16, b"\0")


def _encodings(peer: str, local: str) -> list[tuple[str, str, str]]:
    """``(table, peer hex, local hex)`` for each way the client socket may be listed."""
    result = []
    peer4, local4 = _plain_ip(peer), _plain_ip(local)
    if "." in peer4 and "." in local4:
        result.append(("tcp", _hex4(peer4), _hex4(local4)))
        peer6, local6 = f"::ffff:{peer4}", f"::ffff:{local4}"
    else:
        peer6, local6 = peer, local
    try:
        result.append(("tcp6", _hex6(peer6), _hex6(local6)))
    except OSError:
        pass
    return result


def _hex4(ip: str) -> str:
    # the kernel prints the address as one native-endian 32-bit word
    return f"{int.from_bytes(socket.inet_pton(socket.AF_INET, ip), 'little'):08X}"


def _hex6(ip: str) -> str:
    raw = socket.inet_pton(socket.AF_INET6, ip)
    return "".join(f"{int.from_bytes(raw[i : i + 4], 'little'):08X}" for i in range(0, 16, 4))


def find_tcp_owner(table: str, local: str, remote: str) -> int | None:
    """The ``uid`` column of the row of a ``/proc/net/tcp``-style ``table`` whose local and
    remote addresses (``HEX:PORT``) are ``local`` and ``remote``; ``None`` unless that socket
    is in a state owned by a process and still has an inode (a process holds it)."""
    needle = f" {local} {remote} "
    start = table.find(needle)
    while start >= 0:
        line_start = table.rfind("\n", 0, start) + 1
        line_end = table.find("\n", start)
        fields = table[line_start : line_end if line_end >= 0 else None].split()
        if len(fields) > 9 and fields[1] == local and fields[2] == remote:
            if fields[3] in _OWNED_STATES and fields[7].isdigit() and fields[9] != "0":
                return int(fields[7])
            return None
        start = table.find(needle, start + 1)
    return None

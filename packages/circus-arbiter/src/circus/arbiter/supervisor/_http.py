"""The HTTP side of Supervisor's control API: one listening socket (unix or tcp), HTTP/1.1
POST requests handed to a handler with who sent them, answers written back; a GET (the
``/logtail/`` stream of ``supervisorctl tail -f``) handed to a streamer that writes its own
answer until the client leaves.

Bounds, so that no client can hold circusd's loop or memory: the request head is at most
:data:`MAX_HEAD` bytes and must arrive whole within :data:`HEAD_TIMEOUT` seconds of the
connection or of its first byte (an idle keep-alive connection is closed after
:data:`IDLE_TIMEOUT` without one), a body at most
:data:`MAX_BODY` bytes within :data:`BODY_TIMEOUT`; an answer a client does not read within
:data:`WRITE_TIMEOUT` closes its connection; at most :data:`MAX_CONNECTIONS` connections
(``[circus] max_connections`` when set) are served at once (the next ones are closed at
once, logged at most once a minute), of which :data:`ADMIN_RESERVE` (a quarter) are kept
for root and circusd's own uid and at most :data:`PER_PEER` (three eighths) go to one other
uid (the unknown peers count as one): a local user holding idle connections
cannot keep root out of the API.

Who the peer is comes from the kernel, once per connection: ``SO_PEERCRED`` on a unix socket,
the owner of the client's socket on loopback tcp (circus.arbiter ``_peers``), nothing for any
other tcp client. The ``username``/``password`` of the config, when set, are checked as well
(HTTP basic auth, compared in constant time): a wrong or missing one is a 401 whoever asks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import os
import socket
import stat
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .._bindaside import bind_aside
from .._peers import PeerIdentity, tcp_owner_uid
from .._sockfile import FileId, folder_of, remove_if_ours, same_folder, through, unlink_if_same

__all__ = [
    "ADMIN_RESERVE",
    "MAX_BODY",
    "MAX_CONNECTIONS",
    "PER_PEER",
    "HttpServerSpec",
    "RpcHttpServer",
]

log = logging.getLogger("circus.arbiter")

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
MAX_CONNECTIONS = 64
ADMIN_RESERVE = 16
PER_PEER = 24
HEAD_TIMEOUT = 30.0
IDLE_TIMEOUT = 120.0
BODY_TIMEOUT = 30.0
WRITE_TIMEOUT = 30.0

_PEERCRED = struct.Struct("3i")

Handler = Callable[[bytes, PeerIdentity], Awaitable[bytes]]
#: ``stream(path, peer, reader, writer)`` answers a GET itself (status line included) and returns
#: ``None``, or returns the status to answer (404, 403...) without writing anything.
Streamer = Callable[
    [str, PeerIdentity, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[int | None]
]


@dataclass(frozen=True)
class HttpServerSpec:
    """Where and how the control API listens (``[unix_http_server]`` / ``[inet_http_server]``).

    Attributes:
        kind: ``"unix"`` or ``"inet"``.
        path: the socket file (unix).
        chmod: its mode (unix; Supervisor's default 0700).
        chown: ``(uid, gid)`` to give it (unix; ``-1`` keeps one), or ``None``.
        host, port: where to listen (inet; ``""`` or ``*``: every address).
        username, password: basic-auth credentials, or ``None`` for none; a password starting
            with ``{SHA}`` is the hex SHA-1 of the real one, as in Supervisor.
        where: ``file:line`` of the section, for messages.
    """

    kind: str
    path: str | None = None
    chmod: int = 0o700
    chown: tuple[int, int] | None = None
    host: str = "127.0.0.1"
    port: int = 0
    username: str | None = None
    password: str | None = None
    where: str = ""

    def url(self, bound_port: int | None = None) -> str:
        """``SUPERVISOR_SERVER_URL`` for this server (what childutils/supervisorctl use)."""
        if self.kind == "unix":
            return f"unix://{self.path}"
        host = self.host if self.host not in ("", "*", "0.0.0.0", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{bound_port if bound_port is not None else self.port}"


class _TooBig(Exception):
    pass


class RpcHttpServer:
    """Serves ``handler(body, peer) -> xml bytes`` for POST requests on one socket.

    Args:
        spec: where to listen and the credentials.
        handler: turns a request body into the response body (never raises for a bad request:
            it answers an XML-RPC fault).
    """

    def __init__(
        self,
        spec: HttpServerSpec,
        handler: Handler,
        stream: Streamer | None = None,
        max_connections: int | None = None,
    ) -> None:
        self.spec = spec
        #: ``[circus] max_connections`` (``None``: :data:`MAX_CONNECTIONS`); may be changed
        #: while serving (a reload): the reserve and the share of one peer follow it
        self.max_connections = max_connections
        self._handler = handler
        self._stream = stream
        self._server: asyncio.base_events.Server | None = None
        self._socket_file: tuple[int, int] | None = None  # (st_dev, st_ino) of ours
        self._conns: set[asyncio.Task[None]] = set()
        self._held: dict[int | None, int] = {}  # connections per peer uid
        self._refused_logged = 0.0
        self.port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen.

        Raises:
            OSError: the address is taken (another live server on the unix socket, or a
                tcp port in use), with the section named.
        """
        spec = self.spec
        if spec.kind == "unix":
            assert spec.path is not None
            sock, self._socket_file = _bind_unix(spec)
            try:
                self._server = await asyncio.start_unix_server(
                    self._serve, sock=sock, limit=MAX_HEAD, backlog=128
                )
            except BaseException:
                sock.close()
                self._remove_socket_file()
                raise
        else:
            host = None if spec.host in ("", "*") else spec.host
            self._server = await asyncio.start_server(
                self._serve, host, spec.port, limit=MAX_HEAD, backlog=128, reuse_address=True
            )
            self.port = self._server.sockets[0].getsockname()[1]

    def url(self) -> str:
        """The URL clients use to reach this server."""
        return self.spec.url(self.port)

    async def close(self) -> None:
        """Stop listening, end every connection, remove the socket file."""
        if self._server is not None:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            if self._conns:
                await asyncio.gather(*self._conns, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
            self._remove_socket_file()

    def _remove_socket_file(self) -> None:
        """Unlink the socket file if it still is the one we bound (a file another server
        put there since is left alone)."""
        if self.spec.path is not None:
            remove_if_ours(self.spec.path, self._socket_file)
        self._socket_file = None

    # ------------------------------------------------------------------ one connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        peer = _identity(writer, self.spec.kind)
        admin = peer.uid is not None and peer.uid in (0, os.geteuid())
        held = self._held.get(peer.uid, 0)
        cap, reserve, per_peer = _limits(self.max_connections)
        room = cap if admin else cap - reserve
        if len(self._conns) >= room or (not admin and held >= per_peer):
            now = time.monotonic()
            if now - self._refused_logged > 60:
                self._refused_logged = now
                log.warning(
                    "supervisor control API %s: %d connections open, refusing more (at most "
                    "%d, [circus] max_connections; %d kept for root, %d per user; %d held by "
                    "%s)",
                    self.url(),
                    len(self._conns),
                    cap,
                    reserve,
                    per_peer,
                    held,
                    peer.describe(),
                )
            writer.transport.abort()
            return
        assert task is not None
        self._conns.add(task)
        self._held[peer.uid] = held + 1
        try:
            first = True
            while await self._one_request(reader, writer, peer, first):
                first = False
        except (OSError, asyncio.IncompleteReadError, TimeoutError, _TooBig, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._conns.discard(task)
            left = self._held.get(peer.uid, 1) - 1
            if left > 0:
                self._held[peer.uid] = left
            else:
                self._held.pop(peer.uid, None)
            writer.transport.abort()

    async def _one_request(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: PeerIdentity,
        first: bool = True,
    ) -> bool:
        try:
            head = await _read_head(reader, first)
        except asyncio.LimitOverrunError:
            await self._reply(writer, 431, b"request head too large", close=True)
            return False
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await self._reply(writer, 400, b"bad request line", close=True)
            return False
        method, path, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                await self._reply(writer, 400, b"bad header", close=True)
                return False
            headers[name.strip().lower()] = value.strip()
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if "transfer-encoding" in headers:
            await self._reply(writer, 411, b"a Content-Length is required", close=True)
            return False
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            await self._reply(writer, 400, b"bad Content-Length", close=True)
            return False
        if length < 0 or length > MAX_BODY:
            await self._reply(writer, 413, b"request body too large", close=True)
            return False
        body = await asyncio.wait_for(reader.readexactly(length), BODY_TIMEOUT) if length else b""
        if not self._authorized(headers.get("authorization")):
            await self._reply(
                writer,
                401,
                b"Unauthorized",
                close=not keep,
                extra=b'WWW-Authenticate: Basic realm="default"\r\n',
            )
            return keep
        if method == "GET" and self._stream is not None:
            status = await self._stream(path, peer, reader, writer)
            if status is not None:
                await self._reply(writer, status, _REASONS.get(status, b"Error"), close=True)
            return False
        if method != "POST":
            await self._reply(writer, 405, b"only POST is served", close=not keep)
            return keep
        answer = await self._handler(body, peer)
        await self._reply(writer, 200, answer, close=not keep, content_type=b"text/xml")
        return keep

    def _authorized(self, header: str | None) -> bool:
        spec = self.spec
        if spec.username is None:
            return True
        if not header or header[:6].lower() != "basic ":
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep:
            return False
        expected = (spec.password or "").encode()
        if expected.startswith(b"{SHA}"):
            import hashlib

            given = hashlib.sha1(password).hexdigest().encode()
            expected = expected[5:].lower()
            password = given
        # both compared in full, in constant time, whatever the first one says
        ok_user = hmac.compare_digest(user, spec.username.encode())
        ok_password = hmac.compare_digest(password, expected)
        return ok_user and ok_password

    async def _reply(
        self,
        writer: asyncio.StreamWriter,
        code: int,
        body: bytes,
        *,
        close: bool,
        content_type: bytes = b"text/plain",
        extra: bytes = b"",
    ) -> None:
        reason = _REASONS.get(code, b"Error")
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n" % (
            code,
            reason,
            content_type,
            len(body),
            extra,
            b"Connection: close\r\n" if close else b"",
        )
        writer.write(head + body)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)


_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    411: b"Length Required",
    413: b"Payload Too Large",
    431: b"Request Header Fields Too Large",
}


def _limits(max_connections: int | None) -> tuple[int, int, int]:
    """``(cap, admin reserve, per peer)``: the defaults, or the same shares of the option."""
    if max_connections is None:
        return MAX_CONNECTIONS, ADMIN_RESERVE, PER_PEER
    cap = max(1, max_connections)
    return cap, cap * ADMIN_RESERVE // MAX_CONNECTIONS, max(1, cap * PER_PEER // MAX_CONNECTIONS)


async def _read_head(reader: asyncio.StreamReader, first: bool) -> bytes:
    """One request head, whole within :data:`HEAD_TIMEOUT` of the connection (``first``) or
    of its first byte (later requests on a kept-alive connection, which may wait up to
    :data:`IDLE_TIMEOUT` before sending it): a client trickling a head byte by byte holds a
    connection slot for HEAD_TIMEOUT at most.

    Raises:
        TimeoutError: too slow; asyncio.LimitOverrunError, asyncio.IncompleteReadError.
    """
    start = b""
    if not first:
        start = await asyncio.wait_for(reader.readexactly(1), IDLE_TIMEOUT)
    return start + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)


def _identity(writer: asyncio.StreamWriter, kind: str) -> PeerIdentity:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return PeerIdentity("ipc" if kind == "unix" else "tcp")
    if kind == "unix":
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        except OSError:
            return PeerIdentity("ipc")
        pid, uid, gid = _PEERCRED.unpack(raw)
        return PeerIdentity("ipc", uid=uid, gid=gid, pid=pid)
    try:
        peer = sock.getpeername()[:2]
        local = sock.getsockname()[:2]
    except OSError:
        return PeerIdentity("tcp")
    address = f"{peer[0]}:{peer[1]}"
    return PeerIdentity("tcp", uid=tcp_owner_uid(peer, local), address=address)


def _bind_unix(spec: HttpServerSpec) -> tuple[socket.socket, FileId]:
    """A listening socket bound at ``spec.path`` (a stale file removed first) with its
    ``chmod``/``chown``; and its file's id. Every step is taken relative to one descriptor
    of the socket's folder (:mod:`circus.arbiter._sockfile`); the bind itself is made in a
    private folder, the mode and owner set there, and the file moved into place
    (:mod:`circus.arbiter._bindaside`): nobody connects through a wider mode, and no
    ``/proc`` is needed.

    Raises:
        OSError: another server listens there, the path holds something else, the folder
            cannot be reached (a link another user could have aimed), or the bind fails.
    """
    assert spec.path is not None
    with folder_of(spec.path) as (dir_fd, name):
        _clear_stale(dir_fd, name, spec)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            file_id = bind_aside(
                sock, dir_fd, name, spec.path, mode=spec.chmod, owner=spec.chown, backlog=128
            )
            try:
                same_folder(dir_fd, spec.path)
            except BaseException:
                unlink_if_same(dir_fd, name, file_id)
                raise
            return sock, file_id
        except BaseException:
            sock.close()
            raise


def _clear_stale(dir_fd: int, name: str, spec: HttpServerSpec) -> None:
    """Remove a socket file nobody listens on any more; refuse a live one or a non-socket."""
    try:
        info = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise OSError(f"{spec.where}: {spec.path} exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    probe.settimeout(1.0)
    try:
        probe.connect(through(dir_fd, name, spec.path or name))
    except ConnectionRefusedError:
        os.unlink(name, dir_fd=dir_fd)  # stale: left by a daemon that died
        return
    except FileNotFoundError:
        return  # gone meanwhile
    except OSError as exc:  # a live server may be busy (backlog full, slow): not stale
        raise OSError(
            f"{spec.where}: cannot tell whether a server listens on {spec.path} ({exc}); "
            "not replacing it"
        ) from exc
    finally:
        probe.close()
    raise OSError(f"{spec.where}: another server is already listening on {spec.path}")

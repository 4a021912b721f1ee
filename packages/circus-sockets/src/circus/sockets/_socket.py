"""CircusSocket: one pre-bound socket the daemon owns and hands to its children by fd."""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Mapping
from typing import Any

from . import _options as opt
from ._errors import SocketError, SocketOptionError
from ._unix import FileId, bind_unix, remove_if_ours

_OPTION_NAMES = (
    "name",
    "host",
    "port",
    "family",
    "type",
    "proto",
    "backlog",
    "path",
    "umask",
    "replace",
    "interface",
    "so_reuseport",
    "blocking",
)

_ERRNO_TEXT = {
    errno.EADDRINUSE: "address already in use",
    errno.EADDRNOTAVAIL: "address not available on this machine",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "folder does not exist",
    errno.ENOTDIR: "a component of the path is not a folder",
    errno.EROFS: "read-only file system",
    errno.ENODEV: "no such network interface",
}


def _format_host_port(host: str, port: object) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class CircusSocket(socket.socket):
    """A listening (or datagram) socket bound once by the daemon and inherited by its children.

    Construction validates every option and creates the socket (SO_REUSEADDR set, SO_REUSEPORT
    when asked, inheritable, non-blocking unless *blocking*) but does not bind it; call
    :meth:`bind_and_listen`. Invalid options raise :class:`SocketError` naming the socket and
    the address, with no fd left open.

    Options (all accept INI strings too, see :meth:`load_from_config`):

    * *host*/*port*: resolved with ``getaddrinfo`` in *family*; ``port=0`` binds an ephemeral
      port and :attr:`port` then holds the real one.
    * *family*: ``AF_INET``/``AF_INET6``/``AF_UNIX`` (name or int); forced to ``AF_UNIX`` by
      *path*. *type*: ``SOCK_STREAM``/``SOCK_DGRAM``/... (``listen()`` only for stream and
      seqpacket). *proto*: a number or a name such as ``'tcp'``.
    * *path*: a unix socket file created with *umask* in force (an int is the mask itself, a
      string is octal); *replace* unlinks a stale socket file first. The file is removed on
      :meth:`close` if it still is the one we created.
    * *interface*: ``SO_BINDTODEVICE`` (needs CAP_NET_RAW). *backlog*: ``listen()`` backlog.
    * *so_reuseport*: the socket itself only reserves the address (bound, never listening);
      each child gets its own listening socket from :meth:`bind_for_child`.
    """

    name: str
    host: str | None
    port: int
    path: str | None
    backlog: int
    umask: int
    replace: bool
    interface: str | None
    so_reuseport: bool
    blocking: bool
    bound: bool
    adopted: bool

    def __init__(
        self,
        name: str = "",
        host: str = "localhost",
        port: int | str = 8080,
        family: int | str = socket.AF_INET,
        type: int | str = socket.SOCK_STREAM,  # noqa: A002 - upstream's keyword name
        proto: int | str = 0,
        backlog: int | str = 2048,
        path: str | None = None,
        umask: int | str = 8,
        replace: bool | str = False,
        interface: str | None = None,
        so_reuseport: bool | str = False,
        blocking: bool | str = False,
    ) -> None:
        self.name = str(name)
        self.path = os.fspath(path) if path else None
        self.host = None if self.path else str(host)
        self.bound = False
        self.adopted = False
        self._file_id: FileId | None = None
        raw_address = self.path or _format_host_port(str(host), port)
        try:
            sock_family = socket.AF_UNIX if self.path else opt.parse_family(family)
            sock_type = opt.parse_type(type)
            sock_proto = opt.parse_proto(proto)
            self.port = 0 if self.path else opt.parse_port(port)
            self._configured_port = self.port
            self.backlog = opt.parse_int(backlog, "backlog")
            self.umask = opt.parse_umask(umask)
            self.replace = opt.parse_bool(replace)
            self.so_reuseport = opt.parse_bool(so_reuseport)
            self.blocking = opt.parse_bool(blocking)
        except ValueError as exc:
            raise SocketOptionError(str(exc), name=self.name, address=raw_address) from None
        self.interface = str(interface) if interface else None
        if sock_family == socket.AF_UNIX and not self.path:
            raise SocketOptionError("family AF_UNIX needs a path", name=self.name)
        if self.so_reuseport and sock_family == socket.AF_UNIX:
            raise SocketOptionError(
                "so_reuseport needs an IP socket, not a unix path",
                name=self.name,
                address=self.location,
            )
        if self.so_reuseport and sock_type not in opt.LISTENING_TYPES and self.port == 0:
            # A reserved datagram socket would steal datagrams from the children, so it is
            # never bound and an ephemeral port could not be shared between them.
            raise SocketOptionError(
                "so_reuseport on a datagram socket needs a fixed port",
                name=self.name,
                address=self.location,
            )
        try:
            super().__init__(sock_family, sock_type, sock_proto)
        except OSError as exc:
            raise self._error("cannot create the socket", exc) from exc
        try:
            self.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.so_reuseport:
                self.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self.set_inheritable(True)
            self.setblocking(self.blocking)
        except OSError as exc:
            super().close()
            raise self._error("cannot set socket options", exc) from exc

    # -- construction from config or from an inherited fd ------------------------------------

    @classmethod
    def load_from_config(cls, config: Mapping[str, Any], *, strict: bool = False) -> CircusSocket:
        """Build a socket from a ``[socket:NAME]`` mapping whose values may be INI strings.

        The name is lowercased, as circus does for section names. Keys starting with ``__``
        (the INI reader's ``__name__``) are ignored; other unknown keys are ignored too, as
        upstream does, unless *strict*, where they raise a SocketError listing the valid ones.
        """
        name = str(config.get("name", "")).lower()
        kwargs: dict[str, Any] = {}
        unknown = []
        for key, value in config.items():
            if key == "name" or key.startswith("__"):
                continue
            if key in _OPTION_NAMES:
                kwargs[key] = value
            else:
                unknown.append(key)
        if unknown and strict:
            raise SocketOptionError(
                f"unknown option(s) {', '.join(sorted(unknown))}; valid options: "
                + ", ".join(_OPTION_NAMES),
                name=name,
            )
        for key in ("path", "interface"):
            if kwargs.get(key) == "":
                kwargs[key] = None
        return cls(name=name, **kwargs)

    @classmethod
    def from_fd(
        cls,
        fd: int,
        name: str = "",
        *,
        backlog: int = socket.SOMAXCONN,
        blocking: bool | None = None,
    ) -> CircusSocket:
        """Adopt an already bound socket *fd* (systemd socket activation, a parent daemon).

        The family, type and address are read from the fd. The result is marked
        :attr:`adopted`: closing it closes the fd but never unlinks a unix socket file (its
        creator owns it). *backlog* is only reported (the real one was set by whoever called
        ``listen()``). Raises SocketError if *fd* is not an open socket.
        """
        try:
            st = os.fstat(fd)
        except OSError as exc:
            raise SocketError(f"fd {fd} is not open", name=name, address=f"fd {fd}") from exc
        if not stat.S_ISSOCK(st.st_mode):
            raise SocketError(f"fd {fd} is not a socket", name=name, address=f"fd {fd}")
        self = cls.__new__(cls)
        socket.socket.__init__(self, fileno=fd)
        self.name = name
        self.backlog = backlog
        self.umask = 0
        self.replace = False
        self.interface = None
        self.so_reuseport = bool(self.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT))
        self.bound = True
        self.adopted = True
        self._file_id = None
        address = self.getsockname()
        if self.family == socket.AF_UNIX:
            self.path = address if isinstance(address, str) else os.fsdecode(address)
            self.host, self.port = None, 0
        else:
            self.path = None
            self.host, self.port = address[0], address[1]
        self._configured_port = self.port
        self.set_inheritable(True)
        if blocking is not None:
            self.setblocking(blocking)
        self.blocking = self.getblocking()
        return self

    # -- binding ------------------------------------------------------------------------------

    def bind_and_listen(self) -> None:
        """Bind the socket and, for stream/seqpacket types, ``listen(backlog)``.

        Idempotent (a bound or adopted socket is left as is). With *so_reuseport* a stream
        socket is bound but not listening (it reserves the port, and resolves ``port=0``); a
        datagram one is left unbound. Raises SocketError naming the socket and the address.
        """
        if self._is_closed:
            raise SocketError("socket is closed", name=self.name, address=self.location)
        if self.bound:
            return
        if self.so_reuseport:
            if self.type in opt.LISTENING_TYPES:
                self._bind(listen=False)
            return
        self._bind(listen=True)

    def bind_for_child(self) -> CircusSocket:
        """Return a fresh listening socket on this socket's address, for one child process.

        Only for *so_reuseport* sockets (the kernel then balances connections between the
        children's sockets). The caller passes ``fileno()`` of the result to the child and
        closes the result in the parent once the child has started.
        """
        if not self.so_reuseport:
            raise SocketError(
                "bind_for_child() needs so_reuseport = true", name=self.name, address=self.location
            )
        if self.type in opt.LISTENING_TYPES:
            self.bind_and_listen()
            host = self.getsockname()[0]
        else:
            host = self.host or "localhost"
        child = CircusSocket(
            name=self.name,
            host=host,
            port=self.port,
            family=self.family,
            type=self.type,
            proto=self.proto,
            backlog=self.backlog,
            interface=self.interface,
            so_reuseport=True,
            blocking=self.blocking,
        )
        try:
            child._bind(listen=True)
        except BaseException:
            child.close()
            raise
        return child

    def _bind(self, *, listen: bool) -> None:
        if self.path is not None:
            self._bind_unix()
        else:
            self._bind_inet()
        self.bound = True
        if listen and self.type in opt.LISTENING_TYPES:
            try:
                self.listen(self.backlog)
            except OSError as exc:
                raise self._error("cannot listen", exc) from exc

    def _bind_unix(self) -> None:
        assert self.path is not None
        try:
            self._file_id = bind_unix(self, self.path, self.umask, replace=self.replace)
        except FileExistsError as exc:
            raise SocketError(str(exc), name=self.name, address=self.path) from exc
        except OSError as exc:
            raise self._error("cannot bind the unix socket", exc) from exc

    def _bind_inet(self) -> None:
        assert self.host is not None
        try:
            infos = socket.getaddrinfo(self.host, self.port, self.family, self.type)
        except (socket.gaierror, UnicodeError) as exc:
            family = opt_name(opt.FAMILIES, self.family)
            raise SocketError(
                f"cannot resolve host {self.host!r} in {family}"
                + (" (an IPv6 host needs family = AF_INET6)" if ":" in self.host else "")
                + f": {exc}",
                name=self.name,
                address=self.location,
            ) from exc
        sockaddr = infos[0][4]
        if self.interface:
            option = getattr(socket, "SO_BINDTODEVICE", None)
            if option is None:
                raise SocketError(
                    "interface binding (SO_BINDTODEVICE) is not supported on this platform",
                    name=self.name,
                    address=self.location,
                )
            try:
                self.setsockopt(socket.SOL_SOCKET, option, self.interface.encode() + b"\0")
            except OSError as exc:
                raise self._error(f"cannot bind to interface {self.interface!r}", exc) from exc
        try:
            self.bind(sockaddr)
        except OSError as exc:
            raise self._error("cannot bind", exc) from exc
        self.port = self.getsockname()[1]

    # -- reporting ------------------------------------------------------------------------------

    def options(self) -> dict[str, Any]:
        """The normalised options, as :meth:`load_from_config` accepts them back.

        Two sockets with equal options are interchangeable (what a config reload compares).
        The port is the configured one (0 stays 0), not the one the kernel picked.
        """
        return {
            "name": self.name,
            "host": self.host,
            "port": self._configured_port,
            "family": opt_name(opt.FAMILIES, self.family),
            "type": opt_name(opt.TYPES, self.type),
            "proto": self.proto,
            "backlog": self.backlog,
            "path": self.path,
            "umask": self.umask,
            "replace": self.replace,
            "interface": self.interface,
            "so_reuseport": self.so_reuseport,
            "blocking": self.blocking,
        }

    @property
    def location(self) -> str:
        """``host:port`` (``[v6]:port``) or the unix path; the real address once bound."""
        if self.path is not None:
            return self.path
        host = self.host or ""
        if self.bound and not self._is_closed:
            try:
                host = self.getsockname()[0]
            except OSError:
                pass
        return _format_host_port(host, self.port)

    def info(self) -> dict[str, Any]:
        """The ``listsockets`` row: fd, name, backlog, then host and port, or path."""
        row: dict[str, Any] = {"fd": self.fileno(), "name": self.name, "backlog": self.backlog}
        if self.path is not None:
            row["path"] = self.path
            return row
        host = self.host
        if self.bound and not self._is_closed:
            host = self.getsockname()[0]
        row["host"] = host
        row["port"] = self.port
        return row

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the socket; a unix socket file we created is removed (idempotent)."""
        if self.path is not None and not self.adopted and not self._is_closed:
            remove_if_ours(self.path, self._file_id)
            self._file_id = None
        super().close()

    @property
    def _is_closed(self) -> bool:
        # socket.socket keeps this flag in a slot typeshed does not declare
        closed: bool = getattr(self, "_closed", False)
        return closed

    def dup(self) -> socket.socket:  # type: ignore[override]  # a plain socket, on purpose
        """A plain ``socket.socket`` on a duplicate fd (closing it never removes a file)."""
        return socket.socket(self.family, self.type, self.proto, fileno=os.dup(self.fileno()))

    def _error(self, action: str, exc: OSError) -> SocketError:
        reason = _ERRNO_TEXT.get(exc.errno or 0, exc.strerror or str(exc))
        code = f" [errno {exc.errno}]" if exc.errno else ""
        return SocketError(
            f"{action}: {reason}{code}",
            name=self.name,
            address=self.location,
            errno=exc.errno,
        )


def opt_name(table: Mapping[str, int], number: int) -> str:
    """The constant name for *number* in *table*, or the number itself."""
    for key, value in table.items():
        if value == number:
            return key
    return str(number)

"""The exceptions raised by circus.sockets: :class:`SocketError`, and
:class:`SocketOptionError` for a bad option."""

from __future__ import annotations

__all__ = ["SocketError", "SocketOptionError"]


class SocketError(Exception):
    """A socket could not be created, bound, adopted or configured.

    The message always names the socket and, when known, the address it was meant to use, so
    that an operator reading a log line knows which ``[socket:NAME]`` section to fix.

    Attributes:
        name: the socket's name ('' for an unnamed socket).
        address: the address involved (``host:port``, a unix path, an fd description) or None.
        errno: the OS error number when the failure came from the OS, else None.
    """

    def __init__(
        self,
        message: str,
        *,
        name: str = "",
        address: str | None = None,
        errno: int | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self.errno = errno
        label = f"socket {name!r}" if name else "socket"
        where = f" ({address})" if address else ""
        super().__init__(f"{label}{where}: {message}")


class SocketOptionError(SocketError, ValueError):
    """A socket option has a bad value or name, or the options do not fit together (a unix
    socket without a path, ``so_reuseport`` on a unix socket...). Nothing was created."""

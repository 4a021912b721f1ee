"""The fds one spawn receives from ``watcher.sockets``, with per-child SO_REUSEPORT sockets.

``watcher.sockets`` maps names to fds or socket objects. A socket object that says
``so_reuseport`` and offers ``bind_for_child()`` (``circus.sockets.CircusSocket`` does; we
duck-type so this layer never imports it) is not shared: each spawn whose command line
mentions ``circus.sockets.NAME`` gets its own freshly bound socket, as upstream does, and the
watcher closes its copy right after the spawn (the child keeps its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

__all__ = ["SpawnSockets", "is_reuseport", "socket_fd"]


def socket_fd(sock: Any) -> int:
    """An fd from an int or an object with ``fileno()``."""
    return sock if isinstance(sock, int) else int(sock.fileno())


def is_reuseport(sock: Any) -> bool:
    """True for a socket object each child must get its own copy of."""
    return bool(getattr(sock, "so_reuseport", False)) and callable(
        getattr(sock, "bind_for_child", None)
    )


class SpawnSockets:
    """``{name: fd}`` for one spawn; a context manager closing the per-child sockets.

    Args:
        sockets: the watcher's ``{name: fd or socket object}``.
        command: the command line (cmd and args); a reuseport socket gets a per-child copy
            when it mentions ``circus.sockets.NAME`` (case-insensitive), as upstream decides.
        also: names that get a per-child copy regardless (``stdin_socket``).

    Raises:
        OSError: binding a per-child socket failed (what was bound so far is closed).
    """

    def __init__(
        self, sockets: Mapping[str, Any], command: str, also: tuple[str, ...] = ()
    ) -> None:
        self.fds: dict[str, int] = {}
        self._owned: list[Any] = []
        lowered = command.lower()
        try:
            for name, sock in sockets.items():
                wanted = f"circus.sockets.{name}".lower() in lowered or name in also
                if wanted and is_reuseport(sock):
                    child = sock.bind_for_child()
                    self._owned.append(child)
                    self.fds[name] = socket_fd(child)
                else:
                    self.fds[name] = socket_fd(sock)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the per-child sockets in this process (idempotent)."""
        while self._owned:
            self._owned.pop().close()

    def __enter__(self) -> SpawnSockets:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

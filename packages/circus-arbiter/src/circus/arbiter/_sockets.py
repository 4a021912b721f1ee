"""The arbiter's sockets: bound before any watcher starts, their fds handed to watchers.

A thin seam over :mod:`circus.sockets` (``SocketManager``/``CircusSocket``): the arbiter only
needs binding, the ``{name: fd}`` map, the ``listsockets`` listing and closing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from ._errors import ArbiterError

__all__ = ["SocketSet"]


class SocketSet:
    """Named listening sockets; ``CircusSocket`` objects or dicts of their arguments."""

    def __init__(self, sockets: Iterable[Any] = ()) -> None:
        self._sockets: dict[str, Any] = {}
        self._bound = False
        for sock in sockets:
            self.add(sock)

    def __len__(self) -> int:
        return len(self._sockets)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._sockets

    def add(self, sock: Any) -> Any:
        """Add one socket (bound immediately if the set is already bound)."""
        if isinstance(sock, Mapping):
            from circus.sockets import CircusSocket

            sock = _create(CircusSocket, sock)
        name = str(getattr(sock, "name", "")).lower()
        if name in self._sockets:
            raise ArbiterError(f"socket {name!r} is defined twice")
        self._sockets[name] = sock
        if self._bound:
            _bind(sock)
        return sock

    def put(self, sock: Any) -> None:
        """Use ``sock`` (already bound) under its name, in place of the one configured
        (closed): a socket taken over from a crashed daemon's workers."""
        name = str(getattr(sock, "name", "")).lower()
        old = self._sockets.get(name)
        self._sockets[name] = sock
        if old is not None and old is not sock:
            old.close()

    def remove(self, name: str) -> None:
        """Close and forget one socket."""
        sock = self._sockets.pop(name.lower(), None)
        if sock is not None:
            sock.close()

    def get(self, name: str) -> Any:
        """The socket called ``name``."""
        return self._sockets[name.lower()]

    def bind_all(self) -> None:
        """Bind and listen every socket (closing those already bound on failure)."""
        done = []
        try:
            for sock in self._sockets.values():
                _bind(sock)
                done.append(sock)
        except Exception:
            for sock in done:
                sock.close()
            raise
        self._bound = True

    def fd_map(self) -> dict[str, int]:
        """``{name: fd}`` of the bound sockets (what ``$(circus.sockets.NAME)`` expands to)."""
        return {name: sock.fileno() for name, sock in self._sockets.items() if _fileno(sock) >= 0}

    def watcher_map(self) -> dict[str, Any]:
        """What a watcher gets: ``{name: fd}``, except the *so_reuseport* sockets themselves.

        A reuseport socket only reserves its address; the watcher calls its
        ``bind_for_child()`` at each spawn whose command mentions ``circus.sockets.NAME``
        and closes that per-child socket right after the spawn (upstream's behaviour).
        """
        shared = self.fd_map()
        return {
            name: sock if getattr(sock, "so_reuseport", False) else shared[name]
            for name, sock in self._sockets.items()
            if name in shared
        }

    def attach(self, watcher: Any) -> None:
        """Give a watcher the current sockets (:meth:`watcher_map`)."""
        try:
            watcher.sockets = self.watcher_map()
        except AttributeError:  # pragma: no cover - a watcher without socket support
            pass

    def listing(self) -> list[dict[str, Any]]:
        """What ``listsockets`` answers: sorted by fd, host/port or path."""
        items = []
        for name, sock in self._sockets.items():
            info = getattr(sock, "info", None)
            if callable(info):
                items.append(info())
                continue
            fd = _fileno(sock)
            entry: dict[str, Any] = {"fd": fd, "name": name, "backlog": getattr(sock, "backlog", 0)}
            path = getattr(sock, "path", None)
            if path:
                entry["path"] = path
            else:
                entry["host"] = getattr(sock, "host", None)
                entry["port"] = getattr(sock, "port", None)
            items.append(entry)
        return sorted(items, key=lambda e: e["fd"])

    def close_all(self) -> None:
        """Close every socket (unix socket files are removed by the socket layer)."""
        for sock in self._sockets.values():
            try:
                sock.close()
            except OSError:  # pragma: no cover
                pass
        self._bound = False

    def items(self) -> list[tuple[str, Any]]:
        """``(name, socket)`` pairs."""
        return list(self._sockets.items())


def _create(cls: Any, options: Mapping[str, Any]) -> Any:
    loader = getattr(cls, "load_from_config", None)
    if loader is not None:
        return loader(dict(options))
    return cls(**options)


def _bind(sock: Any) -> None:
    # The daemon binds as root in folders an app's user may own: reach a unix socket's folder
    # (for the bind, and for the removal at close) without following that user's links, and
    # bind aside there (never by the path, which a swap of the folder for a link redirects).
    # Not root, the bind aside could not chroot and the socket's address (what children and
    # a re-exec read back) would be a bare name: the plain bind by path then.
    from circus.process import open_parent
    from circus.sockets import set_parent_opener, set_unix_binder

    set_parent_opener(open_parent)
    set_unix_binder(bind_socket_aside if os.geteuid() == 0 else None)
    try:
        # CircusSocket.bind_and_listen is idempotent: a bound or adopted socket is left as is.
        sock.bind_and_listen()
    finally:
        set_unix_binder(None)  # only this bind: circus.sockets used alone is left as it was


def bind_socket_aside(
    sock: socket.socket, dir_fd: int, name: str, path: str, *, mode: int, replace: bool
) -> tuple[int, int]:
    """circus.sockets' unix binder in the daemon: :func:`._bindaside.bind_aside`, listening
    with the socket's backlog when it is a stream or seqpacket socket."""
    from ._bindaside import bind_aside

    listens = sock.type in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET)
    backlog = int(getattr(sock, "backlog", 128)) if listens else None
    return bind_aside(sock, dir_fd, name, path, mode=mode, replace=replace, backlog=backlog)


def _fileno(sock: Any) -> int:
    try:
        return int(sock.fileno())
    except (OSError, ValueError):
        return -1

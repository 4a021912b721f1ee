"""SocketManager: the daemon's set of named sockets, and the fds each child receives."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

from ._errors import SocketError
from ._socket import CircusSocket
from ._systemd import listen_fds


class ChildSockets:
    """The ``{name: fd}`` map for one child, plus the per-child sockets made for it.

    Pass :attr:`fds` to the process (``$(circus.sockets.NAME)``, ``pass_fds``), then
    :meth:`close` it in the parent once the child has started: the shared sockets stay open
    in the manager, only the per-child *so_reuseport* sockets are closed (the child keeps its
    copy). Usable as a context manager.
    """

    def __init__(self, fds: dict[str, int], owned: list[CircusSocket]) -> None:
        self.fds = fds
        self.owned = owned

    def close(self) -> None:
        """Close the per-child sockets in this process (idempotent)."""
        while self.owned:
            self.owned.pop().close()

    def __enter__(self) -> ChildSockets:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SocketManager:
    """Named :class:`CircusSocket` objects bound once and kept open while processes come and go.

    Typical daemon flow: :meth:`add` each configured socket, optionally :meth:`adopt_systemd`,
    :meth:`bind_all` before any watcher starts, give each spawn :meth:`fd_map` (or
    :meth:`child_sockets` when *so_reuseport* sockets exist), answer ``listsockets`` with
    :meth:`info`, and :meth:`close_all` on shutdown (unix socket files removed). Usable as a
    context manager that closes everything on exit.
    """

    def __init__(self, sockets: Iterable[CircusSocket] = ()) -> None:
        self._sockets: dict[str, CircusSocket] = {}
        for sock in sockets:
            self.add(sock)

    # -- membership ---------------------------------------------------------------------------

    def add(self, sock: CircusSocket | str, *args: Any, **options: Any) -> CircusSocket:
        """Add a socket, given as a CircusSocket or as a name plus CircusSocket arguments
        (``add("web", "127.0.0.1", 8000)`` as upstream, or keywords).

        Raises SocketError if the name is already taken.
        """
        if isinstance(sock, str):
            if sock in self._sockets:
                raise SocketError("a socket with this name already exists", name=sock)
            sock = CircusSocket(sock, *args, **options)
        elif args or options:
            raise TypeError("options are only accepted with a socket name")
        if sock.name in self._sockets:
            raise SocketError(
                "a socket with this name already exists", name=sock.name, address=sock.location
            )
        self._sockets[sock.name] = sock
        return sock

    def add_from_config(self, config: Mapping[str, Any]) -> CircusSocket:
        """Add ``CircusSocket.load_from_config(config)`` (INI strings accepted)."""
        sock = CircusSocket.load_from_config(config)
        try:
            return self.add(sock)
        except SocketError:
            sock.close()
            raise

    def remove(self, name: str) -> None:
        """Close and forget the socket *name* (KeyError if unknown)."""
        self._sockets.pop(name).close()

    def get(self, name: str) -> CircusSocket | None:
        """The socket called *name*, or None."""
        return self._sockets.get(name)

    def __getitem__(self, name: str) -> CircusSocket:
        return self._sockets[name]

    def __contains__(self, name: object) -> bool:
        return name in self._sockets

    def __iter__(self) -> Iterator[CircusSocket]:
        return iter(list(self._sockets.values()))

    def __len__(self) -> int:
        return len(self._sockets)

    @property
    def names(self) -> list[str]:
        """Socket names, in insertion order."""
        return list(self._sockets)

    # -- lifecycle ----------------------------------------------------------------------------

    def bind_all(self) -> None:
        """Bind (and listen) every socket not bound yet.

        Stops at the first failure and raises its SocketError; sockets bound before stay bound
        (call :meth:`close_all` to release them, or :meth:`remove` the bad one and retry).
        """
        for sock in self._sockets.values():
            sock.bind_and_listen()

    def bind_and_listen_all(self) -> None:
        """Same as :meth:`bind_all` (upstream's name)."""
        self.bind_all()

    def close_all(self) -> None:
        """Close every socket and remove the unix socket files we created (idempotent)."""
        while self._sockets:
            _, sock = self._sockets.popitem()
            sock.close()

    def __enter__(self) -> SocketManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close_all()

    # -- what children receive ----------------------------------------------------------------

    def fd_map(self) -> dict[str, int]:
        """``{name: fd}`` of the shared sockets, for ``$(circus.sockets.NAME)`` and pass_fds.

        The sockets stay open here; children inherit duplicates. For *so_reuseport* sockets
        this is the reserving socket: use :meth:`child_sockets` to give each child its own.
        """
        return {name: sock.fileno() for name, sock in self._sockets.items()}

    def child_sockets(self, command: str = "") -> ChildSockets:
        """The fds for one spawn of a process whose command line (cmd plus args) is *command*.

        Like :meth:`fd_map`, except that each *so_reuseport* socket mentioned in *command* as
        ``circus.sockets.NAME`` (as upstream decides) gets a fresh listening socket from
        :meth:`CircusSocket.bind_for_child`. Close the result after the spawn.
        """
        fds = self.fd_map()
        owned: list[CircusSocket] = []
        lowered = command.lower()
        try:
            for name, sock in self._sockets.items():
                if sock.so_reuseport and f"circus.sockets.{name}".lower() in lowered:
                    child = sock.bind_for_child()
                    owned.append(child)
                    fds[name] = child.fileno()
        except BaseException:
            ChildSockets(fds, owned).close()
            raise
        return ChildSockets(fds, owned)

    def info(self) -> list[dict[str, Any]]:
        """The ``listsockets`` answer: one row per socket, sorted by fd."""
        return sorted((sock.info() for sock in self._sockets.values()), key=lambda r: r["fd"])

    # -- systemd socket activation -------------------------------------------------------------

    def adopt_systemd(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        pid: int | None = None,
        unset: bool = True,
    ) -> list[str]:
        """Take over the sockets systemd passed (LISTEN_FDS), by name; return their names.

        A passed socket whose name (``FileDescriptorName=``) matches a socket already added
        replaces it: its fd is used instead of binding, and the configured *backlog* and
        *blocking* are kept for reporting and mode. Unmatched ones are added under their
        systemd name, non-blocking like any default socket. Call before :meth:`bind_all`.
        Does nothing unless ``LISTEN_PID`` is our pid (or *pid*). With *unset* the variables
        are removed from *environ* (default ``os.environ``). A matched socket of another type
        (stream vs datagram), an fd that is not a socket or a name already bound raises
        SocketError.
        """
        adopted: list[str] = []
        for name, fd in listen_fds(environ, pid=pid, unset=unset):
            configured = self._sockets.get(name)
            if configured is None:
                self._sockets[name] = CircusSocket.from_fd(fd, name, blocking=False)
                adopted.append(name)
                continue
            if configured.bound:
                raise SocketError(
                    "already bound; adopt systemd sockets before bind_all()",
                    name=name,
                    address=configured.location,
                )
            try:
                kind = socket.socket(fileno=os.dup(fd))
            except OSError as exc:
                raise SocketError(
                    f"systemd fd {fd} is not a socket", name=name, address=f"fd {fd}"
                ) from exc
            with kind:
                fd_type = kind.type
            if fd_type != configured.type:
                raise SocketError(
                    f"systemd passed a socket of type {fd_type!r}, configured {configured.type!r}",
                    name=name,
                    address=f"fd {fd}",
                )
            sock = CircusSocket.from_fd(
                fd, name, backlog=configured.backlog, blocking=configured.blocking
            )
            configured.close()
            self._sockets[name] = sock
            adopted.append(name)
        return adopted

"""A look at a descriptor libzmq reported, through a slot of the connection guard's own.

A descriptor number in a socket-monitor event may have been closed by libzmq and reused for
something else (a child's pipe, a listening socket of a watcher) since the event was sent.
So it is first duplicated onto ``slot`` (a descriptor the guard holds open on /dev/null,
``null``), which keeps the object looked at and the one acted on the same and needs no new
descriptor (the table may be full right now); the slot goes back to /dev/null afterwards.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

from ._connpause import same_local

__all__ = ["checked", "listening_address"]


def checked(fd: int, local: Any, slot: int, null: int, *, shut: bool) -> bool:
    """Whether ``fd`` is a connection accepted on the endpoint whose sockets answer
    ``local`` to getsockname(); ``shut``: then ``shutdown(2)`` it."""
    with _in_slot(fd, slot, null) as sock:
        if sock is None or local is None:
            return False
        try:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                return False
            if not same_local(sock.getsockname(), local):
                return False
            sock.getpeername()
            if shut:
                sock.shutdown(socket.SHUT_RDWR)
            return True
        except OSError:
            return False


def listening_address(fd: int, slot: int, null: int) -> Any:
    """What tells the connections of the listening socket ``fd`` apart: its tcp port, or
    its unix path; ``None`` if ``fd`` is no socket any more."""
    with _in_slot(fd, slot, null) as sock:
        if sock is None:
            return None
        try:
            name = sock.getsockname()
        except OSError:
            return None
    if isinstance(name, tuple):
        return int(name[1])  # tcp: the port tells our connections apart
    return name.decode(errors="replace") if isinstance(name, bytes) else name


@contextlib.contextmanager
def _in_slot(fd: int, slot: int, null: int) -> Iterator[socket.socket | None]:
    """``fd`` duplicated onto ``slot`` as a socket object (``None`` if it is no socket or
    gone); the slot goes back to /dev/null afterwards."""
    try:
        os.dup2(fd, slot, inheritable=False)
    except OSError:
        yield None
        return
    try:
        sock = socket.socket(fileno=slot)
    except OSError:
        os.dup2(null, slot, inheritable=False)
        yield None
        return
    try:
        yield sock
    finally:
        sock.detach()
        os.dup2(null, slot, inheritable=False)

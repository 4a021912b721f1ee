"""Binding ZeroMQ endpoints safely: ipc sockets owner-only, optional owner change."""

from __future__ import annotations

import os
import pwd
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import zmq

from ._errors import ArbiterError

__all__ = [
    "bind_again",
    "bind_endpoint",
    "bind_retrying",
    "ipc_path",
    "owner_uid",
    "rebinds_in_place",
    "release",
    "remove_ipc",
]

# ipc path -> sockets of ours bound there. A reload may bind a new socket on the path an old
# one still serves (ZeroMQ hands the path to the new one; the old keeps its connections until
# it has answered them): the file goes only with the last of them.
_IPC_BOUND: dict[str, int] = {}


def ipc_path(endpoint: str) -> str | None:
    """The filesystem path of an ``ipc://`` endpoint, ``None`` for other transports."""
    if endpoint.startswith("ipc://"):
        return endpoint[len("ipc://") :]
    return None


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    # The process umask is global, so it is only changed for the duration of the bind call,
    # which runs on the loop thread with no await in between.
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def owner_uid(owner: str | None) -> int | None:
    """The uid of ``endpoint_owner`` (a name or a number), ``None`` without one.

    Raises:
        ArbiterError: no such user.
    """
    if not owner:
        return None
    try:
        return int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid
    except KeyError as exc:
        raise ArbiterError(f"endpoint_owner {owner!r}: no such user") from exc


def bind_endpoint(sock: zmq.Socket[Any], endpoint: str, owner: str | None = None) -> None:
    """Bind ``sock`` on ``endpoint``; an ipc socket file is created 0600 and chowned to ``owner``.

    Raises:
        ArbiterError: the endpoint cannot be bound (names the endpoint and the reason).
    """
    from ._curve import secure_bind

    secure_bind(sock, endpoint)  # CURVE server options when [circus] asks for them
    _bind(sock, endpoint, owner)
    path = ipc_path(endpoint)
    if path is not None:
        _IPC_BOUND[path] = _IPC_BOUND.get(path, 0) + 1


def bind_again(sock: zmq.Socket[Any], endpoint: str, owner: str | None = None) -> None:
    """Bind a socket of ours on ``endpoint`` again, with the options it already has (its
    CURVE settings included): the undo of :func:`release`, or of another socket taking an
    ipc path over.

    Raises:
        ArbiterError: the endpoint cannot be bound.
    """
    _bind(sock, endpoint, owner)


def _bind(sock: zmq.Socket[Any], endpoint: str, owner: str | None) -> None:
    path = ipc_path(endpoint)
    try:
        if path is not None:
            uid = owner_uid(owner)
            with _umask(0o177):
                sock.bind(endpoint)
            if uid is not None:
                os.chown(path, uid, -1)
        else:
            sock.bind(endpoint)
    except zmq.ZMQError as exc:
        raise ArbiterError(f"cannot bind {endpoint}: {exc}") from exc


def rebinds_in_place(endpoint: str) -> bool:
    """Whether a second socket can bind ``endpoint`` while one of ours holds it: an ipc path
    is taken over by the new socket, a tcp port 0 or ``*`` picks another port. A fixed tcp
    address must be :func:`release` d first."""
    if ipc_path(endpoint) is not None:
        return True
    return endpoint.startswith("tcp://") and endpoint.rsplit(":", 1)[-1] in ("0", "*")


def release(sock: zmq.Socket[Any], endpoint: str) -> None:
    """Stop ``sock`` listening on ``endpoint`` (the connections it accepted there end too);
    binding ``sock`` to ``endpoint`` again undoes it."""
    try:
        sock.unbind(endpoint)
    except zmq.ZMQError as exc:
        raise ArbiterError(f"cannot release {endpoint}: {exc}") from exc


_T = TypeVar("_T")


def bind_retrying(bind: Callable[[], _T], timeout: float = 2.0) -> _T:
    """``bind()``, tried again while the address is still held: ZeroMQ closes a released
    listener on its I/O thread, a moment after :func:`release` returned.

    Raises:
        ArbiterError: the last failure, once ``timeout`` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return bind()
        except ArbiterError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.005)


def remove_ipc(endpoint: str) -> None:
    """Remove the socket file of an ``ipc://`` endpoint we bound (ZeroMQ leaves it), once no
    other socket of ours is bound there."""
    path = ipc_path(endpoint)
    if path is None:
        return
    left = _IPC_BOUND.pop(path, 0) - 1
    if left > 0:
        _IPC_BOUND[path] = left
        return
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass

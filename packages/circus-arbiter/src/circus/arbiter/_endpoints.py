"""Binding ZeroMQ endpoints safely: ipc sockets owner-only, optional owner change, never
taken from another live process, and removed at exit only while they are still ours."""

from __future__ import annotations

import errno
import logging
import os
import pwd
import socket
import stat
import struct
import time
from collections.abc import Callable
from typing import Any, TypeVar

import zmq

from ._dirlock import dir_lock
from ._errors import ArbiterError
from ._sockfile import folder_of, remove_if_ours, same_folder, through, unlink_if_same

__all__ = [
    "bind_again",
    "bind_endpoint",
    "bind_retrying",
    "ipc_path",
    "local_address",
    "owner_uid",
    "rebinds_in_place",
    "release",
    "remove_ipc",
]

log = logging.getLogger("circus.arbiter")

# ipc path -> sockets of ours bound there. A reload may bind a new socket on the path an old
# one still serves (ZeroMQ hands the path to the new one; the old keeps its connections until
# it has answered them): the file goes only with the last of them.
_IPC_BOUND: dict[str, int] = {}
# ipc path -> (st_dev, st_ino) of the socket file our latest bind there created. At exit the
# file is removed only if it is still that one: if another process bound the path since, the
# file is its socket, and removing it would leave that process unreachable.
_IPC_FILES: dict[str, tuple[int, int]] = {}
# ipc path -> what its listening socket (and every connection accepted on it) answers to
# getsockname(): the path, unless the bind could not be made under it (see _bindaside).
_IPC_NAMES: dict[str, str] = {}


def ipc_path(endpoint: str) -> str | None:
    """The filesystem path of an ``ipc://`` endpoint, ``None`` for other transports."""
    if endpoint.startswith("ipc://"):
        return endpoint[len("ipc://") :]
    return None


def local_address(endpoint: str) -> str | None:
    """What ``getsockname()`` answers for the connections accepted on the ``ipc://``
    endpoint ``endpoint`` we bound: its path, or the name its socket was bound by when that
    could not be the path (a circusd that may not chroot); ``None`` for other transports."""
    path = ipc_path(endpoint)
    if path is None:
        return None
    return _IPC_NAMES.get(path, path)


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
        if path is not None and not path.startswith("@") and path != "*":
            _bind_ipc(sock, endpoint, path, owner_uid(owner))
        else:
            sock.bind(endpoint)
    except zmq.ZMQError as exc:
        raise ArbiterError(f"cannot bind {endpoint}: {exc}") from exc
    except OSError as exc:
        raise ArbiterError(f"cannot bind {endpoint}: {exc}") from exc


def _bind_ipc(sock: zmq.Socket[Any], endpoint: str, path: str, uid: int | None) -> None:
    """Bind ``sock`` on the socket file ``path``, which ZeroMQ never touches by path.

    libzmq's ipc bind unlinks whatever is at the path, by path, then binds by path: in a
    folder another user may swap for a link, root's libzmq would unlink or bind where that
    user points. So every step is taken relative to one descriptor of the socket's folder
    (_sockfile): the stale-file look, and the bind itself, made aside in a private folder and
    moved into place (_bindaside); libzmq is then handed the listening socket (``ZMQ_USE_FD``:
    it unlinks nothing, at the bind or at the close) under the endpoint's own address.
    """
    from ._bindaside import bind_aside

    with folder_of(path) as (dir_fd, name):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            # the check that nobody else serves the path and the bind, under one lock
            # another circusd also takes
            with dir_lock(path):
                ours = bool(_IPC_BOUND.get(path))  # a reload taking our own path over
                _claim_ipc(dir_fd, name, path, endpoint)
                file_id = bind_aside(
                    listener,
                    dir_fd,
                    name,
                    path,
                    mode=0o600,
                    owner=(uid, -1) if uid is not None else None,
                    replace=ours,
                    backlog=int(sock.getsockopt(zmq.BACKLOG)),
                )
            try:
                same_folder(dir_fd, path)  # the path still leads to where the file is
                listener.setblocking(False)
                sock.setsockopt(zmq.USE_FD, listener.fileno())
                try:
                    sock.bind(endpoint)
                finally:
                    sock.setsockopt(zmq.USE_FD, -1)
            except BaseException:
                unlink_if_same(dir_fd, name, file_id)
                raise
        except BaseException:
            listener.close()
            raise
        name_bound = listener.getsockname()
        listener.detach()  # libzmq's now: it closes it at unbind or close
        _IPC_FILES[path] = file_id
        if isinstance(name_bound, bytes):
            name_bound = name_bound.decode(errors="replace")
        _IPC_NAMES[path] = name_bound


def _claim_ipc(dir_fd: int, name: str, path: str, endpoint: str) -> None:
    """Make sure binding ``path`` takes it from nobody: a socket file a live process listens
    on is refused, a stale one (nothing listening) is removed. A path one of our own sockets
    holds is left to the bind (a reload takes it over on purpose).

    Raises:
        ArbiterError: another process listens there, or the path is not a socket.
    """
    if _IPC_BOUND.get(path):
        return
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except OSError:
        return  # nothing there (or nothing we can see): the bind says what is wrong
    if not stat.S_ISSOCK(st.st_mode):
        raise ArbiterError(
            f"cannot bind {endpoint}: {path} exists and is not a socket (not removing it)"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        probe.setblocking(False)
        probe.connect(through(dir_fd, name, path))
    except ConnectionRefusedError:
        log.info("removing stale socket file %s (nothing listens on it)", path)
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ArbiterError(
                f"cannot bind {endpoint}: cannot remove stale {path}: {exc}"
            ) from exc
        return
    except FileNotFoundError:
        return
    except BlockingIOError:
        pid = None  # a listener whose backlog is full: alive all the same
    except OSError as exc:
        if exc.errno != errno.EAGAIN:
            raise ArbiterError(
                f"cannot bind {endpoint}: cannot tell whether {path} is in use: {exc.strerror}"
            ) from exc
        pid = None
    else:
        pid = _peer_pid(probe)
    finally:
        probe.close()
    raise ArbiterError(f"cannot bind {endpoint}: {_listener(pid)} listens on {path}")


def _peer_pid(sock: socket.socket) -> int | None:
    # SO_PEERCRED: the pid that called listen() on the other end (0 from another pid namespace).
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid = struct.unpack("3i", creds)[0]
    return pid if pid > 0 else None


def _listener(pid: int | None) -> str:
    """``another circusd (pid 123)``, ``process 123 (python3)`` or ``another process``."""
    if pid is None:
        return "another process"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        argv = []
    from ._pidfile import looks_like_circusd

    if looks_like_circusd(argv):
        return f"another circusd (pid {pid})"
    name = os.path.basename(argv[0]) if argv else "?"
    return f"process {pid} ({name})"


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
    other socket of ours is bound there, and only if it is still the file we bound (same
    device and inode): a file another process bound since is left alone."""
    path = ipc_path(endpoint)
    if path is None:
        return
    left = _IPC_BOUND.pop(path, 0) - 1
    if left > 0:
        _IPC_BOUND[path] = left
        return
    _IPC_NAMES.pop(path, None)
    if remove_if_ours(path, _IPC_FILES.pop(path, None)) is False:
        log.warning("not removing %s: another process bound it since we did", path)

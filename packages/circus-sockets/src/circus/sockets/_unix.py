"""Binding and removing unix socket files (umask, replace, safe removal).

Every step on a socket file (the look at what is there, the unlink of a stale one, the bind,
the removal at close) is made relative to one descriptor of the folder that holds it, opened
once per step sequence. A folder on the path that another user may change can then not be
swapped for a link between the look and the unlink (which would make root unlink a file of
that user's choosing). The bind itself goes by the path by default (the address children
read back must be the path), and the folder is checked to be the same one after it; a swap
between the walk and the bind is then caught, but only after the bind made its file
wherever the link pointed. :func:`set_unix_binder` replaces that bind by one made relative
to the folder's descriptor (the daemon's bind aside, ``circus.arbiter``). How that folder
is reached is :func:`set_parent_opener`'s business: plainly by default, and by a walk that
refuses another user's links in the daemon (``circus.process.open_parent``).
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Callable
from typing import Protocol

# os.umask is process-wide: serialise our own umask windows so two sockets bound from two
# threads never restore each other's mask.
_UMASK_LOCK = threading.Lock()

FileId = tuple[int, int]
ParentOpener = Callable[[str], tuple[int, str]]
"""``opener(path) -> (descriptor of the folder holding path's last component, that
component)``; the caller closes the descriptor."""


class UnixBinder(Protocol):
    """``binder(sock, dir_fd, name, path, mode=..., replace=...) -> (st_dev, st_ino)``: bind
    ``sock`` so that its socket file is ``name`` in the folder ``dir_fd`` (``path`` is how
    clients and children name it), with ``mode`` set before anyone can reach it; a stream
    socket may be left listening. With ``replace`` a socket file at ``name`` is replaced;
    otherwise whatever is at ``name`` makes it raise FileExistsError and is left alone. It
    never takes a step by ``path``."""

    def __call__(
        self, sock: socket.socket, dir_fd: int, name: str, path: str, *, mode: int, replace: bool
    ) -> FileId: ...


def _plain_parent(path: str) -> tuple[int, str]:
    head, name = os.path.split(path)
    fd = os.open(head or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return fd, name


_opener: ParentOpener = _plain_parent


def set_parent_opener(opener: ParentOpener | None) -> None:
    """Reach the folder of every socket file bound or removed from now on with ``opener``
    (``None``: the plain ``open(folder, O_PATH)`` again). A daemon running as root passes
    a walk that will not follow a link another user could have aimed
    (``circus.process.open_parent``)."""
    global _opener
    _opener = opener or _plain_parent


_binder: UnixBinder | None = None


def set_unix_binder(binder: UnixBinder | None) -> None:
    """Bind every unix socket file from now on with ``binder``, relative to the descriptor
    of its folder (``None``: the plain bind by path under the umask again). A daemon running
    as root in folders other users own passes one that never binds by the path (a swap of
    the folder for a link then cannot send root's bind elsewhere)."""
    global _binder
    _binder = binder


def bind_unix(sock: socket.socket, path: str, umask: int, *, replace: bool) -> FileId:
    """Bind *sock* to a new socket file at *path* with *umask* in force; return the file's
    (st_dev, st_ino).

    What is at *path* already: with *replace*, a socket file is unlinked first; anything
    else is refused.

    Raises:
        FileExistsError: something is there and may not be replaced, or it is not a socket
            (a regular file or a folder is never deleted on an operator's behalf).
        OSError: the folder cannot be reached, or the bind's own error.
    """
    dir_fd, name = _opener(path)
    try:
        binder = _binder
        if binder is not None:
            return _bind_with(binder, sock, dir_fd, name, path, umask, replace)
        _make_room(dir_fd, name, path, replace)
        with _UMASK_LOCK:
            old = os.umask(umask)
            try:
                # bind() has no *at form, and the address it records is what children see
                # (getsockname): the path itself, and a look after it that it still leads
                # to the folder the other steps use
                sock.bind(path)
            finally:
                os.umask(old)
        _same_folder(dir_fd, path)
        st = os.lstat(name, dir_fd=dir_fd)
        return (st.st_dev, st.st_ino)
    finally:
        os.close(dir_fd)


def _bind_with(
    binder: UnixBinder,
    sock: socket.socket,
    dir_fd: int,
    name: str,
    path: str,
    umask: int,
    replace: bool,
) -> FileId:
    """The bind by ``binder``: what is at ``name`` judged as the plain bind does (a socket
    file replaced only with ``replace``, anything else refused), the folder checked after;
    a bind refused by that check removes its file (by the descriptor, never the path)."""
    stale = _stale_socket(dir_fd, name, path, replace)
    file_id = binder(sock, dir_fd, name, path, mode=0o777 & ~umask, replace=stale)
    try:
        _same_folder(dir_fd, path)
    except BaseException:
        try:
            st = os.lstat(name, dir_fd=dir_fd)
            if (st.st_dev, st.st_ino) == file_id:
                os.unlink(name, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    return file_id


def _same_folder(dir_fd: int, path: str) -> None:
    """Raise OSError unless ``path``'s folder, reached again, is the one ``dir_fd`` holds."""
    again, _ = _opener(path)
    try:
        a, b = os.fstat(dir_fd), os.fstat(again)
    finally:
        os.close(again)
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
        raise FileExistsError(f"the folder of {path} was replaced while it was being bound")


def _stale_socket(dir_fd: int, name: str, path: str, replace: bool) -> bool:
    """Whether a socket file to replace is at ``name``; raise FileExistsError when what is
    there may not be replaced."""
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(f"{path} exists and is not a socket file; not replacing it")
    if not replace:
        raise FileExistsError(f"{path} already exists (set replace = true to replace it)")
    return True


def _make_room(dir_fd: int, name: str, path: str, replace: bool) -> None:
    if _stale_socket(dir_fd, name, path, replace):
        os.unlink(name, dir_fd=dir_fd)


def remove_if_ours(path: str, file_id: FileId | None) -> None:
    """Unlink *path* if it still is the socket file we created (same device and inode), so a
    file that another daemon put there since is left alone; never raises."""
    if file_id is None:
        return
    try:
        dir_fd, name = _opener(path)
    except OSError:
        return
    try:
        st = os.lstat(name, dir_fd=dir_fd)
        if (st.st_dev, st.st_ino) == file_id and stat.S_ISSOCK(st.st_mode):
            os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)

"""Binding and removing unix socket files (umask, replace, safe removal)."""

from __future__ import annotations

import os
import socket
import stat
import threading

# os.umask is process-wide: serialise our own umask windows so two sockets bound from two
# threads never restore each other's mask.
_UMASK_LOCK = threading.Lock()

FileId = tuple[int, int]


def prepare_path(path: str, *, replace: bool) -> None:
    """Make room for a socket file at *path*: with *replace*, unlink a stale socket file.

    Raises FileExistsError when something is there and may not be replaced, or when it is not a
    socket at all (we never delete a regular file or a directory on an operator's behalf).
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise FileExistsError(f"{path} exists and is not a socket file; not replacing it")
    if not replace:
        raise FileExistsError(f"{path} already exists (set replace = true to replace it)")
    os.unlink(path)


def bind_unix(sock: socket.socket, path: str, umask: int) -> FileId:
    """Bind *sock* to *path* with *umask* in force; return the file's (st_dev, st_ino)."""
    with _UMASK_LOCK:
        old = os.umask(umask)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
    st = os.lstat(path)
    return (st.st_dev, st.st_ino)


def remove_if_ours(path: str, file_id: FileId | None) -> None:
    """Unlink *path* if it still is the socket file we created (same device and inode), so a
    file that another daemon put there since is left alone."""
    if file_id is None:
        return
    try:
        st = os.lstat(path)
    except OSError:
        return
    if (st.st_dev, st.st_ino) == file_id and stat.S_ISSOCK(st.st_mode):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

"""Socket files circusd binds (as root) in folders that another user may own.

A control endpoint or an ``[unix_http_server]`` socket at ``/srv/app/run/ctl.sock`` is
bound, chowned to the app's user, and later removed, by root. If ``/srv/app`` is that
user's, the user can swap ``run`` for a link between two of those steps and have root unlink
or chown a file of the user's choosing (another daemon's socket, for one). So the folder is
reached once, by ``open_parent``'s walk (which does not follow a link another user could
have aimed), and every step is made relative to that descriptor: the bind, its mode and its
owner in a private folder made there (:mod:`circus.arbiter._bindaside`), the file then moved
into place; a bind whose folder, reached again by the path after it, is not the same one is
refused (the path clients use would not lead to it).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from circus.process import open_parent

__all__ = ["FileId", "folder_of", "remove_if_ours", "same_folder", "through", "unlink_if_same"]

FileId = tuple[int, int]
"""(st_dev, st_ino) of a socket file we bound."""

_SUN_PATH_MAX = 107  # sockaddr_un's sun_path holds 108 bytes with the NUL


@contextmanager
def folder_of(path: str) -> Iterator[tuple[int, str]]:
    """``(descriptor of the folder holding path's last component, that component)``,
    reached by ``open_parent``; the descriptor is closed on exit.

    Raises:
        OSError: the folder cannot be reached, or a link on the way is refused.
    """
    dir_fd, name = open_parent(path)
    try:
        yield dir_fd, name
    finally:
        os.close(dir_fd)


def through(dir_fd: int, name: str, path: str) -> str:
    """A path that reaches ``name`` in ``dir_fd`` for ``connect()`` (which has no *at form):
    the folder seen through /proc; ``path`` itself when /proc is not there or the result
    would not fit in a socket address."""
    here = f"/proc/self/fd/{dir_fd}/{name}"
    if len(os.fsencode(here)) > _SUN_PATH_MAX or not os.path.isdir(f"/proc/self/fd/{dir_fd}"):
        return path
    return here


def same_folder(dir_fd: int, path: str) -> None:
    """Check that ``path``'s folder, walked again, is the one ``dir_fd`` holds.

    Raises:
        OSError: it is another (a folder on the path was swapped meanwhile).
    """
    with folder_of(path) as (again, _):
        a, b = os.fstat(dir_fd), os.fstat(again)
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
        raise OSError(f"the folder of {path} was replaced while it was being bound")


def unlink_if_same(dir_fd: int, name: str, file_id: FileId) -> None:
    """Unlink ``name`` in ``dir_fd`` if it still is the file ``file_id`` (a bind undone);
    whatever replaced it is left alone. Never raises."""
    try:
        info = os.lstat(name, dir_fd=dir_fd)
        if (info.st_dev, info.st_ino) == file_id:
            os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def remove_if_ours(path: str, ours: FileId | None) -> bool | None:
    """Unlink the socket file at ``path`` if it still is ``ours``: True when removed, False
    when another socket file is there (another process bound the path since), None when
    nothing was done (nothing there, not reachable, or not a socket). Never raises."""
    if ours is None:
        return None
    try:
        with folder_of(path) as (dir_fd, name):
            info = os.lstat(name, dir_fd=dir_fd)
            if not stat.S_ISSOCK(info.st_mode):
                return None
            if (info.st_dev, info.st_ino) != ours:
                return False
            os.unlink(name, dir_fd=dir_fd)
            return True
    except OSError:
        return None

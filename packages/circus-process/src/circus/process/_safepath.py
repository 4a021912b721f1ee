"""Open a file that a config names, as root, without being led elsewhere by another user's link.

A log file at ``/srv/app/logs/out.log`` is opened by circusd (root) long after the config was
read. If any directory on that path may be changed by another user (the app's own
``/srv/app``), that user can swap a component for a symlink (``logs -> /etc/cron.d``) and
have root create, append to, read or truncate a file of root's choosing. So the path is
walked one component at a time from ``/`` (or the working directory), each directory opened
with ``O_PATH | O_NOFOLLOW | O_DIRECTORY`` relative to the previous one, and a symlink met on
the way is followed only when the user who could have put it there could reach its target
anyway:

* in a directory only root or we may change (owner root or our euid, no group/other write
  bit): always, as the kernel would;
* in a sticky directory (``/tmp``): when the link is root's or ours, or leads to a directory
  owned by the link's owner;
* in a directory another user owns (and no one else may write): when it leads to a directory
  that user owns (``current -> releases/42`` of a deployment);
* in a directory a group or everyone may write (not sticky): never.

The target of a link followed is walked the same way. The walk ends with a descriptor of the
directory that holds the last component: the caller opens, renames or lists relative to it,
so a swap after the walk changes nothing. The last component itself is the caller's rule
(:func:`open_in` and :func:`open_file` do not follow a link there, nor open a file with
other hard links, unless the directory is private).
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["MAX_LINKS", "dir_is_private", "open_file", "open_in", "open_parent"]

MAX_LINKS = 40  # links followed in one walk (the kernel's own limit): a loop ends in ELOOP
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


def dir_is_private(info: os.stat_result) -> bool:
    """Whether only root or this process's euid may change the entries of that directory."""
    return info.st_uid in (0, os.geteuid()) and not info.st_mode & 0o022


def open_parent(path: str) -> tuple[int, str]:
    """An ``O_PATH`` descriptor of the directory holding ``path``'s last component, and that
    component, reached without following a link another user could have aimed (see the
    module docstring). The caller closes the descriptor.

    Raises:
        FileNotFoundError: a directory on the way does not exist.
        NotADirectoryError: a component on the way is not a directory.
        IsADirectoryError: ``path`` has no last component (``/``, ``logs/``).
        OSError: ``ELOOP`` with the link named: a link refused, or too many links.
    """
    head, name = os.path.split(path)
    if not name or name in (".", ".."):
        raise IsADirectoryError(errno.EISDIR, "names a directory, not a file", path)
    budget = [MAX_LINKS]
    try:
        start = os.open("/" if os.path.isabs(path) else ".", _DIR_FLAGS)
        return _walk(start, head, path, budget), name
    except OSError as exc:
        raise _named(exc, path) from None


def open_file(path: str, flags: int, mode: int = 0o644) -> int:
    """``os.open(path, flags, mode)`` through :func:`open_parent`'s walk, the last component
    opened by :func:`open_in`.

    Raises:
        OSError: as :func:`open_parent` or :func:`open_in`.
    """
    dir_fd, name = open_parent(path)
    try:
        return open_in(dir_fd, name, flags, mode, path)
    finally:
        os.close(dir_fd)


def open_in(dir_fd: int, name: str, flags: int, mode: int = 0o644, path: str = "") -> int:
    """``os.open(name, flags, mode, dir_fd=dir_fd)`` (close-on-exec). Unless the directory
    is private (:func:`dir_is_private`), a link at ``name`` is not followed and a regular
    file with other hard links is refused (with ``fs.protected_hardlinks`` off, another user
    may hard-link root's file into its own directory). ``path`` names the file in errors.

    Raises:
        OSError: the open's (``ELOOP``: a link not followed, said so); ``EPERM``: a file
            with other hard links.
    """
    private = dir_is_private(os.fstat(dir_fd))
    if not private:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(name, flags | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP and flags & os.O_NOFOLLOW:
            raise OSError(
                errno.ELOOP,
                f"{path or name} is a link in a directory other users may write: not followed",
            ) from None
        if path:
            raise _named(exc, path) from None
        raise
    if not private:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            os.close(fd)
            raise OSError(
                errno.EPERM,
                f"{path or name} has {info.st_nlink} hard links, in a directory other users "
                "may write: not opened",
            )
    return fd


def _named(exc: OSError, path: str) -> OSError:
    """``exc`` (same class and errno) naming ``path`` as given, with the component of the
    step that failed in its message: one step's error names only that component."""
    if exc.filename == path or exc.errno is None:
        return exc
    reason = exc.strerror or str(exc)
    if exc.filename is not None:
        reason = f"{reason} (at {os.fsdecode(exc.filename)!r})"
    return OSError(exc.errno, reason, path)


def _walk(fd: int, rest: str, path: str, budget: list[int]) -> int:
    """Walk ``rest`` from the directory ``fd`` (taken over: closed or returned)."""
    try:
        for part in rest.split("/"):
            if part in ("", "."):
                continue
            fd = _step(fd, part, path, budget)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _step(fd: int, part: str, path: str, budget: list[int]) -> int:
    """The directory ``part`` of ``fd``, a link there followed if allowed; closes ``fd``."""
    try:
        new = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
    except OSError as exc:
        # O_NOFOLLOW | O_DIRECTORY on a link: ENOTDIR (some kernels say ELOOP)
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        try:
            link = os.lstat(part, dir_fd=fd)
        except OSError:
            raise exc from None
        if not stat.S_ISLNK(link.st_mode):
            raise
        new = _follow(fd, part, link, path, budget)
    os.close(fd)
    return new


def _follow(fd: int, part: str, link: os.stat_result, path: str, budget: list[int]) -> int:
    """The directory the link ``part`` of ``fd`` leads to, or ELOOP if it may not be followed."""
    budget[0] -= 1
    if budget[0] < 0:
        raise OSError(errno.ELOOP, "too many links", path)
    holder = os.fstat(fd)
    target = os.readlink(part, dir_fd=fd)
    start = os.open("/" if target.startswith("/") else ".", _DIR_FLAGS, dir_fd=fd)
    new = _walk(start, target, path, budget)
    if dir_is_private(holder) or _planted_by_owner(holder, link, os.fstat(new)):
        return new
    os.close(new)
    if holder.st_mode & 0o022 and not holder.st_mode & stat.S_ISVTX:
        who = "in a directory a group or everyone may write (any of them may replace it)"
    else:
        who = "another user may have put there, to a directory that user does not own"
    raise OSError(errno.ELOOP, f"{part} -> {target} is a link {who}: not followed", path)


def _planted_by_owner(holder: os.stat_result, link: os.stat_result, led: os.stat_result) -> bool:
    """Whether whoever could have put ``link`` in ``holder`` owns the directory it leads to."""
    if holder.st_mode & stat.S_ISVTX:
        # sticky: only the link's owner may replace it
        return link.st_uid in (0, os.geteuid()) or led.st_uid == link.st_uid
    if holder.st_mode & 0o022:
        return False  # a group or everyone may replace it
    return led.st_uid == holder.st_uid

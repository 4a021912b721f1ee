"""Binding a unix socket file in a folder another user may own, with no step taken by path.

``bind()`` has no ``*at`` form: the kernel resolves the path it is given, so a bind by the
socket's path in a folder another user controls is sent wherever that user's swap of the
folder for a link points; and ZeroMQ's ipc bind first unlinks whatever is at the path, by
path (root's libzmq would unlink a file of that user's choosing). Here nothing is done by the
path:

* a private folder is made inside the checked folder (``mkdirat`` on its descriptor: the same
  file system, so a rename can move the socket out of it), 0700, ours, empty; nobody else can
  put anything in it;
* the socket is bound there by a short-lived thread with a root, working directory and umask
  of its own (``unshare(CLONE_FS)``): chrooted into the private folder, it binds the socket's
  own path string, which lands inside the private folder (the folders on the way are made
  there), so the address the socket reports (``getsockname``, ``/proc/net/unix``, a
  client's ``getpeername``) is the real path. Without the right to chroot (circusd not
  root), the thread binds the bare name from inside the private folder's last folder, and
  the socket reports that bare name. Where the thread may not have a context of its own
  (``unshare`` refused by a seccomp filter, or no thread to be had), the bind goes by a path
  to the private folder through the checked folder's name, and is refused unless it landed
  there;
* the ACLs the private folder inherits from the checked folder's default ACL are removed
  (that folder's owner could name itself in it), so nothing made there inherits any;
* its mode and owner are set there (``fchmodat``/``fchownat`` in a folder only we write to:
  no ``/proc`` needed, no link to follow), it listens, and it is moved into place relative to
  the checked folder's descriptor: ``renameat`` taking over a file of ours, otherwise
  ``linkat`` (which refuses whatever appeared at the name meanwhile, link or not) then the
  private name unlinked;
* the private folders go. One a bind killed midway left behind (a SIGKILL) is removed by
  the next bind in that folder once it is :data:`STALE_AFTER` seconds old (younger, it may
  be another circusd's bind in progress), and only if it and all it holds are ours:
  private folders and socket files.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import threading
import time

__all__ = ["PRIVATE_PREFIX", "STALE_AFTER", "bind_aside"]

PRIVATE_PREFIX = ".circus-bind-"
STALE_AFTER = 60.0
"""Seconds after which a private folder left in a socket's folder is taken as a killed
bind's, and removed."""
FileId = tuple[int, int]

_SHORT = "s"  # the socket's name in the private folder when bound by names (shortest path)
_SUN_PATH_MAX = 107  # sockaddr_un's sun_path holds 108 bytes with the NUL
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def bind_aside(
    sock: socket.socket,
    dir_fd: int,
    name: str,
    path: str,
    *,
    mode: int,
    owner: tuple[int, int] | None = None,
    replace: bool = False,
    backlog: int | None = 128,
) -> FileId:
    """Bind the unix socket ``sock`` so that it listens at ``name`` in the folder ``dir_fd``
    (``path`` is how clients name it), with ``mode`` and ``owner`` (uid, gid; -1 keeps one)
    set before anyone can reach it; the socket file's (st_dev, st_ino).

    Args:
        replace: a file at ``name`` is replaced (a socket of ours taken over); otherwise
            anything there makes the bind fail and is left alone.
        backlog: ``listen(backlog)`` before the file is reachable; None: no ``listen``
            (a datagram socket).

    Raises:
        FileExistsError: ``name`` is taken (without ``replace``).
        OSError: the private folder cannot be made or is not ours, or a system call failed.
    """
    _sweep(dir_fd)
    tag = PRIVATE_PREFIX + os.urandom(3).hex()
    os.mkdir(tag, 0o700, dir_fd=dir_fd)
    root = -1
    try:
        root = os.open(tag, _DIR, dir_fd=dir_fd)
        _check_private(root, path)
        _drop_acls(root, path)
        made: list[tuple[int, str, int]] = []  # (parent fd, name, fd) of the folders made
        try:
            leaf, base = root, os.path.basename(path)
            try:
                confined = _bind_confined(sock, root, path, base, 0o777 & ~mode, made)
                if confined is None:
                    base = _SHORT
                    _bind_by_names(sock, root, path, tag)
                else:
                    leaf = confined
                info = os.lstat(base, dir_fd=leaf)
                if not stat.S_ISSOCK(info.st_mode):  # pragma: no cover - only we write here
                    raise OSError(f"{path}: the bind made no socket file")
                # a folder only we write to: nothing here can be a link of someone else's
                if owner is not None:
                    os.chown(base, owner[0], owner[1], dir_fd=leaf, follow_symlinks=False)
                os.chmod(base, mode, dir_fd=leaf)
                if backlog is not None:  # before it is reachable: a connect is never refused
                    sock.listen(backlog)
                _move_into_place(leaf, base, dir_fd, name, path, replace)
                return (info.st_dev, info.st_ino)
            finally:
                try:
                    os.unlink(base, dir_fd=leaf)
                except OSError:
                    pass
        finally:
            for parent, entry, fd in reversed(made):
                os.close(fd)
                try:
                    os.rmdir(entry, dir_fd=parent)
                except OSError:
                    pass
    finally:
        _remove_private(dir_fd, tag, root)


def _check_private(root: int, path: str) -> None:
    """The folder just made is ours, private and empty (not one another user renamed in)."""
    info = os.fstat(root)
    if info.st_uid != os.geteuid() or info.st_mode & 0o077 or os.listdir(root):
        raise OSError(f"{path}: the private folder made for the bind was replaced; not binding")


def _drop_acls(root: int, path: str) -> None:
    """Remove the POSIX ACLs the private folder inherited from the checked folder's default
    ACL: the folder's owner could have set one naming itself, and the socket file made in
    here would inherit it (the mode's group bits its mask: a 0660 socket of root's group
    connectable by that owner). Without them, the mode is all there is."""
    absent = (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP)
    for attr in ("system.posix_acl_default", "system.posix_acl_access"):
        try:
            os.removexattr(root, attr)
        except OSError as exc:
            if exc.errno in absent:
                continue
            try:  # refused (a security module): fine if there is none to remove
                os.getxattr(root, attr)
            except OSError as again:
                if again.errno in absent:
                    continue
            raise OSError(
                f"{path}: cannot remove the ACL {attr} of the private folder: {exc}"
            ) from None


def _mirror(root: int, path: str, made: list[tuple[int, str, int]]) -> int:
    """Make in ``root`` the folders ``path``'s folder part walks through, as a chrooted
    bind of ``path`` will; the descriptor of the last one (``root`` itself if none)."""
    here = [root]
    for part in os.path.dirname(path).split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if len(here) > 1:  # ".." at a root stays there
                here.pop()
            continue
        try:
            os.mkdir(part, 0o700, dir_fd=here[-1])
        except FileExistsError:
            pass
        fd = os.open(part, _DIR, dir_fd=here[-1])
        made.append((here[-1], part, fd))
        here.append(fd)
    return here[-1]


def _bind_confined(
    sock: socket.socket,
    root: int,
    path: str,
    base: str,
    umask: int,
    made: list[tuple[int, str, int]],
) -> int | None:
    """``sock.bind`` inside the private folder, from a thread with a file-system context of
    its own (the process's root, working directory and umask are never changed); the
    descriptor of the folder the socket file is in (one of ``made``, or ``root``). None
    when the thread cannot have such a context (``unshare`` refused: a seccomp filter, as
    Docker's default one without CAP_SYS_ADMIN) or cannot be started: nothing made or
    bound then."""
    from ._unshare import unshare_fs

    failure: list[BaseException] = []
    where: list[int] = []

    def run() -> None:
        try:
            try:
                unshare_fs()
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.ENOSYS, errno.EINVAL):
                    return
                raise
            leaf = _mirror(root, path, made)  # descriptors: independent of the thread's root
            where.append(leaf)
            os.umask(umask)
            os.fchdir(root)
            try:
                os.chroot(".")
                target = path
            except PermissionError:
                os.fchdir(leaf)
                target = base
            sock.bind(target)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, name="circus-bind", daemon=True)
    try:
        worker.start()
    except RuntimeError:
        # No thread to be had (RLIMIT_NPROC, a cgroup's pids.max on a crowded host): bound
        # by names instead, as where unshare is refused, rather than no endpoint at all.
        return None
    worker.join()
    if failure:
        raise failure[0]
    return where[0] if where else None


def _bind_by_names(sock: socket.socket, root: int, path: str, tag: str) -> None:
    """``sock.bind`` by a path to the private folder through the checked folder's name:
    what a swap of that folder for a link can redirect, but only into a folder of that
    name, which exists only where its maker could write (never one of root's). A bind that
    did not land in our private folder is refused. The socket's address is that path."""
    aside = os.path.join(os.path.dirname(path), tag, _SHORT)
    over = len(os.fsencode(aside)) - _SUN_PATH_MAX
    if over > 0:
        raise OSError(
            f"{path}: too long by {over} characters to be bound through a private folder "
            "by its name (unshare(CLONE_FS) is refused here): shorten the path"
        )
    sock.bind(aside)
    try:
        os.lstat(_SHORT, dir_fd=root)
    except FileNotFoundError:
        raise OSError(f"the folder of {path} was replaced while it was being bound") from None


def _move_into_place(
    leaf: int, base: str, dir_fd: int, name: str, path: str, replace: bool
) -> None:
    if replace:
        os.replace(base, name, src_dir_fd=leaf, dst_dir_fd=dir_fd)
        return
    try:
        os.link(base, name, src_dir_fd=leaf, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        raise FileExistsError(
            f"{path} appeared while the socket was being bound; not replacing it"
        ) from None


def _remove_private(dir_fd: int, tag: str, root: int) -> None:
    """rmdir the private folder, if the name still is it (never raises)."""
    try:
        if root >= 0:
            mine = os.fstat(root)
            there = os.lstat(tag, dir_fd=dir_fd)
            if (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
                return
        os.rmdir(tag, dir_fd=dir_fd)
    except OSError:
        pass
    finally:
        if root >= 0:
            os.close(root)


def _sweep(dir_fd: int) -> None:
    """Remove the private folders killed binds left in ``dir_fd`` (never raises)."""
    try:
        listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return
    try:
        names = [n for n in os.listdir(listing) if n.startswith(PRIVATE_PREFIX)]
    except OSError:
        names = []
    finally:
        os.close(listing)
    for entry in names:
        _remove_ours(dir_fd, entry, time.time() - STALE_AFTER, depth=64)


def _remove_ours(parent: int, entry: str, older_than: float | None, depth: int) -> bool:
    """rmdir ``entry`` of ``parent`` after removing what it holds, if it is a private
    folder of ours (modified before ``older_than``, when given) holding only socket files
    and such folders; whether it went. Never raises, never follows a link."""
    if depth <= 0:
        return False
    try:
        fd = os.open(entry, _DIR, dir_fd=parent)
    except OSError:
        return False  # a link, not a folder, or gone
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or info.st_mode & 0o077:
            return False
        if older_than is not None and info.st_mtime > older_than:
            return False
        for inner in os.listdir(fd):
            kind = os.lstat(inner, dir_fd=fd).st_mode
            if stat.S_ISSOCK(kind):
                os.unlink(inner, dir_fd=fd)
            elif not (stat.S_ISDIR(kind) and _remove_ours(fd, inner, None, depth - 1)):
                return False
        os.rmdir(entry, dir_fd=parent)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)

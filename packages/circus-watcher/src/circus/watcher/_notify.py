"""The sd_notify protocol, server side: one datagram socket per process, read on the loop.

Each process of a watcher using ``notify`` gets its own ``$NOTIFY_SOCKET``: a unix datagram
socket ``<runtime dir>/<n>/notify``. The runtime dir (``circus-notify-*`` in
``$XDG_RUNTIME_DIR``, else the temp dir) is mode 0711 (nobody may list it); each process's
``<n>`` dir is ours, 0700 (0711 for a process of another user, who may pass through it but
put nothing in it: a tree of its own there would be ours to remove), and the socket is 0600,
owned by the process's user, so another user cannot connect to it. A process of the same
user could: every datagram therefore carries its sender's
credentials (``SO_PASSCRED``), and only one sent by the process itself or by one of its
descendants counts (its ancestry is read from ``/proc`` when the datagram is read; a sender
gone by then is not counted). The socket and its dir are removed when the process goes.

The sockets are read by the event loop (``add_reader``), never by a thread. A read takes at
most :data:`_BURST` datagrams, so a child flooding its socket cannot hold the loop; a datagram
larger than :data:`MAX_DATAGRAM`, without credentials, or with truncated ancillary data is
dropped; descriptors passed with ``SCM_RIGHTS`` are closed at once.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import os
import socket
import stat
import struct
from collections.abc import Callable

__all__ = ["MAX_DATAGRAM", "NotifyChannel", "NotifyDir", "parse_message", "sender_in_tree"]

logger = logging.getLogger("circus.watcher")

#: The largest datagram read (systemd's own limit is about this); a longer one is dropped.
MAX_DATAGRAM = 4096
_BURST = 32  # datagrams read per wake-up of one socket
_BUDGET = 256  # datagrams read per socket per second; past it the socket rests a second
_MAX_STATUS = 256  # characters of STATUS= kept
_CREDS = struct.Struct("iII")  # struct ucred: pid, uid, gid
_ANC_SIZE = socket.CMSG_SPACE(_CREDS.size) + socket.CMSG_SPACE(253 * 4)  # 253 = SCM_MAX_FD
_SO_PASSCRED = getattr(socket, "SO_PASSCRED", 16)
_SCM_CREDENTIALS = getattr(socket, "SCM_CREDENTIALS", 2)
_MSG_CMSG_CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0x40000000)
_UNIX_PATH_MAX = 107
_PREFIX = "circus-notify-"
_SWEPT: set[str] = set()  # runtime bases already swept by this process

#: ``on_message(sender_pid, fields)``, fields ``{KEY: value}`` of one accepted datagram.
MessageHandler = Callable[[int, dict[str, str]], None]


def parse_message(data: bytes) -> dict[str, str]:
    """``KEY=VALUE`` lines of one datagram; lines without ``=`` or with an odd key are skipped.

    ``STATUS`` keeps printable characters only, at most 256 of them.
    """
    fields: dict[str, str] = {}
    for raw in data.split(b"\n"):
        key, eq, value = raw.partition(b"=")
        if not eq or not key or len(key) > 64 or not key.replace(b"_", b"").isalnum():
            continue
        text = value.decode("utf-8", "replace")
        name = key.decode("ascii", "replace")
        if name == "STATUS":
            text = "".join(ch for ch in text if ch.isprintable())[:_MAX_STATUS]
        fields[name] = text
    return fields


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    # the comm field may hold spaces and parentheses: the fields after its last ')'
    tail = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(tail[1])
    except (IndexError, ValueError):
        return None


def sender_in_tree(sender: int, root: int, depth: int = 64) -> bool:
    """Whether ``sender`` is ``root`` or one of its descendants (read from /proc now)."""
    pid: int | None = sender
    for _ in range(depth):
        if pid is None or pid <= 1:
            return False
        if pid == root:
            return True
        pid = _parent_of(pid)
    return False


def cgroup_of(pid: int) -> str | None:
    """The cgroup2 path of ``pid`` (``/a/b``), or None."""
    try:
        with open(f"/proc/{pid}/cgroup", "rb") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(b"0::"):
            return line[3:].decode("utf-8", "replace")
    return None


def _runtime_base() -> str:
    for base in (os.environ.get("XDG_RUNTIME_DIR", ""), os.environ.get("TMPDIR", ""), "/tmp"):
        # room for "/circus-notify-PPPPPPP-XXXXXXXXXXXX/NNNNNN/notify" in a unix socket path
        fits = base and len(base) <= _UNIX_PATH_MAX - 56 and os.path.isdir(base)
        if fits and os.access(base, os.W_OK | os.X_OK):
            return base
    return "/tmp"


def _remove_tree(path: str) -> None:
    """Remove ``path`` and what its process's user may have put in it. Everything goes
    through descriptors of dirs already opened (``fwalk``, ``dir_fd``) and no link is
    followed, so swapping a dir for a symlink meanwhile cannot make us remove anything else."""
    with contextlib.suppress(OSError, RecursionError):
        for _top, dirs, files, fd in os.fwalk(path, topdown=False):
            for name in files:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=fd)
            for name in dirs:  # a symlink to a dir is listed here: unlinked, not followed
                try:
                    os.rmdir(name, dir_fd=fd)
                except OSError:
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=fd)
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _sweep(base: str) -> None:
    """Remove the notify dirs left in ``base`` by daemons of our user that are gone (killed
    before they could clean up). A dir whose daemon pid is alive, even if reused by another
    process, is left alone; so is anything not a real dir of our user."""
    uid = os.geteuid()
    try:
        entries = list(os.scandir(base))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not name.startswith(_PREFIX):
            continue
        pid_text = name[len(_PREFIX) :].partition("-")[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            os.kill(int(pid_text), 0)
            continue  # its daemon (or a process with its pid) is alive
        except ProcessLookupError:
            pass
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == uid:
            _remove_tree(entry.path)


def _make_dir(base: str) -> str:
    """A new ``circus-notify-PID-XXXXXXXXXXXX`` dir in ``base``, mode 0711: others may pass
    through it to their own 0700 dir, not list it. (tempfile and shutil stay unloaded in a
    running daemon.) Dirs left by dead daemons are swept first, once per base and daemon."""
    if base not in _SWEPT:
        _SWEPT.add(base)
        _sweep(base)
    for _ in range(100):
        path = os.path.join(base, f"{_PREFIX}{os.getpid()}-{os.urandom(6).hex()}")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o711)
        return path
    raise FileExistsError(f"cannot make a unique dir in {base}")


class NotifyDir:
    """The runtime dir of one watcher's notify sockets: made on first use, removed when its
    last channel is closed."""

    def __init__(self) -> None:
        self.path: str | None = None
        self._open = 0
        self._serial = 0

    def channel(self, owner: int | None) -> NotifyChannel:
        """A new bound channel (its socket owned by uid ``owner`` when given).

        Raises:
            OSError: the dir or socket cannot be made (no space, no descriptor…).
        """
        if self.path is None or not os.path.isdir(self.path):
            self.path = _make_dir(_runtime_base())
        self._serial += 1
        sub = os.path.join(self.path, str(self._serial))
        os.mkdir(sub, 0o700)
        try:
            chan = NotifyChannel(self, sub, owner)
        except BaseException:
            with contextlib.suppress(OSError):
                os.rmdir(sub)
            raise
        self._open += 1
        return chan

    def released(self) -> None:
        """One channel closed; the dir goes with the last one."""
        self._open -= 1
        if self._open <= 0 and self.path is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self.path)
            self.path = None
            self._open = 0


class NotifyChannel:
    """The ``$NOTIFY_SOCKET`` of one process, read on the loop once :meth:`attach` names it."""

    def __init__(self, parent: NotifyDir, directory: str, owner: int | None) -> None:
        self._parent = parent
        self._dir = directory
        self.path = os.path.join(directory, "notify")
        self._sock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._root = 0
        self._cgroup: str | None = None
        self._handler: MessageHandler | None = None
        self.dropped = 0  # datagrams refused (foreign sender, garbage, oversized)
        self.rests = 0  # times the socket was left unread a second (flooded)
        self._window = 0.0  # start of the current one-second budget window
        self._spent = 0  # datagrams read in it
        try:
            self._sock.setblocking(False)
            self._sock.setsockopt(socket.SOL_SOCKET, _SO_PASSCRED, 1)
            self._sock.bind(self.path)
            os.chmod(self.path, 0o600)
            if owner is not None and owner != os.geteuid():
                # the dir stays ours: a user owning it could fill it with a tree deeper than
                # any recursion, or millions of entries, for us to remove on the loop
                os.chown(self.path, owner, -1, follow_symlinks=False)
                os.chmod(directory, 0o711)
        except BaseException:
            self._sock.close()
            self._sock = None
            raise

    @property
    def env(self) -> dict[str, str]:
        """The variables the process gets: ``NOTIFY_SOCKET``."""
        return {"NOTIFY_SOCKET": self.path}

    def attach(self, root_pid: int, handler: MessageHandler, cgroup: str | None = None) -> None:
        """Start reading: datagrams from ``root_pid`` or its descendants go to ``handler``.

        ``cgroup``: the cgroup2 leaf the process alone has (with all it forks); a sender
        inside it counts too, even one that daemonized (reparented away from the process).
        """
        if self._sock is None:
            return
        self._root = root_pid
        self._cgroup = cgroup if cgroup and cgroup != "/" else None
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def close(self) -> None:
        """Stop reading, close the socket, remove it and its dir (idempotent)."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock.fileno())
        sock.close()
        self._handler = None
        _remove_tree(self._dir)
        self._parent.released()

    def _readable(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        if now - self._window >= 1.0:
            self._window, self._spent = now, 0
        if self._spent >= _BUDGET:
            # a flood: leave the socket unread for the rest of the window (the sender's queue
            # fills and blocks it), so one process cannot take the loop
            self.rests += 1
            sock = self._sock
            if sock is not None:
                loop.remove_reader(sock.fileno())
                loop.call_at(self._window + 1.0, self._resume)
            return
        for _ in range(_BURST):
            sock = self._sock
            if sock is None:
                return
            try:
                data, ancdata, flags, _addr = sock.recvmsg(
                    MAX_DATAGRAM, _ANC_SIZE, _MSG_CMSG_CLOEXEC
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.debug("notify socket %s: %s", self.path, exc)
                return
            self._spent += 1
            sender = _accept(ancdata, flags)
            if sender is None or not data or not self._trusted(sender):
                self.dropped += 1
                continue
            handler = self._handler
            if handler is not None:
                try:
                    handler(sender, parse_message(data))
                except Exception:
                    logger.exception("notify handler failed on %s", self.path)

    def _resume(self) -> None:
        if self._sock is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.add_reader(self._sock.fileno(), self._readable)

    def _trusted(self, sender: int) -> bool:
        if sender_in_tree(sender, self._root):
            return True
        if self._cgroup is None:
            return False
        found = cgroup_of(sender)
        return found is not None and (found == self._cgroup or found.startswith(self._cgroup + "/"))


def _accept(ancdata: list[tuple[int, int, bytes]], flags: int) -> int | None:
    """The sender's pid when the datagram is whole and carries credentials; closes any
    descriptor passed along (a child must not make us hold its files)."""
    sender: int | None = None
    for level, kind, payload in ancdata:
        if level != socket.SOL_SOCKET:
            continue
        if kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        elif kind == _SCM_CREDENTIALS and len(payload) >= _CREDS.size:
            sender = _CREDS.unpack_from(payload)[0]
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        return None
    return sender

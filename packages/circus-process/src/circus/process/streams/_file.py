"""FileStream (size rotation) and WatchedFileStream (reopen when the file is moved)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._errors import StreamError
from .._safepath import open_in, open_parent
from ._base import Chunk, LineFramer, prefix_line, to_int, to_str_or_none
from ._drops import DropReport

__all__ = ["FileStream", "WatchedFileStream"]

# A shared file holds back at most this much of one process's unterminated line.
MAX_HELD = 64 * 1024
# One splice call moves at most this much, so one busy pipe cannot hog the loop forever.
SPLICE_CHUNK = 1 << 20
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
# splice() errors that mean "this pair of files cannot splice" (the caller reads instead), as
# opposed to "the file cannot be written" (the output is dropped and counted).
_SPLICE_REFUSED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF, errno.ESPIPE}
# An open() failing this way is an outage that may end (space freed), not a bad config.
_TRANSIENT = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EMFILE, errno.ENFILE}


class FileStream:
    """Append a process's output to a file, optionally size-rotated and line-prefixed.

    Args:
        filename: the file (a fresh temp file when missing, as upstream).
        max_bytes: rotate when the file would grow past this size (0: never).
        backup_count: keep ``file.1`` ... ``file.N``; with 0 the file is truncated instead.
        time_format: strftime format; when set every line becomes ``<time> [<pid>] | line``
            (lines split across reads are re-assembled first).

    Without ``time_format`` the stream takes bytes straight from a pipe with ``os.splice``
    while one process feeds it. Once several do (a watcher's processes sharing the file), it
    reads instead and writes whole lines only: each process's unterminated tail is held back
    until its newline arrives (or EOF, or :data:`MAX_HELD` bytes), so one process's line is
    never cut by another's (a write larger than the pipe's atomic 4 KiB, or a block-buffered
    program's, leaves half a line in the pipe). Writes are unbuffered (``os.write``).

    Output that cannot be written (a full disk, a quota, an I/O error, a rotation or reopen
    that fails) is dropped and counted, never raised: one WARNING says so at once, then at
    most one per :attr:`DropReport.interval` (5 s) with the bytes and lines dropped, and one
    more when writing works again. Every new chunk tries the file again, so writing resumes
    by itself once there is room.
    """

    def __init__(
        self,
        filename: str | None = None,
        max_bytes: int | str = 0,
        backup_count: int | str = 0,
        time_format: str | None = None,
        **options: Any,
    ) -> None:
        # Every option is checked before a temp file is made: a refused stream leaves nothing.
        self.max_bytes = to_int("max_bytes", max_bytes)
        self.backup_count = to_int("backup_count", backup_count)
        self.time_format = to_str_or_none(time_format)
        name = to_str_or_none(filename)
        if name is None:
            import tempfile  # only a nameless stream needs it

            fd, name = tempfile.mkstemp(prefix="circus-", suffix=".log")
            os.close(fd)
        self.filename = name
        self.options = options
        self._fd: int | None = None
        self._size = 0
        self._framer = LineFramer() if self.time_format else None
        # pipes feeding this stream (attach/end), and their held-back tails when shared
        self._writers: set[tuple[int, str]] = set()
        self._held: dict[tuple[int, str], bytes] = {}
        self._drops: DropReport | None = None  # made at the first write that fails

    # -- lifecycle ---------------------------------------------------------------------------

    def _open_fd(self) -> int:
        with self._directory() as (dir_fd, name):
            return self._open_in(dir_fd, name)

    @contextmanager
    def _directory(self) -> Iterator[tuple[int, str]]:
        """The directory holding the file, walked without following another user's link
        (``circus.process._safepath``), and the file's name in it: every open, rename and
        removal goes through it, so a path component swapped meanwhile leads nowhere."""
        try:
            dir_fd, name = open_parent(self.filename)
        except (FileNotFoundError, NotADirectoryError):
            raise StreamError("filename", self.filename, "its directory does not exist") from None
        try:
            yield dir_fd, name
        finally:
            os.close(dir_fd)

    def _open_in(self, dir_fd: int, name: str) -> int:
        # No O_APPEND: splice() refuses append-mode files. We are the only writer of this fd
        # and keep its offset at the end ourselves. A link as the file itself is followed
        # only in a directory no other user may write (root's /dev/stderr, not the app's
        # own log dir: followed as root, the output would go to any file, /etc/cron.d/x).
        flags = os.O_WRONLY | os.O_CREAT
        fd = self._fd = open_in(dir_fd, name, flags, 0o644, self.filename)
        self._size = os.lseek(fd, 0, os.SEEK_END)
        return fd

    def _current_fd(self) -> int:
        """The open fd; opened now if there is none (a rotation leaves one open or raises)."""
        return self._open_fd() if self._fd is None else self._fd

    def open(self) -> None:
        """Open the file (idempotent; called lazily on first write too).

        A file that cannot be created for want of space (or another transient cause) is not
        an error here: a warning is logged and the first write tries again.

        Raises:
            StreamError: the file's directory does not exist.
            OSError: the file cannot be opened (permissions, a directory...).
        """
        if self._fd is None:
            try:
                self._open_fd()
            except OSError as exc:
                if exc.errno not in _TRANSIENT:
                    raise
                self._dropped(b"", exc)

    def close(self) -> None:
        """Write pending partial lines and close the file (it can be reopened)."""
        if self._framer is not None and self._fd is not None and self.time_format:
            for pid, line in self._framer.flush_all():
                self._write(prefix_line(self.time_format, pid, line).encode())
        held, self._held = self._held, {}
        for tail in held.values():
            self._write(tail)
        if self._drops is not None:
            self._drops.flush()
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError as exc:  # a delayed write error (NFS, EIO): the fd is gone anyway
                self._dropped(b"", exc)

    @property
    def dropped(self) -> tuple[int, int]:
        """Bytes and lines of output dropped because the file could not be written."""
        if self._drops is None:
            return 0, 0
        return self._drops.bytes_dropped, self._drops.lines_dropped

    def _dropped(self, data: bytes | memoryview, exc: Exception) -> None:
        if self._drops is None:
            self._drops = DropReport(self.filename)
        self._drops.drop(data, exc)

    def fileno(self) -> int | None:
        """The open fd, or None."""
        return self._fd

    # -- writing -----------------------------------------------------------------------------

    def __call__(self, data: Chunk) -> None:
        """Write one chunk (prefixed per complete line when ``time_format`` is set)."""
        payload = data["data"]
        if self.time_format and self._framer is not None:
            lines = self._framer.feed(data["pid"], data["name"], payload)
            if not lines:
                return
            payload = "".join(
                prefix_line(self.time_format, data["pid"], line) for line in lines
            ).encode()
        elif len(self._writers) > 1 or self._held:
            payload = self._whole_lines((data["pid"], data["name"]), payload)
        if payload:
            self._write(payload)

    def _whole_lines(self, key: tuple[int, str], data: bytes) -> bytes:
        """``data`` after what ``key`` held back, up to its last newline; keep the rest."""
        held = self._held.pop(key, None)
        buf = held + data if held else data
        end = buf.rfind(b"\n") + 1
        if end == len(buf) or len(buf) - end >= MAX_HELD:
            return buf
        self._held[key] = buf[end:]
        return buf[:end]

    def attach(self, pid: int, name: str) -> None:
        """Pipe ``name`` of ``pid`` feeds this stream from now on (until :meth:`end`)."""
        self._writers.add((pid, name))

    def partial(self, pid: int, name: str) -> bytes:
        """The unterminated line held back for ``pid``'s pipe ``name`` (kept; only with
        ``time_format`` or a shared file, otherwise bytes are written as they come)."""
        if self._framer is not None:
            return self._framer.partial(pid, name)
        return self._held.get((pid, name), b"")

    def end(self, pid: int, name: str) -> None:
        """The pipe of ``pid`` hit EOF: write its pending partial line."""
        self._writers.discard((pid, name))
        if self._framer is not None and self.time_format:
            lines = self._framer.flush(pid, name)
            if lines:
                self._write(prefix_line(self.time_format, pid, lines[0]).encode())
        tail = self._held.pop((pid, name), None)
        if tail:
            self._write(tail)

    def _prepare(self) -> int:
        """Make ``self._fd`` point at the end of the current file before any I/O; return it.

        Several streams may write the same file (stdout and stderr configured alike): each
        has its own fd, and splice() refuses O_APPEND files, so every write starts with a
        seek to the end (and re-reads the size, others' bytes included).
        """
        if self._fd is None:
            self._open_fd()
        self._before_io()
        fd = self._current_fd()
        self._size = os.lseek(fd, 0, os.SEEK_END)
        return fd

    def _before_io(self) -> None:
        """Hook run before each write or splice (reopen checks, time rotation).

        With size rotation on, follow the path if another stream rotated the file.
        """
        if self.max_bytes:
            self._follow_path()

    def _follow_path(self) -> None:
        """Reopen when the path no longer names our open file (moved, deleted, rotated)."""
        if self._fd is None:
            return
        try:
            st = os.stat(self.filename)
        except FileNotFoundError:
            st = None
        cur = os.fstat(self._fd)
        if st is None or (st.st_dev, st.st_ino) != (cur.st_dev, cur.st_ino):
            os.close(self._fd)
            self._fd = None
            self._open_fd()

    def _write(self, payload: bytes) -> None:
        view = memoryview(payload)
        try:
            fd = self._prepare()
            if self.max_bytes and self._size and self._size + len(payload) > self.max_bytes:
                self.rotate()
                fd = self._current_fd()
            while view:
                written = os.write(fd, view)
                self._size += written
                view = view[written:]
        except (OSError, StreamError) as exc:  # StreamError: the directory is gone
            self._dropped(view, exc)
            return
        if self._drops is not None and self._drops.failing:
            self._drops.ok()

    @property
    def can_splice(self) -> bool:
        """True when bytes can go to the file verbatim: no per-line formatting, and at most
        one process feeding it (a shared file gets whole lines only, see the class)."""
        return not self.time_format and len(self._writers) <= 1 and not self._held

    def splice_from(self, fd: int) -> int:
        """Move up to 1 MiB from pipe ``fd`` into the file with ``os.splice``.

        Returns the bytes moved (0 at EOF); raises BlockingIOError when the pipe is empty.
        Size rotation happens on the 1 MiB boundaries this implies, not on line boundaries.
        When the file cannot be written, up to 1 MiB is read from the pipe and dropped (and
        counted) instead, so the child is never stalled by a full disk.

        Raises:
            BlockingIOError: the pipe is empty.
            OSError: the file refuses splice (EINVAL...): the caller reads instead.
        """
        count = SPLICE_CHUNK
        try:
            out = self._prepare()
            if self.max_bytes:
                if self._size >= self.max_bytes:
                    self.rotate()
                    out = self._current_fd()
                count = min(count, self.max_bytes - self._size) or count
            moved = os.splice(fd, out, count, flags=_SPLICE_FLAGS)
        except BlockingIOError:
            raise
        except (OSError, StreamError) as exc:
            if getattr(exc, "errno", None) in _SPLICE_REFUSED and self._fd is not None:
                raise
            data = os.read(fd, SPLICE_CHUNK)  # BlockingIOError: nothing waiting
            if data:
                self._dropped(data, exc)
            return len(data)
        self._size += moved
        if moved and self._drops is not None and self._drops.failing:
            self._drops.ok()
        return moved

    # -- rotation ----------------------------------------------------------------------------

    def rotate(self) -> None:
        """Rotate now: ``file`` -> ``file.1`` -> ... -> ``file.N`` (truncate when N is 0)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with self._directory() as (dir_fd, name):
            if self.backup_count <= 0:
                # the same checks as any open: never truncate through a link
                fd = self._open_in(dir_fd, name)
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                self._size = 0
                return
            for i in range(self.backup_count - 1, 0, -1):
                if entry_exists(dir_fd, f"{name}.{i}"):
                    rename_in(dir_fd, f"{name}.{i}", f"{name}.{i + 1}")
            if entry_exists(dir_fd, name):
                rename_in(dir_fd, name, f"{name}.1")
            self._open_in(dir_fd, name)


class WatchedFileStream(FileStream):
    """A FileStream without rotation that reopens its file when it was moved or deleted.

    Meant for external rotation (logrotate): before each write the path's inode is compared
    with the open file's.
    """

    def __init__(
        self, filename: str | None = None, time_format: str | None = None, **options: Any
    ) -> None:
        options.pop("max_bytes", None)
        options.pop("backup_count", None)
        super().__init__(filename=filename, time_format=time_format, **options)

    def _before_io(self) -> None:
        self._follow_path()


def entry_exists(dir_fd: int, name: str) -> bool:
    """Whether the directory ``dir_fd`` has an entry ``name`` (a link counts, not followed)."""
    try:
        os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def rename_in(dir_fd: int, src: str, dst: str) -> None:
    """``os.replace`` of ``src`` by ``dst``, both in the directory ``dir_fd``."""
    os.replace(src, dst, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)

"""JournalStream: each output line to the systemd journal (its native protocol) or to syslog.

With ``target = auto`` (the default) the stream speaks the journal's native datagram protocol
when ``/run/systemd/journal/socket`` exists, and RFC 3164 syslog on ``/dev/log`` otherwise.
Each complete line is one record:

* journal: ``MESSAGE`` (the line, without its newline), ``PRIORITY`` (``priority`` for
  stdout, ``stderr_priority`` for stderr; syslog levels 0-7, names accepted),
  ``SYSLOG_IDENTIFIER`` (``identifier``, default the process's name), ``SYSLOG_PID`` (the
  child's pid; journald's own ``_PID`` is circusd's, the sender), ``SYSLOG_FACILITY`` and
  ``CIRCUS_STREAM`` (``stdout``/``stderr``);
* syslog: ``<PRI>Mmm dd hh:mm:ss identifier[pid]: line``.

The socket is non-blocking and the stream never waits: when the receiver is slow and the
socket's buffer is full, or the receiver is gone, the line is dropped and counted, and one
WARNING (at most every 5 s) says how much (:class:`~._drops.DropReport`). A receiver that
comes back is reconnected to at the next line. Standard library only.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from typing import Any

from .._errors import StreamError
from ._base import Chunk, LineFramer, to_int, to_str_or_none
from ._drops import DropReport

__all__ = ["JOURNAL_SOCKET", "SYSLOG_SOCKET", "JournalStream"]

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_SOCKET = "/dev/log"

_LEVELS = {
    "emerg": 0,
    "alert": 1,
    "crit": 2,
    "err": 3,
    "error": 3,
    "warning": 4,
    "warn": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}
_FACILITIES = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "cron": 9,
    "authpriv": 10,
    "ftp": 11,
    **{f"local{n}": 16 + n for n in range(8)},
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _level(option: str, value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    text = str(value).strip().lower()
    if text in _LEVELS:
        return _LEVELS[text]
    number = to_int(option, value)
    if number > 7:
        raise StreamError(option, value, "expected a syslog level 0-7 or its name (info, err...)")
    return number


def _facility(value: Any) -> int:
    if value is None or value == "":
        return _FACILITIES["daemon"]
    text = str(value).strip().lower()
    if text in _FACILITIES:
        return _FACILITIES[text]
    number = to_int("facility", value)
    if number > 23:
        raise StreamError("facility", value, "expected a syslog facility name or 0-23")
    return number


class JournalStream:
    """Output lines as journal records (native protocol) or syslog messages; see the module.

    Options (strings from an INI file are accepted): ``target`` (``auto``, ``journal``,
    ``syslog``), ``identifier``, ``priority`` (default ``info``), ``stderr_priority``
    (default ``err``), ``facility`` (default ``daemon``), ``journal_socket`` and
    ``syslog_socket`` (the socket paths, for a container that mounts them elsewhere).
    """

    def __init__(
        self,
        target: str | None = None,
        identifier: str | None = None,
        priority: Any = None,
        stderr_priority: Any = None,
        facility: Any = None,
        journal_socket: str | None = None,
        syslog_socket: str | None = None,
        **options: Any,
    ) -> None:
        self.target = (to_str_or_none(target) or "auto").strip().lower()
        if self.target not in ("auto", "journal", "syslog"):
            raise StreamError("target", target, "expected auto, journal or syslog")
        self.identifier = to_str_or_none(identifier)
        self.priority = _level("priority", priority, 6)
        self.stderr_priority = _level("stderr_priority", stderr_priority, 3)
        self.facility = _facility(facility)
        self.journal_socket = to_str_or_none(journal_socket) or JOURNAL_SOCKET
        self.syslog_socket = to_str_or_none(syslog_socket) or SYSLOG_SOCKET
        self.options = options
        self._framer = LineFramer()
        self._names: dict[int, str] = {}
        self._sock: socket.socket | None = None
        self._address = ""
        self._journal = False
        self._drops = DropReport(f"the {self.target} socket")

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Choose the receiver and make the socket.

        Raises:
            StreamError: ``target`` names a receiver whose socket does not exist.
        """
        if self._sock is not None:
            return
        journal = self.target == "journal" or (
            self.target == "auto" and os.path.exists(self.journal_socket)
        )
        address = self.journal_socket if journal else self.syslog_socket
        if not os.path.exists(address):
            wanted = "the journal" if journal else "syslog"
            raise StreamError("target", self.target, f"{wanted} is not listening at {address}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        self._sock, self._address, self._journal = sock, address, journal
        self._drops.target = address

    def close(self) -> None:
        """Send every pending partial line, then close the socket."""
        for pid, line in self._framer.flush_all():
            self._send(pid, "stdout", line)
        self._drops.flush()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # ------------------------------------------------------------------ output

    def __call__(self, data: Chunk) -> None:
        """Send the complete lines of one chunk, one record each."""
        if self._sock is None:
            self.open()
        pid, name = data["pid"], data["name"]
        for line in self._framer.feed(pid, name, data["data"]):
            self._send(pid, name, line)

    def partial(self, pid: int, name: str) -> bytes:
        """The unterminated line held back for ``pid``'s pipe ``name`` (kept)."""
        return self._framer.partial(pid, name)

    def end(self, pid: int, name: str) -> None:
        """EOF on ``pid``'s pipe: send its partial line; forget the process's name."""
        for line in self._framer.flush(pid, name):
            self._send(pid, name, line)
        self._names.pop(pid, None)

    def _send(self, pid: int, name: str, line: bytes) -> None:
        record = self._record(pid, name, line.rstrip(b"\n"))
        assert self._sock is not None
        try:
            self._sock.sendto(record, self._address)
        except OSError as exc:  # EAGAIN (receiver slow), ECONNREFUSED/ENOENT (gone)...
            self._drops.drop(line, exc)
            return
        if self._drops.failing:
            self._drops.ok()

    def _record(self, pid: int, name: str, message: bytes) -> bytes:
        level = self.stderr_priority if name == "stderr" else self.priority
        ident = self.identifier or self._name_of(pid)
        if not self._journal:
            now = time.localtime()
            stamp = f"{_MONTHS[now.tm_mon - 1]} {now.tm_mday:2d} {now.tm_hour:02d}:"
            stamp += f"{now.tm_min:02d}:{now.tm_sec:02d}"
            head = f"<{self.facility * 8 + level}>{stamp} {ident}[{pid}]: "
            return head.encode() + message
        fields = (
            (b"PRIORITY", str(level).encode()),
            (b"SYSLOG_FACILITY", str(self.facility).encode()),
            (b"SYSLOG_IDENTIFIER", ident.encode("utf-8", "replace")),
            (b"SYSLOG_PID", str(pid).encode()),
            (b"CIRCUS_STREAM", name.encode()),
            (b"MESSAGE", message),
        )
        return b"".join(_field(key, value) for key, value in fields)

    def _name_of(self, pid: int) -> str:
        name = self._names.get(pid)
        if name is None:
            try:
                with open(f"/proc/{pid}/comm", "rb") as handle:
                    name = handle.read().strip().decode("utf-8", "replace") or "circus"
            except OSError:
                name = "circus"
            self._names[pid] = name
        return name

    @property
    def lines_dropped(self) -> int:
        """Lines dropped since the stream was made (receiver slow or gone)."""
        return self._drops.lines_dropped


def _field(key: bytes, value: bytes) -> bytes:
    """One journal field: ``KEY=value\\n``, or the binary form when the value holds a newline."""
    if b"\n" not in value:
        return key + b"=" + value + b"\n"
    return key + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"

"""TimedRotatingFileStream: a FileStream rotated on a clock (S, M, H, D, MIDNIGHT, W0-W6)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from .._errors import StreamError
from ._base import to_bool, to_int
from ._file import FileStream, entry_exists, rename_in

__all__ = ["TimedRotatingFileStream"]

_DAY = 86400
# Suffix of rotated files per unit (upstream's compact style) and the unit length.
_UNITS: dict[str, tuple[int, str]] = {
    "S": (1, "%Y%m%d%H%M%S"),
    "M": (60, "%Y%m%d%H%M"),
    "H": (3600, "%Y%m%d%H"),
    "D": (_DAY, "%Y%m%d"),
    "MIDNIGHT": (_DAY, "%Y%m%d"),
}


class TimedRotatingFileStream(FileStream):
    """Write to a file and rotate it every ``rotate_interval`` units of ``rotate_when``.

    Args:
        filename, time_format: as FileStream.
        rotate_when: ``S``, ``M``, ``H``, ``D``, ``MIDNIGHT`` or ``W0``..``W6`` (Monday=0); any
            case (upstream rejects lowercase, a documented bug we fix).
        rotate_interval: how many units between rotations (not used for ``W*``).
        backup_count: how many rotated files to keep (0: all).
        utc: use UTC for suffixes and midnight; parsed as a real boolean, so ``"False"`` is
            false (upstream treats any non-empty string as true).
        clock: time source (for tests).

    Rotated files are named ``<filename>.<suffix>`` with the unit's timestamp.
    """

    def __init__(
        self,
        filename: str | None = None,
        backup_count: int | str = 0,
        time_format: str | None = None,
        rotate_when: str | None = None,
        rotate_interval: int | str = 1,
        utc: bool | str = False,
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        options.pop("max_bytes", None)
        super().__init__(
            filename=filename, backup_count=backup_count, time_format=time_format, **options
        )
        if rotate_when is None or not str(rotate_when).strip():
            raise StreamError("rotate_when", rotate_when, "required (S, M, H, D, MIDNIGHT, W0-W6)")
        when = str(rotate_when).strip().upper()
        if when.startswith("W") and len(when) == 2 and when[1] in "0123456":
            self._weekday: int | None = int(when[1])
            seconds, self.suffix = _DAY * 7, "%Y%m%d"
        elif when in _UNITS:
            self._weekday = None
            seconds, self.suffix = _UNITS[when]
        else:
            raise StreamError("rotate_when", rotate_when, "expected S, M, H, D, MIDNIGHT, W0-W6")
        self.rotate_when = when
        self.rotate_interval = to_int("rotate_interval", rotate_interval, minimum=1)
        self.utc = to_bool("utc", utc)
        self._clock = clock
        self.interval = seconds * (1 if self._weekday is not None else self.rotate_interval)
        self.rollover_at = self._next_rollover(self._clock())

    def _tm(self, t: float) -> time.struct_time:
        return time.gmtime(t) if self.utc else time.localtime(t)

    def _next_rollover(self, now: float) -> float:
        if self.rotate_when != "MIDNIGHT" and self._weekday is None:
            return now + self.interval
        tm = self._tm(now)
        since_midnight = tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec
        nxt = now - since_midnight + _DAY
        if self._weekday is not None:
            # As logging's TimedRotatingFileHandler: at the midnight that ends that weekday.
            nxt += ((self._weekday - tm.tm_wday) % 7) * _DAY
        elif self.rotate_interval > 1:
            nxt += (self.rotate_interval - 1) * _DAY
        return nxt

    def _maybe_rotate(self) -> None:
        now = self._clock()
        if now >= self.rollover_at:
            period_start = self.rollover_at - self.interval
            # The next rollover is set first: a rotation that fails (a full disk) is not
            # tried again at every write of this period, writing just goes on.
            while self.rollover_at <= now:
                self.rollover_at = self._next_rollover(now)
            if self._fd is not None and self._path_moved(self._fd):
                # A sibling stream on the same file rotated it already: follow it.
                os.close(self._fd)
                self._fd = None
                self._open_fd()
            else:
                self.rotate_at(period_start)

    def rotate_at(self, stamp: float) -> None:
        """Rotate now, naming the old file after ``stamp`` (start of the period)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        tm = time.gmtime(stamp) if self.utc else time.localtime(stamp)
        with self._directory() as (dir_fd, name):
            target = f"{name}.{time.strftime(self.suffix, tm)}"
            if entry_exists(dir_fd, name):
                if entry_exists(dir_fd, target):
                    os.remove(target, dir_fd=dir_fd)
                rename_in(dir_fd, name, target)
            if self.backup_count > 0:
                old = sorted(_rotated(dir_fd, name))
                for entry in old[: max(len(old) - self.backup_count, 0)]:
                    os.remove(entry, dir_fd=dir_fd)
            self._open_in(dir_fd, name)

    def rotate(self) -> None:
        """Rotate now, naming the old file after the current period."""
        self.rotate_at(self._clock())

    def _path_moved(self, fd: int) -> bool:
        try:
            st = os.stat(self.filename)
        except FileNotFoundError:
            return True
        cur = os.fstat(fd)
        return (st.st_dev, st.st_ino) != (cur.st_dev, cur.st_ino)

    def _before_io(self) -> None:
        self._maybe_rotate()


def _rotated(dir_fd: int, name: str) -> list[str]:
    """The rotated files of ``name`` in the directory ``dir_fd`` (``name.<digits...>``)."""
    listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        entries = os.listdir(listing)
    finally:
        os.close(listing)
    prefix = name + "."
    return [e for e in entries if e.startswith(prefix) and e[-1].isdigit()]

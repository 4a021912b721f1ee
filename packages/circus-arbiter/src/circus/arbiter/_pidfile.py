"""The pidfile: refuse to start when it names a live process, removed at exit."""

from __future__ import annotations

import errno
import os

__all__ = ["Pidfile", "PidfileError"]


class PidfileError(Exception):
    """The pidfile names a live process, or cannot be written."""


class Pidfile:
    """A pidfile at ``path`` (mode 0644, as upstream)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._written = False

    def create(self, pid: int | None = None) -> None:
        """Write our pid.

        Raises:
            PidfileError: ``pid file '<f>' is stale, current pid <n>`` when it names a live
                process other than us.
        """
        pid = os.getpid() if pid is None else pid
        old = self._read()
        if old and old != pid and _alive(old):
            raise PidfileError(f"pid file {self.path!r} is stale, current pid {old}")
        tmp = f"{self.path}.{pid}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{pid}\n")
            os.replace(tmp, self.path)
        except (OSError, ValueError) as exc:  # ValueError: a NUL character in the path
            raise PidfileError(f"cannot write pid file {self.path!r}: {exc}") from exc
        self._written = True

    def unlink(self) -> None:
        """Remove the file if we wrote it and it still holds our pid."""
        if not self._written:
            return
        if self._read() == os.getpid():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        self._written = False

    def _read(self) -> int | None:
        try:
            with open(self.path, encoding="ascii") as fh:
                return int(fh.read().strip() or 0) or None
        except (OSError, ValueError):
            return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True

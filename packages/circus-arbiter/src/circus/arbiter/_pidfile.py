"""The pidfile: refuse to start while it names a running daemon, removed at exit.

A pid in the file is the daemon's only while that process still runs and is the one that
wrote it. Pids are reused (after a reboot, in a container restarted with its volume), so a
live pid alone proves nothing: it counts as the holder when it looks like a circusd (its
command line) or started no later than the file was written. Anything else (a dead pid, a
zombie, a pid now used by an unrelated younger process, garbage) is stale and replaced.
"""

from __future__ import annotations

import os

from circus.process import open_file, open_in, open_parent

from ._dirlock import dir_lock

__all__ = ["Pidfile", "PidfileError"]

# Process start times come from the kernel's clock ticks and the file's mtime from the
# filesystem: a holder may appear to have started this much after it wrote the file.
_START_SLACK = 1.0


class PidfileError(Exception):
    """The pidfile names a running daemon, or cannot be written."""


class Pidfile:
    """A pidfile at ``path`` (mode 0644, as upstream)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._written: tuple[int, int, int] | None = None  # (pid, st_dev, st_ino)

    def create(self, pid: int | None = None) -> None:
        """Write our pid, atomically (a temp file renamed over the path).

        The check of the old file and the rename happen under a lock on the directory, so
        two daemons started at once on the same pidfile cannot both pass the check. The
        directory is reached without following another user's link (``open_parent``), and
        the temp file is new (``O_EXCL``, a random name): a link planted in a directory the
        pidfile shares with a user never makes root write or truncate elsewhere.

        Raises:
            PidfileError: the file names a running process other than us that holds it
                (see the module docstring), or the file cannot be written.
        """
        pid = os.getpid() if pid is None else pid
        dir_fd: int | None = None
        tmp: str | None = None
        try:
            dir_fd, name = open_parent(self.path)
            tmp = f".{name}.{pid}.{os.urandom(6).hex()}.tmp"  # not secrets: loads OpenSSL
            with dir_lock(self.path):
                old, written_at = self._read_with_time(dir_fd, name)
                if old and old != pid:
                    holder = _holder(old, written_at)
                    if holder is not None:
                        raise PidfileError(
                            f"pid file {self.path!r} names a running {holder}: not starting "
                            "(remove the file if that is not a circusd of this config)"
                        )
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                fd = os.open(tmp, flags, 0o644, dir_fd=dir_fd)
                with os.fdopen(fd, "w") as fh:
                    fh.write(f"{pid}\n")
                    fh.flush()
                    st = os.fstat(fh.fileno())
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                tmp = None
        except (OSError, ValueError) as exc:  # ValueError: a NUL character in the path
            raise PidfileError(f"cannot write pid file {self.path!r}: {exc}") from exc
        finally:
            if dir_fd is not None:
                if tmp is not None:
                    _discard(tmp, dir_fd)
                os.close(dir_fd)
        self._written = (pid, st.st_dev, st.st_ino)

    def unlink(self) -> None:
        """Remove the file if it is still the one we wrote (same file, our pid in it)."""
        if self._written is None:
            return
        pid, dev, ino = self._written
        self._written = None
        try:
            dir_fd, name = open_parent(self.path)
        except (OSError, ValueError):
            return
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == (dev, ino) and self._read(dir_fd, name) == pid:
                _discard(name, dir_fd)
        except OSError:
            return
        finally:
            os.close(dir_fd)

    def _read(self, dir_fd: int | None = None, name: str | None = None) -> int | None:
        return self._read_with_time(dir_fd, name)[0]

    def _read_with_time(
        self, dir_fd: int | None = None, name: str | None = None
    ) -> tuple[int | None, float]:
        try:
            if dir_fd is None or name is None:
                fd = open_file(self.path, os.O_RDONLY | os.O_NONBLOCK)
            else:
                fd = open_in(dir_fd, name, os.O_RDONLY | os.O_NONBLOCK, path=self.path)
            try:
                mtime = os.fstat(fd).st_mtime
                text = os.read(fd, 64).decode("ascii").strip()
            finally:
                os.close(fd)
        except (OSError, ValueError):
            return None, 0.0
        try:
            value = int(text or 0)
        except ValueError:
            return None, mtime
        return (value if value > 0 else None), mtime


def _discard(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except (OSError, ValueError):
        pass


def _holder(pid: int, written_at: float) -> str | None:
    """Describe the process ``pid`` if it holds a pidfile written at ``written_at``, else
    ``None`` (no such process, a zombie, or an unrelated process started after the write)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        started = proc.create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:
        return f"process (pid {pid})"  # cannot look closer: assume it holds the file
    try:
        argv = proc.cmdline()
    except psutil.Error:
        argv = []
    if looks_like_circusd(argv):
        return f"circusd (pid {pid})"
    if started <= written_at + _START_SLACK:
        name = os.path.basename(argv[0]) if argv else "?"
        return f"process (pid {pid}, {name}, started before the file was written)"
    return None


def looks_like_circusd(argv: list[str]) -> bool:
    """Whether a command line runs circusd."""
    # `circusd ...`, `python .../circusd ...`, `python -m circus.arbiter.circusd ...`
    return any(os.path.basename(a) == "circusd" or a == "circus.arbiter.circusd" for a in argv[:3])

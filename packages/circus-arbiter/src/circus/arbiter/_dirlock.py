"""A short exclusive lock on a file's directory, for check-then-create sequences.

Two circusd started at once must not both find an ipc path or a pidfile free and then both
take it. Each holds ``flock()`` on the directory for the few system calls between the check
and the creation; nothing else in circusd locks directories.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["dir_lock"]


@contextmanager
def dir_lock(path: str, wait: float = 2.0) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the directory of ``path`` while the block runs.

    Waits at most ``wait`` seconds for another holder, then runs the block anyway: the lock
    only narrows a race, so a directory that cannot be opened or locked (or a holder that
    never lets go) must not stop the daemon.
    """
    try:
        fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            except OSError:
                break
        yield
    finally:
        os.close(fd)  # releases the lock

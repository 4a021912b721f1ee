"""``--daemon``: detach from the terminal with a double fork (spec/architecture.md §9).

The process the user started does not exit at once: it waits on a pipe until the detached
daemon is serving (it writes :data:`READY`) or has failed (it writes its error text, or dies
and the pipe closes), so ``circusd --daemon bad.ini`` prints the same error as a foreground
run and exits non-zero instead of reporting success for a daemon that never came up.
"""

from __future__ import annotations

import os
import sys

__all__ = ["daemonize", "Readiness"]

# Written last by a daemon that is serving. A NUL never appears in an error text.
READY = b"\0ready\n"


class Readiness:
    """The daemon's end of the start-up pipe.

    Until :meth:`ready`, ``sys.stderr`` writes into the pipe, so every start-up error (and
    an uncaught traceback) reaches the waiting parent's terminal; :meth:`ready` tells the
    parent to exit 0 and puts ``sys.stderr`` back on ``/dev/null``.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._quiet = sys.stderr
        # lives until ready(); closefd=False: ready() closes the fd itself
        sys.stderr = open(fd, "w", buffering=1, errors="backslashreplace", closefd=False)  # noqa: SIM115

    def ready(self) -> None:
        """The daemon is serving: release the waiting parent (once; later calls do nothing)."""
        if self._fd < 0:
            return
        pipe, sys.stderr = sys.stderr, self._quiet
        try:
            pipe.flush()
            os.write(self._fd, READY)
        except OSError:  # the parent is gone (killed): nobody to tell
            pass
        finally:
            os.close(self._fd)
            self._fd = -1


def daemonize() -> Readiness:
    """Double-fork into a new session; stdio on ``/dev/null``; returns in the grandchild.

    The calling process never returns: it waits for the grandchild's verdict and exits
    with 0 (serving) or 1 (its error text relayed to stderr). The working directory is kept,
    so relative config paths still resolve as the user typed them (as upstream). Inherited
    fds above 2 are closed, except the start-up pipe.
    """
    read_fd, write_fd = os.pipe()  # both close-on-exec: no worker inherits them
    pid = os.fork()
    if pid:
        os.close(write_fd)
        try:
            os.waitpid(pid, 0)  # the intermediate child exits as soon as it has forked
            status = _relay(read_fd)
        except KeyboardInterrupt:  # the daemon is in its own session: Ctrl-C left it alone
            os.write(2, b"circusd: stopped waiting; the daemon may still be starting\n")
            status = 130
        os._exit(status)
    os.close(read_fd)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
    os.closerange(3, write_fd)
    os.closerange(write_fd + 1, _max_fd())
    return Readiness(write_fd)


def _relay(fd: int) -> int:
    """Copy the daemon's start-up text to stderr; 0 once it reports ready, else 1."""
    received = b""
    while not received.endswith(READY):
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
            continue
        if not chunk:
            break
        received += chunk
    os.close(fd)
    text, ready = received.removesuffix(READY), received.endswith(READY)
    if text:
        os.write(2, text)
    if ready:
        return 0
    if not text:
        os.write(2, b"circusd: the daemon exited during start-up without reporting why\n")
    return 1


def _max_fd() -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else soft
    return limit if 0 < limit < 65536 else 65536

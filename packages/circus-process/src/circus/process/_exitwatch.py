"""Exit detection on asyncio without pidfds: one SIGCHLD handler per loop.

Never a polling loop. With pidfds (Linux >= 5.3) a Process puts its pidfd straight into the
loop's shared epoll set (:mod:`._mux`), which becomes readable when the child exits; this
module is the fallback for kernels without them: one SIGCHLD handler per loop checks the
children that asked to be watched.
"""

from __future__ import annotations

import asyncio
import signal
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._process_fields import ProcessFields

__all__ = ["watch_exit", "unwatch_exit"]

_sigchld_sets: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[ProcessFields]] = (
    weakref.WeakKeyDictionary()
)


def watch_exit(
    loop: asyncio.AbstractEventLoop, proc: ProcessFields, on_exit: Callable[[], None]
) -> Callable[[], None]:
    """Call ``on_exit()`` on ``loop`` after each SIGCHLD until undone (``proc`` may have
    exited); returns the undo function."""
    watched = _sigchld_sets.get(loop)
    if watched is None:
        watched = set()
        _sigchld_sets[loop] = watched
        loop.add_signal_handler(signal.SIGCHLD, _on_sigchld, loop)
    watched.add(proc)
    proc._sigchld_cb = on_exit

    def undo_sigchld() -> None:
        watched.discard(proc)
        if not watched:
            _sigchld_sets.pop(loop, None)
            loop.remove_signal_handler(signal.SIGCHLD)

    # The child may have died before the handler existed.
    loop.call_soon(on_exit)
    return undo_sigchld


def _on_sigchld(loop: asyncio.AbstractEventLoop) -> None:
    for proc in list(_sigchld_sets.get(loop, ())):
        cb = proc._sigchld_cb
        if cb is not None:
            cb()


def unwatch_exit(undo: Callable[[], None] | None) -> None:
    """Run an undo function from :func:`watch_exit`, tolerating a closed loop."""
    if undo is None:
        return
    try:
        undo()
    except (RuntimeError, ValueError, OSError):
        pass

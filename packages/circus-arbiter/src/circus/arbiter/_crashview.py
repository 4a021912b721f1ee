"""How the daemon shows a crash-looping watcher (circus.watcher README "Crash loops").

``status`` answers ``crash-looping`` instead of ``active`` for an active watcher whose
processes keep failing, so every client sees it, Circus 0.19's ``circusctl`` included (it
prints the state it is given); the details (failed exits in a row, the last exit code, when
the next retry is due) go in the answer's ``crash_loops``/``crash_loop`` key, present only
when there is one, so an answer without a crash loop is exactly upstream's. The watcher's
own state (``watcher.status()``) stays ``active``: nothing in the daemon acts on this word.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CRASH_LOOPING", "crash_loop_of", "shown_status"]

#: The status word of a crash-looping watcher.
CRASH_LOOPING = "crash-looping"


def crash_loop_of(watcher: Any) -> dict[str, Any] | None:
    """The watcher's crash loop details, or None (also for watchers without the notion)."""
    crash_loop = getattr(watcher, "crash_loop", None)
    if crash_loop is None:
        return None
    details: dict[str, Any] | None = crash_loop()
    return details


def shown_status(watcher: Any) -> str:
    """The status ``status`` answers: the watcher's, or ``crash-looping``."""
    status: str = watcher.status()
    if status == "active" and crash_loop_of(watcher) is not None:
        return CRASH_LOOPING
    return status

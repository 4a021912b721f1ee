"""Redeploy: a running watcher takes a whole new set of options and rolls to them.

What ``reloadconfig`` uses for a changed ``[watcher:NAME]`` whose changes a graceful reload
can apply: the new options are swapped in and every process replaced by a rolling reload
(one new process, ready, then one old one stopped), all under the watcher's lock, so no
process of the new release is spawned outside the roll. A roll that fails (a new process not
ready in time, an ``env_file`` that cannot be read) puts the old options back: the old
processes keep serving, and a process of theirs that dies is respawned from the old release,
not the broken one.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ._errors import WatcherError
from ._reload import replace_all
from ._settings import install
from ._values import WatcherOptions

if TYPE_CHECKING:
    from ._watcher import Watcher

__all__ = ["redeploy"]


async def redeploy(w: Watcher, settings: WatcherOptions) -> dict[str, Any]:
    """Swap in ``settings`` and roll every process to them; ``{"stopped", "started",
    "kept"}`` as :meth:`Watcher.reload` answers.

    The watcher must be active with readiness, before and after; its output streams must be
    the same (they are opened at a roll, and a failed one could not give the old back).

    Raises:
        WatcherError: the watcher is not active, lacks readiness, or the streams differ
            (nothing changed).
        RolloutError: a new process was not ready in time or exited first (it was stopped,
            the old options are back, the old processes not yet replaced keep running).
        OptionError: an ``env_file`` or the ``virtualenv`` cannot be read (nothing replaced,
            the old options are back).
    """
    async with w._get_lock():
        old = w.settings
        if w.status() != "active" or not old.readiness or not settings.readiness:
            raise WatcherError(f"watcher {w.name!r}: only an active watcher with readiness rolls")
        if (old.stdout_stream, old.stderr_stream) != (
            settings.stdout_stream,
            settings.stderr_stream,
        ):
            raise WatcherError(f"watcher {w.name!r}: its output streams changed: cannot roll")
        _swap(w, settings)
        try:
            info = await replace_all(w, sequential=False)
        except Exception:
            _swap(w, old)
            raise
        w._emit("reload", {"time": time.time()})
        return info


def _swap(w: Watcher, settings: WatcherOptions) -> None:
    """Replace the options (the caller holds the lock), as ``set`` does, one whole set at once."""
    install(w, settings)
    w._emit("updated", {"time": time.time()})

"""A watcher's lifecycle: its state, the one place that changes it, and the events that says.

:class:`Lifecycle` holds the :class:`WatcherState` and changes it only through
:meth:`Lifecycle.change`, which refuses a transition the table does not allow (a bug, not an
input error) and publishes the event a transition means: ``start`` on becoming active,
``stop`` on becoming stopped after a stop. It also holds the two things background work
checks before acting: the *generation*, bumped by every start, stop and interrupt (work begun
in an older generation gives up), and the *halt*, a stop decided from inside (a spawn hook
refused, or the watcher is flapping) that has not run yet: nothing is spawned meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum
from typing import Any

__all__ = ["Halt", "Lifecycle", "WatcherState"]


class WatcherState(Enum):
    """Where a watcher is in its lifecycle; the value is what ``status()`` answers."""

    STOPPED = "stopped"
    STARTING = "starting"
    ACTIVE = "active"
    STOPPING = "stopping"


class Halt(Enum):
    """Why a stop was decided from inside (it runs once it gets the watcher's lock)."""

    REFUSED = "a spawn hook refused"
    FLAPPING = "flapping"


_S = WatcherState
#: Allowed transitions, and the event each one publishes (None: none).
TRANSITIONS: dict[tuple[WatcherState, WatcherState], str | None] = {
    (_S.STOPPED, _S.STARTING): None,
    (_S.STARTING, _S.ACTIVE): "start",
    (_S.STARTING, _S.STOPPED): None,  # aborted before any spawn: before_start refused, bad env
    (_S.STARTING, _S.STOPPING): None,  # a failed or refused spawn stops the start
    (_S.ACTIVE, _S.STOPPING): None,
    (_S.STOPPING, _S.STOPPED): "stop",
}


class Lifecycle:
    """The state machine of one watcher (see the module docstring).

    Args:
        emit: ``emit(event, payload)``, called after each transition that has an event.
    """

    def __init__(self, emit: Callable[[str, dict[str, Any]], None]) -> None:
        self._emit = emit
        self._state = WatcherState.STOPPED
        #: Bumped by every start, stop and interrupt: stale background work gives up.
        self.generation = 0
        #: A stop decided from inside that has not run yet: spawn nothing meanwhile.
        self.halt: Halt | None = None

    @property
    def state(self) -> WatcherState:
        """The current state."""
        return self._state

    @property
    def running(self) -> bool:
        """Starting or active: the states in which processes are spawned and replaced."""
        return self._state in (WatcherState.STARTING, WatcherState.ACTIVE)

    def change(self, new: WatcherState) -> None:
        """Move to ``new`` and publish the transition's event; entering ``starting`` or
        ``stopping`` forgets a pending halt (that start or stop supersedes it).

        Raises:
            RuntimeError: :data:`TRANSITIONS` has no such transition (a bug in the caller).
        """
        key = (self._state, new)
        if key not in TRANSITIONS:
            raise RuntimeError(f"watcher state cannot go from {key[0].value} to {new.value}")
        self._state = new
        if new in (WatcherState.STARTING, WatcherState.STOPPING):
            self.halt = None
        event = TRANSITIONS[key]
        if event is not None:
            self._emit(event, {"time": time.time()})

    def bump(self) -> int:
        """Start a new generation (background work of older ones gives up); return it."""
        self.generation += 1
        return self.generation

"""circus.watcher: N copies of one command kept alive, from plain asyncio.

See the package README for the options, the restart policy, flapping, hooks and events.
"""

from ._errors import (
    HookError,
    OptionError,
    ProcessNotFoundError,
    SpawnFailedError,
    UnknownOptionError,
    WatcherError,
)
from ._events import EVENTS
from ._options import HOOK_NAMES, RESPAWN_MODES
from ._watcher import Watcher

__all__ = [
    "EVENTS",
    "HOOK_NAMES",
    "RESPAWN_MODES",
    "HookError",
    "OptionError",
    "ProcessNotFoundError",
    "SpawnFailedError",
    "UnknownOptionError",
    "Watcher",
    "WatcherError",
]

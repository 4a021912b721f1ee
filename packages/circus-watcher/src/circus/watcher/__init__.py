"""circus.watcher: N copies of one command kept alive, from plain asyncio.

See the package README for the options, the restart policy, flapping, hooks and events.
"""

from ._errors import (
    CeilingError,
    HookError,
    OptionError,
    ProcessNotFoundError,
    SpawnFailedError,
    UnknownOptionError,
    WatcherError,
)
from ._events import EVENTS
from ._limits import (
    LIMITS,
    MAX_COUNT,
    MAX_PROCESSES,
    MAX_SECONDS,
    MAX_TOTAL_PROCESSES,
    Limit,
    check_limit,
    check_option,
    shorten,
)
from ._options import HOOK_NAMES, RESPAWN_MODES
from ._watcher import Watcher

__all__ = [
    "EVENTS",
    "HOOK_NAMES",
    "LIMITS",
    "MAX_COUNT",
    "MAX_PROCESSES",
    "MAX_SECONDS",
    "MAX_TOTAL_PROCESSES",
    "RESPAWN_MODES",
    "CeilingError",
    "HookError",
    "Limit",
    "OptionError",
    "ProcessNotFoundError",
    "SpawnFailedError",
    "UnknownOptionError",
    "Watcher",
    "WatcherError",
    "check_limit",
    "check_option",
    "shorten",
]

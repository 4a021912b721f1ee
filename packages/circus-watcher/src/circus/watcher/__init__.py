"""circus.watcher: N copies of one command kept alive, from plain asyncio.

See the package README for the options, the restart policy, flapping, hooks and events.

Importing the package loads only its errors and its ceilings table (``LIMITS``), so the
config loader can check values against the ceilings without asyncio or the process layer;
``Watcher`` and the rest are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    CeilingError,
    HookError,
    OptionError,
    ProcessNotFoundError,
    ResourceShortage,
    SpawnFailedError,
    UnknownOptionError,
    WatcherError,
)
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

if TYPE_CHECKING:
    from ._events import EVENTS
    from ._options import HOOK_NAMES, RESPAWN_MODES
    from ._watcher import Watcher

# name -> the submodule defining it, imported on first access (PEP 562).
_LAZY = {
    "EVENTS": "._events",
    "HOOK_NAMES": "._options",
    "RESPAWN_MODES": "._options",
    "Watcher": "._watcher",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


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
    "ResourceShortage",
    "SpawnFailedError",
    "UnknownOptionError",
    "Watcher",
    "WatcherError",
    "check_limit",
    "check_option",
    "shorten",
]

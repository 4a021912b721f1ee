"""circus.watcher: N copies of one command kept alive, from plain asyncio.

See the package README for the options, the restart policy, flapping, hooks and events.

Importing the package loads only its errors and its ceilings table (``LIMITS``); the option
table (``OPTIONS``) and the parsers (``parse_bool``, ``parse_signal``) load on first use
without asyncio or the process layer, so the daemon's config loader reads them cheaply;
``Watcher`` and the rest are imported on first use too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    CeilingError,
    HookError,
    NotReady,
    OptionError,
    ProcessNotFoundError,
    ResourceShortage,
    RolloutError,
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
    from ._convert import parse_bool, parse_signal
    from ._envfile import EnvFileError, read_env_files, split_optional
    from ._events import EVENTS
    from ._lifecycle import WatcherState
    from ._options import HOOK_NAMES, OPTIONS, RESPAWN_MODES, Effect, OptionSpec
    from ._upstream_view import UPSTREAM_OPTION_KEYS
    from ._values import FlappingOptions, WatcherOptions
    from ._watcher import Watcher

# name -> the submodule defining it, imported on first access (PEP 562).
_LAZY = {
    "EVENTS": "._events",
    "Effect": "._options",
    "EnvFileError": "._envfile",
    "FlappingOptions": "._values",
    "HOOK_NAMES": "._options",
    "OPTIONS": "._options",
    "OptionSpec": "._options",
    "RESPAWN_MODES": "._options",
    "UPSTREAM_OPTION_KEYS": "._upstream_view",
    "Watcher": "._watcher",
    "WatcherOptions": "._values",
    "WatcherState": "._lifecycle",
    "parse_bool": "._convert",
    "parse_signal": "._convert",
    "read_env_files": "._envfile",
    "split_optional": "._envfile",
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
    "OPTIONS",
    "RESPAWN_MODES",
    "UPSTREAM_OPTION_KEYS",
    "CeilingError",
    "Effect",
    "EnvFileError",
    "FlappingOptions",
    "HookError",
    "Limit",
    "NotReady",
    "OptionError",
    "OptionSpec",
    "ProcessNotFoundError",
    "ResourceShortage",
    "RolloutError",
    "SpawnFailedError",
    "UnknownOptionError",
    "Watcher",
    "WatcherError",
    "WatcherOptions",
    "WatcherState",
    "check_limit",
    "check_option",
    "parse_bool",
    "parse_signal",
    "read_env_files",
    "shorten",
    "split_optional",
]

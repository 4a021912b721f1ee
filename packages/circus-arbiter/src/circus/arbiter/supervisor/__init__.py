"""Run a Supervisor configuration file as it is.

``load_supervisor(path)`` reads a supervisord.conf (and its ``[include]`` files) and returns
a :class:`SupervisorConfig` whose ``config`` is the :class:`~circus.arbiter.config.CircusConfig`
circusd runs: ``circusd supervisord.conf`` loads it through
:func:`circus.arbiter.config.load_config`, which calls it when :func:`detect_format` says the
file is Supervisor's (``circusd --format supervisor|circus`` forces either).
:func:`to_circus_ini` prints the equivalent Circus INI (``circusctl convert``).

Names: each Supervisor process is one watcher (``numprocesses = 1``, its process is wid 1)
named by its supervisorctl namespec: ``name`` when the group has the process's name (a plain
``[program:web]`` gives ``web``), else ``group:name`` (``worker:worker_03``, ``g:a``).

Options are honoured, mapped or warned about as the root README's "Coming from Supervisor"
table says; an option we cannot honour is a :class:`~circus.arbiter.config.ConfigWarning`
``file:line: [section] option: what we do instead``; an invalid value a ``ConfigError`` at its
line. Sections this loader does not run (``[unix_http_server]``, ``[inet_http_server]``,
``[supervisorctl]``, ``[eventlistener:x]``, ``[rpcinterface:x]``, ``[ctlplugin:x]``) are kept
in :attr:`SupervisorConfig.sections` for the control API and event listeners.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._detect import FORMATS, detect_format
    from ._emit import ConvertError, to_circus_ini
    from ._loader import expand_program, load_supervisor
    from ._model import SupervisorConfig, SupervisordSection, SupProcess, SupSection, namespec
    from ._reader import SupValue

# Imported on first use: circusd asks detect_format about every config file, and a Circus
# file must not pay for the Supervisor loader (shlex, platform, the program mapping).
_LAZY = {
    "FORMATS": "._detect",
    "detect_format": "._detect",
    "ConvertError": "._emit",
    "to_circus_ini": "._emit",
    "expand_program": "._loader",
    "load_supervisor": "._loader",
    "SupervisorConfig": "._model",
    "SupervisordSection": "._model",
    "SupProcess": "._model",
    "SupSection": "._model",
    "namespec": "._model",
    "SupValue": "._reader",
}

__all__ = [
    "FORMATS",
    "ConvertError",
    "SupProcess",
    "SupSection",
    "SupValue",
    "SupervisorConfig",
    "SupervisordSection",
    "detect_format",
    "expand_program",
    "is_supervisor_file",
    "load_supervisor",
    "namespec",
    "to_circus_ini",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def is_supervisor_file(path: str) -> bool:
    """Whether ``circusd path`` reads ``path`` as a supervisord.conf."""
    from ._detect import detect_format

    return detect_format(path) == "supervisor"

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

from ._detect import FORMATS, detect_format
from ._emit import ConvertError, to_circus_ini
from ._loader import expand_program, load_supervisor
from ._model import SupervisorConfig, SupervisordSection, SupProcess, SupSection, namespec
from ._reader import SupValue

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


def is_supervisor_file(path: str) -> bool:
    """Whether ``circusd path`` reads ``path`` as a supervisord.conf."""
    return detect_format(path) == "supervisor"

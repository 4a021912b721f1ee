"""Server-side validation of ``set``/``add`` options (spec/protocol.md §1.6, "set validation").

Messages match upstream's (``'numprocesses' isn't an integer``, ``unknown key 'bogus'``) so
clients that parse them keep working. Every value is then held to its ceiling
(``circus.watcher.LIMITS``) before any option is applied, so a refused ``set`` changes nothing.
"""

from __future__ import annotations

import resource
from collections.abc import Callable, Mapping
from typing import Any

from circus.watcher import shorten

from ._errors import MessageError
from ._limits import check_property
from ._props import to_signum

__all__ = ["validate_set_options"]

_INT = {"numprocesses", "max_retry", "max_age", "max_age_variance"}
_NUMBER = {"warmup_delay", "retry_in", "graceful_timeout"}
_BOOL = {
    "send_hup",
    "stop_children",
    "shell",
    "copy_env",
    "respawn",
    "singleton",
    "close_child_stdin",
    "close_child_stdout",
    "close_child_stderr",
    "autostart",
    "use_sockets",
    "copy_path",
    "on_demand",
}
_STR = {"working_dir", "cmd", "args", "executable", "shell_args", "virtualenv", "stdin_socket"}
_PREFIXES = ("stdout_stream.", "stderr_stream.", "hooks.", "rlimit_", "flapping.")
_OTHER = {"uid", "gid", "stop_signal", "env", "hooks", "stdout_stream", "stderr_stream", "priority"}
KNOWN = _INT | _NUMBER | _BOOL | _STR | _OTHER
_HOOKS = {
    "before_start",
    "after_start",
    "before_spawn",
    "after_spawn",
    "before_stop",
    "after_stop",
    "before_signal",
    "after_signal",
    "before_reap",
    "after_reap",
    "extended_stats",
}


def validate_set_options(
    options: Mapping[str, Any],
    fold_rlimits: bool = False,
    also_known: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """Check every key and value; return them (``stop_signal`` as a number).

    With ``fold_rlimits`` (``add``), ``rlimit_X`` keys are gathered into ``rlimits``.
    ``also_known(key)`` accepts keys beyond upstream's list (our watcher's extra options),
    whose values the watcher itself validates.

    Raises:
        MessageError: errno 3 naming the key (and the ceiling, for a value above it).
    """
    result: dict[str, Any] = {}
    rlimits: dict[str, Any] = {}
    for key, value in options.items():
        if not isinstance(key, str):
            raise MessageError(f"unknown key {shorten(key)}")
        if key in _INT or key == "priority":
            if isinstance(value, bool) or not isinstance(value, int):
                raise MessageError(f"'{key}' isn't an integer")
        elif key in _NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise MessageError(f"'{key}' isn't a number")
        elif key in _BOOL:
            if not isinstance(value, bool):
                raise MessageError(f"'{key}' isn't a valid boolean")
        elif key in _STR:
            if not isinstance(value, str):
                raise MessageError(f"'{key}' isn't a string")
        elif key in ("uid", "gid"):
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise MessageError(f"'{key}' isn't an integer or a string")
        elif key == "stop_signal":
            value = to_signum(value, key)
        elif key == "env":
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise MessageError("'env' isn't a mapping of strings")
        elif key == "hooks":
            if not isinstance(value, dict) or not set(value) <= _HOOKS:
                raise MessageError("'hooks' isn't a mapping of hook names")
        elif key in ("stdout_stream", "stderr_stream"):
            if not isinstance(value, dict) or "class" not in value:
                raise MessageError(f"'{key}' isn't a mapping with a 'class'")
        elif key.startswith("rlimit_"):
            limit = key[len("rlimit_") :].upper()
            if not hasattr(resource, f"RLIMIT_{limit}"):
                raise MessageError(f"unknown key {shorten(key)}")
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise MessageError(f"'{key}' isn't an integer")
            check_property(key, value)
            if fold_rlimits:
                rlimits[key[len("rlimit_") :]] = value
                continue
        elif not key.startswith(_PREFIXES) and not (also_known and also_known(key)):
            raise MessageError(f"unknown key {shorten(key)}")
        check_property(key, value)
        result[key] = value
    if rlimits:
        result["rlimits"] = rlimits
    return result

"""Server-side validation of ``set``/``add`` options (spec/protocol.md §1.6, "set validation").

The keys and the JSON type each one requires come from the watcher's one option table
(``circus.watcher.OPTIONS``, its ``wire`` column); this module only words the answers.
Messages match upstream's (``'numprocesses' isn't an integer``, ``unknown key 'bogus'``) so
clients that parse them keep working. Every value is then held to its ceiling
(``circus.watcher.LIMITS``) before any option is applied, so a refused ``set`` changes nothing.
"""

from __future__ import annotations

import resource
from collections.abc import Callable, Mapping
from typing import Any

from circus.watcher import HOOK_NAMES, OPTIONS, RESPAWN_MODES, OptionError, OptionSpec, shorten

from ._errors import MessageError
from ._limits import check_property
from ._props import to_signum

__all__ = ["validate_set_options"]

# Key families accepted with any suffix; the watcher checks the suffix and the value.
_PREFIXES = ("stdout_stream.", "stderr_stream.", "hooks.", "rlimit_", "flapping.")


def validate_set_options(
    options: Mapping[str, Any],
    fold_rlimits: bool = False,
    also_known: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """Check every key and value; return them (``stop_signal`` as a number).

    With ``fold_rlimits`` (``add``), ``rlimit_X`` keys are gathered into ``rlimits``.
    ``also_known(key)`` accepts keys the option table does not send over the wire (a
    watcher's free-form options), whose values the watcher itself validates.

    Raises:
        MessageError: errno 3 naming the key (and the ceiling, for a value above it).
    """
    result: dict[str, Any] = {}
    rlimits: dict[str, Any] = {}
    for key, value in options.items():
        if not isinstance(key, str):
            raise MessageError(f"unknown key {shorten(key)}")
        spec = OPTIONS.get(key)
        if spec is not None and spec.wire is not None:
            value = _check_type(spec, value)
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


def _check_type(spec: OptionSpec, value: Any) -> Any:
    """``value`` when it has the JSON type the table says ``spec`` takes over the wire."""
    key, wire = spec.name, spec.wire
    if wire == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise MessageError(f"'{key}' isn't an integer")
    elif wire == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MessageError(f"'{key}' isn't a number")
    elif wire == "bool":
        if not isinstance(value, bool):
            raise MessageError(f"'{key}' isn't a valid boolean")
    elif wire == "str":
        if not isinstance(value, str):
            raise MessageError(f"'{key}' isn't a string")
    elif wire == "id":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise MessageError(f"'{key}' isn't an integer or a string")
    elif wire == "signal":
        return to_signum(value, key)
    elif wire == "env":
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise MessageError(f"'{key}' isn't a mapping of strings")
    elif wire == "hooks":
        if not isinstance(value, dict) or not set(value) <= set(HOOK_NAMES):
            raise MessageError(f"'{key}' isn't a mapping of hook names")
    elif wire == "stream":
        if not isinstance(value, dict) or "class" not in value:
            raise MessageError(f"'{key}' isn't a mapping with a 'class'")
    elif wire == "respawn":
        if not isinstance(value, bool) and value not in RESPAWN_MODES:
            modes = ", ".join(RESPAWN_MODES)
            raise MessageError(f"'{key}' isn't a valid boolean or one of {modes}")
    else:  # "any": ours; the option's own parser judges, in the table's words
        try:
            spec.parse(value)
        except OptionError as exc:
            raise MessageError(str(exc)) from None
        except (TypeError, ValueError):
            raise MessageError(str(OptionError(key, value, spec.expected))) from None
    return value

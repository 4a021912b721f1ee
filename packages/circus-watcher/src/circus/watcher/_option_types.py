"""Converters of the options that are not plain numbers, strings or booleans: ``respawn``,
``success_exit_codes``, rlimits, stream confs, hooks, uid/gid; and the few readers the
config loader uses where Circus 0.19's INI parser reads an option differently from its API.

Like :mod:`._convert`, each returns the converted value or raises ``ValueError``/``TypeError``
(:class:`._convert.Explained` when its message is worth showing); standard library only.
"""

from __future__ import annotations

import resource
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import _convert as cv
from ._limits import LIMITS, MAX_ID, MAX_RLIMIT, MAX_SECONDS, as_number, check_limit

RESPAWN_MODES = ("always", "on-failure", "never")
HOOK_NAMES = (
    "before_start",
    "after_start",
    "before_stop",
    "after_stop",
    "before_spawn",
    "after_spawn",
    "before_signal",
    "after_signal",
    "before_reap",
    "after_reap",
    "extended_stats",
)
RLIMIT_NAMES = tuple(
    sorted(name[len("RLIMIT_") :].lower() for name in dir(resource) if name.startswith("RLIMIT_"))
)


def to_respawn(value: Any) -> str:
    """``True``/``False`` (any boolean spelling) or one of :data:`RESPAWN_MODES`."""
    try:
        return "always" if cv.parse_bool(value) else "never"
    except ValueError:
        pass
    mode = ini_respawn(value)
    assert isinstance(mode, str)
    return mode


def ini_respawn(value: Any) -> bool | str:
    """What the config loader passes on for ``respawn``: a boolean stays one (Circus 0.19's
    type), a restart mode (ours) is given in its canonical spelling."""
    try:
        return cv.parse_bool(value)
    except ValueError:
        pass
    if isinstance(value, str):
        text = value.strip().lower().replace("_", "-")
        if text in RESPAWN_MODES:
            return text
    raise ValueError(value)


def to_exit_codes(value: Any) -> frozenset[int]:
    """A list of exit codes 0..255, or a string of them separated by commas or spaces."""
    items: Iterable[Any]
    if isinstance(value, str):
        items = [part for part in value.replace(",", " ").split() if part]
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    else:
        raise TypeError
    codes = frozenset(cv.to_int(item) for item in items)
    if any(not 0 <= code <= 255 for code in codes):
        raise ValueError
    return codes


def to_paths(value: Any) -> tuple[str, ...]:
    """``env_file``: a path, a list of paths, or a string of paths one per line, in order;
    a leading ``-`` (optional file) is kept. Relative paths are the caller's to resolve."""
    items: Iterable[Any]
    if value is None:
        return ()
    if isinstance(value, str):
        items = [line.strip() for line in value.splitlines()]
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise TypeError
    paths = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError
        if item.strip() in ("", "-") or "\0" in item:
            if isinstance(value, str) and not item:
                continue
            raise ValueError
        paths.append(item.strip())
    return tuple(paths)


def to_rlimits(value: Any) -> dict[str, int | None]:
    """A mapping of rlimit names (``nofile``, ``RLIMIT_CORE`` …) to an int, or None = infinity."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError
    return {_rlimit_name(key): _rlimit_value(item) for key, item in value.items()}


def _rlimit_name(name: Any) -> str:
    text = cv.to_str(name).strip().lower()
    text = text[len("rlimit_") :] if text.startswith("rlimit_") else text
    if text not in RLIMIT_NAMES:
        raise ValueError
    return text


_UNLIMITED = ("", "-1", "unlimited", "infinity")


def _rlimit_value(value: Any) -> int | None:
    if value is None or value == -1:
        return None
    if isinstance(value, str) and value.strip().lower() in _UNLIMITED:
        return None
    result = cv.to_int(value)
    if result < 0:
        raise ValueError
    if result > MAX_RLIMIT:
        raise cv.Explained(f"{result} is above the rlimit ceiling of {MAX_RLIMIT}")
    return result


def to_stream_conf(value: Any) -> Any:
    """None, a stream object (a callable), or a dict with ``class`` or ``filename``."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        conf = dict(value)
        if not conf:
            return None
        if "class" not in conf and "filename" not in conf:
            raise ValueError
        _check_stream_numbers(conf)
        if "class" in conf:
            from circus.process.streams import resolve_stream_class  # only a stream class needs it

            try:
                resolve_stream_class(conf["class"])
            except Exception as exc:  # StreamError: unknown class, import failure
                raise cv.Explained(getattr(exc, "reason", str(exc))) from exc
        return conf
    if callable(value):
        return value
    raise TypeError


def _check_stream_numbers(conf: Mapping[str, Any]) -> None:
    """Stream options that are counts or sizes stay under their ceilings (a rollover walks
    every backup file, so ``backup_count = 10**30`` would hang the daemon)."""
    for key in ("max_bytes", "backup_count", "rotate_interval"):
        if key not in conf:
            continue
        number = as_number(conf[key])
        if number is None:
            continue  # not a number: the stream class says what it expected
        limit = LIMITS[f"*_stream.{key}"]
        if not limit.low <= number <= limit.high:
            raise cv.Explained(f"{key} must be {limit.describe()}")


def to_hooks(value: Any) -> dict[str, Any]:
    """A mapping of hook name to a hook spec (see :mod:`._hooks`); names are checked."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError
    for key in value:
        if key not in HOOK_NAMES:
            raise ValueError
    return {key: item for key, item in value.items() if item not in (None, "")}


def to_id(value: Any) -> int | str | None:
    """:func:`._convert.to_id`, and a number no larger than a ``uid_t`` can hold."""
    result = cv.to_id(value)
    if isinstance(result, int) and result > MAX_ID:
        raise ValueError
    return result


def callable_or_none(value: Any) -> Any:
    """None or a callable (``prereload_fn``)."""
    if value is not None and not callable(value):
        raise TypeError
    return value


# --- readers of the config loader, where Circus 0.19's INI parser differs from its API


def ini_user(text: str) -> int | str:
    """A uid, or the name of a user that exists now (the loader reports a typo at once)."""
    import pwd

    return _ini_id(text, "uid", pwd.getpwnam)


def ini_group(text: str) -> int | str:
    """A gid, or the name of a group that exists now."""
    import grp

    return _ini_id(text, "gid", grp.getgrnam)


def _ini_id(text: str, name: str, lookup: Callable[[str], Any]) -> int | str:
    value = text.strip()
    if value.isdigit():
        number: int = check_limit(name, int(value))  # OptionError is a ValueError
        return number
    try:
        lookup(value)
    except KeyError:
        raise ValueError(text) from None
    return value


def ini_whole_seconds(text: str) -> int:
    """Whole seconds (Circus 0.19 reads ``max_age`` and ``max_age_variance`` with ``int()``)."""
    value = int(text.strip(), 10)
    if not 0 <= value <= MAX_SECONDS:
        raise ValueError(text)
    return value


def ini_octal(text: str) -> int:
    """A umask written in octal (``022``, ``0o022``, ``2``); an empty value is an error."""
    if not text.strip():
        raise ValueError(text)
    value = cv.to_umask(text)
    assert value is not None
    return value


def ini_socket_name(text: str) -> str:
    """A socket name as the loader stores socket names: lowercase."""
    return text.strip().lower()


def ini_text(text: str) -> str:
    """A string option as written (blanks around it dropped)."""
    return text.strip()

"""The watcher's option table: names, defaults, converters and what ``set`` may change.

One table drives construction, ``set_opt``/``get_opt`` and ``options()``, so the three can
never disagree. Names and defaults follow upstream Circus 0.19 (shared/spec/config.md §4);
the extras (restart policy, backoff, flapping, hook timeout) are ours and documented in
the package README.
"""

from __future__ import annotations

import resource
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import _convert as cv
from ._errors import OptionError, UnknownOptionError
from ._limits import LIMITS, MAX_ID, MAX_RLIMIT, as_number, check_limit

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


@dataclass(frozen=True)
class OptionSpec:
    """One option: default, converter, the words used in errors, and ``set`` behaviour."""

    default: Any
    convert: Callable[[Any], Any]
    expected: str
    settable: bool = False
    reload: bool = False  # a running watcher is gracefully reloaded after `set`


def _nonneg(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        result = convert(value)
        if result < 0:
            raise ValueError
        return result

    return check


def _capped(name: str, convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``convert``, then the range of ``LIMITS[name]`` (an OptionError naming ``name``)."""

    def capped(value: Any) -> Any:
        return check_limit(name, convert(value))

    return capped


def _spec(name: str, convert: Callable[[Any], Any], default: Any, settable: bool = True,
          reload: bool = False) -> OptionSpec:  # fmt: skip
    """An option whose range (and so its words in errors) comes from :data:`LIMITS`."""
    return OptionSpec(default, _capped(name, convert), LIMITS[name].describe(), settable, reload)


def to_respawn(value: Any) -> str:
    """``True``/``False`` (any boolean spelling) or one of :data:`RESPAWN_MODES`."""
    try:
        return "always" if cv.to_bool(value) else "never"
    except (TypeError, ValueError):
        pass
    if isinstance(value, str):
        text = value.strip().lower().replace("_", "-")
        if text in RESPAWN_MODES:
            return text
    raise ValueError


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
    result: int = _nonneg(cv.to_int)(value)
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
            from circus.process.streams import resolve_stream_class

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


def _callable_or_none(value: Any) -> Any:
    if value is not None and not callable(value):
        raise TypeError
    return value


_b = cv.to_bool
_f = cv.to_float
_i = cv.to_int

#: Every named option. ``set`` may change those marked settable (upstream's list, plus ours).
SPECS: dict[str, OptionSpec] = {
    "cmd": OptionSpec("", cv.to_str, "a command line string", True, True),
    "args": OptionSpec(None, cv.to_opt_str, "a string of arguments or None", True, True),
    "numprocesses": _spec("numprocesses", _i, 1),
    "warmup_delay": _spec("warmup_delay", _f, 0.0),
    "working_dir": OptionSpec(None, cv.to_opt_str, "a directory path or None", True, True),
    "shell": OptionSpec(False, _b, "a boolean", True, True),
    "shell_args": OptionSpec(None, cv.to_opt_str, "a string or None"),
    "uid": OptionSpec(None, to_id, f"a user name, a uid from 0 to {MAX_ID}, or None", True, True),
    "gid": OptionSpec(None, to_id, f"a group name, a gid from 0 to {MAX_ID}, or None", True, True),
    "send_hup": OptionSpec(False, _b, "a boolean", True),
    "stop_signal": OptionSpec(
        int(signal.SIGTERM), cv.to_signum, "a signal number or name (TERM, SIGQUIT, 3)", True
    ),
    "stop_children": OptionSpec(False, _b, "a boolean", True),
    "env": OptionSpec(None, cv.to_env, "a mapping of strings to strings", True, True),
    "graceful_timeout": _spec("graceful_timeout", _f, 30.0),
    "prereload_fn": OptionSpec(None, _callable_or_none, "a callable or None"),
    "rlimits": OptionSpec(
        None, to_rlimits, f"a mapping of rlimit names ({', '.join(RLIMIT_NAMES)}) to int or None"
    ),
    "executable": OptionSpec(None, cv.to_opt_str, "a path or None"),
    "stdout_stream": OptionSpec(
        None, to_stream_conf, "a stream object or a dict with 'class' or 'filename'", True
    ),
    "stderr_stream": OptionSpec(
        None, to_stream_conf, "a stream object or a dict with 'class' or 'filename'", True
    ),
    "priority": _spec("priority", _i, 0, settable=False),
    "singleton": OptionSpec(False, _b, "a boolean", True),
    "use_sockets": OptionSpec(False, _b, "a boolean"),
    "copy_env": OptionSpec(False, _b, "a boolean", True),
    "copy_path": OptionSpec(False, _b, "a boolean"),
    "max_age": _spec("max_age", _f, 0.0, reload=True),
    "max_age_variance": _spec("max_age_variance", _f, 30.0, reload=True),
    "hooks": OptionSpec(None, to_hooks, f"a mapping keyed by {', '.join(HOOK_NAMES)}", True),
    "respawn": OptionSpec(
        "always", to_respawn, "a boolean or one of 'always', 'on-failure', 'never'", True
    ),
    "autostart": OptionSpec(True, _b, "a boolean"),
    "on_demand": OptionSpec(False, _b, "a boolean"),
    "virtualenv": OptionSpec(None, cv.to_opt_str, "a directory path or None"),
    "virtualenv_py_ver": OptionSpec(None, cv.to_opt_str, "a version string 'X.Y' or None"),
    "stdin_socket": OptionSpec(None, cv.to_opt_str, "a socket name or None"),
    "close_child_stdin": OptionSpec(True, _b, "a boolean", True),
    "close_child_stdout": OptionSpec(False, _b, "a boolean", True),
    "close_child_stderr": OptionSpec(False, _b, "a boolean", True),
    "umask": OptionSpec(None, cv.to_umask, "an octal umask such as '022' (0..0o777) or None"),
    "max_retry": _spec("max_retry", _i, 5),
    "retry_in": _spec("retry_in", _f, 0.0),
    # Ours: restart policy and backoff (README "Restart policy").
    "success_exit_codes": OptionSpec(
        frozenset({0}), to_exit_codes, "a list of exit codes 0..255", True
    ),
    "backoff_initial": _spec("backoff_initial", _f, 0.1),
    "backoff_factor": _spec("backoff_factor", _f, 2.0),
    "backoff_max": _spec("backoff_max", _f, 30.0),
    "backoff_reset": _spec("backoff_reset", _f, 10.0),
    "hook_timeout": _spec("hook_timeout", _f, 30.0),
    # Flapping (upstream's plugin names, built in here).
    "flapping.active": OptionSpec(False, _b, "a boolean", True),
    "flapping.attempts": _spec("flapping.attempts", _i, 2),
    "flapping.window": _spec("flapping.window", _f, 1.0),
    "flapping.retry_in": _spec("flapping.retry_in", _f, 7.0),
    "flapping.max_retry": _spec("flapping.max_retry", _i, 5),
    # Parsed by upstream but used by nothing; accepted so 0.19 configs load.
    "check_flapping": OptionSpec(True, _b, "a boolean"),
}

#: Keys accepted with a suffix, folded into the ``stdout_stream``/``stderr_stream``/``hooks``/
#: ``rlimits`` mappings.
PREFIXES = ("stdout_stream.", "stderr_stream.", "hooks.", "rlimit_")


def valid_names() -> list[str]:
    """Every option name accepted, with the prefix families spelled as ``prefix*``."""
    return sorted(SPECS) + [prefix + "*" for prefix in PREFIXES]


def unknown(name: str) -> UnknownOptionError:
    """The error for an unknown option name, with a difflib "did you mean"."""
    import difflib  # only a typo needs it

    candidates = list(SPECS) + [f"hooks.{hook}" for hook in HOOK_NAMES]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return UnknownOptionError(name, valid_names(), close[0] if close else None)


def not_settable(name: str) -> UnknownOptionError:
    """The error for a known option that ``set`` cannot change (lists those it can)."""
    settable = [key for key, spec in SPECS.items() if spec.settable]
    settable += ["hooks.*", "stdout_stream.*", "stderr_stream.*", "rlimit_*"]
    return UnknownOptionError(
        name, settable, None, problem="option cannot change at run time:", listing="those that can"
    )


def convert(name: str, value: Any) -> Any:
    """Validate and convert one named option (no prefix keys), raising OptionError."""
    spec = SPECS.get(name)
    if spec is None:
        raise unknown(name)
    try:
        return spec.convert(value)
    except OptionError:
        raise  # already names the option (a range or ceiling check)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        detail = exc.args[0] if isinstance(exc, cv.Explained) and exc.args else None
        expected = f"{spec.expected} ({detail})" if detail else spec.expected
        raise OptionError(name, value, expected) from None


def to_limited_int(name: str, value: Any) -> int:
    """An integer within ``LIMITS[name]`` (``nb`` of incr/decr), or an OptionError naming it."""
    try:
        number = cv.to_int(value)
    except (TypeError, ValueError):
        raise OptionError(name, value, LIMITS[name].describe()) from None
    result: int = check_limit(name, number)
    return result


def fold(options: Mapping[str, Any]) -> dict[str, Any]:
    """Fold prefixed keys (``hooks.X``, ``rlimit_X``, ``stdout_stream.X``) into their dicts.

    The plain key and the prefixed keys may both be given; prefixed keys win. The result
    still needs :func:`convert`.
    """
    result: dict[str, Any] = {}
    extra: dict[str, dict[str, Any]] = {}
    for key, value in options.items():
        if not isinstance(key, str):
            raise unknown(repr(key))
        if key.startswith("rlimit_"):
            extra.setdefault("rlimits", {})[key[len("rlimit_") :]] = value
        elif key.startswith(("stdout_stream.", "stderr_stream.", "hooks.")):
            head, _, tail = key.partition(".")
            if head == "hooks" and tail not in HOOK_NAMES:
                raise unknown(key)
            extra.setdefault(head, {})[tail] = value
        else:
            result[key] = value
    for key, values in extra.items():
        base = result.get(key)
        if base is not None and not isinstance(base, Mapping) and key.endswith("_stream"):
            raise OptionError(key, base, "a dict when combined with per-key options")
        merged = dict(base) if isinstance(base, Mapping) else {}
        merged.update(values)
        result[key] = merged
    return result


def build(options: Mapping[str, Any]) -> dict[str, Any]:
    """Return the full option dict: every default, overridden by ``options`` (validated)."""
    given = fold(options)
    result = {name: spec.default for name, spec in SPECS.items()}
    for name, value in given.items():
        result[name] = convert(name, value)
    check_consistency(result)
    return result


def check_consistency(opts: Mapping[str, Any]) -> None:
    """Cross-option rules (upstream's ValueErrors, with our error shape)."""
    if opts["singleton"] and opts["numprocesses"] > 1:
        raise OptionError("numprocesses", opts["numprocesses"], "0 or 1 when singleton is set")
    if opts["copy_path"] and not opts["copy_env"]:
        raise OptionError("copy_path", True, "copy_env to be true as well")
    if opts["virtualenv"] and not opts["copy_env"]:
        raise OptionError("virtualenv", opts["virtualenv"], "copy_env to be true as well")

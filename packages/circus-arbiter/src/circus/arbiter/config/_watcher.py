"""``[watcher:NAME]`` → :class:`WatcherConfig` (spec/config.md §4).

The kwargs follow the ``circus.watcher.Watcher`` contract: every constructor option is present
with its type and default, then free-form keys (unknown options, ``flapping.*``,
``check_flapping``, the watcher's own extras such as ``backoff_max``) as written. ``env`` is
the ``[env]``/``[env:…]`` variables as written (the watcher expands ``$NAME``).
"""

from __future__ import annotations

import grp
import pwd
import re
import resource
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from circus.watcher import LIMITS, MAX_SECONDS, check_limit

from ._convert import (
    EXPECTED_BOOL,
    EXPECTED_DOTTED,
    EXPECTED_OCTAL,
    EXPECTED_RLIMIT,
    EXPECTED_SIGNAL,
    capped,
    check_dotted,
    check_free,
    to_bool,
    to_float,
    to_int,
    to_octal,
    to_rlimit,
    to_signum,
)
from ._hookspec import HookSpec
from ._model import WatcherConfig
from ._section import SectionView
from ._streams import parse_stream

__all__ = ["parse_watcher", "WATCHER_OPTIONS", "HOOK_NAMES", "socket_references"]

HOOK_NAMES = (
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
)
FLAPPING_OPTIONS = ("attempts", "window", "retry_in", "max_retry", "active")
_PREFIXES = ("stdout_stream", "stderr_stream", "hooks", "flapping")
RESPAWN_MODES = ("always", "on-failure", "never")
# Options circus.watcher adds to upstream's (restart policy, backoff, hook timeout): passed as
# written (the watcher converts them); listed so a typo of one is reported.
WATCHER_EXTRAS = (
    "retry_in",
    "success_exit_codes",
    "backoff_initial",
    "backoff_factor",
    "backoff_max",
    "backoff_reset",
    "hook_timeout",
)

_SOCKET_REF = re.compile(r"(?:\$\(|\(\()circus\.sockets\.([\w-]+)\)\)?", re.IGNORECASE)


def _str(text: str) -> str:
    return text.strip()


def _user(text: str) -> int | str:
    value = text.strip()
    if value.isdigit():
        return _id("uid", value)
    pwd.getpwnam(value)  # KeyError → reported by _checked below
    return value


def _group(text: str) -> int | str:
    value = text.strip()
    if value.isdigit():
        return _id("gid", value)
    grp.getgrnam(value)
    return value


_ID_CEILING = int(LIMITS["uid"].high)


def _id(name: str, digits: str) -> int:
    number = int(digits)
    check_limit(name, number)  # OptionError is a ValueError
    return number


def _respawn(text: str) -> bool | str:
    try:
        return to_bool(text)
    except ValueError:
        mode = text.strip().lower().replace("_", "-")
        if mode not in RESPAWN_MODES:
            raise
        return mode


def _checked(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def wrapper(text: str) -> Any:
        try:
            return convert(text)
        except KeyError:
            raise ValueError(text) from None

    return wrapper


def _limited(name: str, convert: Callable[[str], Any], default: Any, words: str | None = None
             ) -> tuple[Callable[[str], Any], Any, str]:  # fmt: skip
    """A WATCHER_OPTIONS row held to the option's ceiling (``circus.watcher.LIMITS``)."""
    converter, expected = capped(name, convert, words)
    return converter, default, expected


def _int_seconds(note: str = "") -> str:
    # upstream reads max_age/max_age_variance with int(): whole seconds in a config file
    return f"an integer >= 0 (seconds{note}) and <= {MAX_SECONDS} (its ceiling: 1 year)"


# option → (converter, default, expected); order is the Watcher constructor's.
WATCHER_OPTIONS: dict[str, tuple[Callable[[str], Any], Any, str]] = {
    "cmd": (_str, None, "expected a command"),
    "args": (str, None, ""),
    "numprocesses": _limited("numprocesses", to_int, 1),
    "warmup_delay": _limited("warmup_delay", to_float, 0.0),
    "working_dir": (_str, None, ""),
    "shell": (to_bool, False, EXPECTED_BOOL),
    "shell_args": (_str, None, ""),
    "uid": (
        _checked(_user),
        None,
        f"expected an existing user name or a numeric uid (at most {_ID_CEILING}, its ceiling)",
    ),
    "gid": (
        _checked(_group),
        None,
        f"expected an existing group name or a numeric gid (at most {_ID_CEILING}, its ceiling)",
    ),
    "send_hup": (to_bool, False, EXPECTED_BOOL),
    "stop_signal": (to_signum, 15, EXPECTED_SIGNAL),
    "stop_children": (to_bool, False, EXPECTED_BOOL),
    "graceful_timeout": _limited("graceful_timeout", to_float, 30.0),
    "executable": (_str, None, ""),
    "priority": _limited("priority", to_int, 0),
    "singleton": (to_bool, False, EXPECTED_BOOL),
    "use_sockets": (to_bool, False, EXPECTED_BOOL),
    "copy_env": (to_bool, False, EXPECTED_BOOL),
    "copy_path": (to_bool, False, EXPECTED_BOOL),
    "max_age": _limited("max_age", to_int, 0, _int_seconds("; 0 = off")),
    "max_age_variance": _limited("max_age_variance", to_int, 30, _int_seconds()),
    "respawn": (_respawn, True, "expected a boolean or one of always, on-failure, never"),
    "autostart": (to_bool, True, EXPECTED_BOOL),
    "on_demand": (to_bool, False, EXPECTED_BOOL),
    "virtualenv": (_str, None, ""),
    "stdin_socket": (lambda t: t.strip().lower(), None, ""),
    "close_child_stdin": (to_bool, True, EXPECTED_BOOL),
    "close_child_stdout": (to_bool, False, EXPECTED_BOOL),
    "close_child_stderr": (to_bool, False, EXPECTED_BOOL),
    "virtualenv_py_ver": (_str, None, ""),
    "umask": (to_octal, None, EXPECTED_OCTAL),
    "max_retry": _limited("max_retry", to_int, 5),
}
# Parsed and typed, then passed to the Watcher as free-form options (upstream keeps them).
_EXTRA_TYPED: dict[str, tuple[Callable[[str], Any], str]] = {
    "check_flapping": (to_bool, EXPECTED_BOOL),
}
# Keyword arguments the loader computes (or the daemon supplies): a section key of that name
# would clobber them, so it is ignored with a warning.
_RESERVED = {
    "name": "the name comes from the [watcher:NAME] header",
    "env": "use an [env:NAME] section",
    "rlimits": "use rlimit_<name> options",
    "hooks": "use hooks.<name> options",
    "stdout_stream": "use stdout_stream.<option> options",
    "stderr_stream": "use stderr_stream.<option> options",
    "prereload_fn": "not settable from a config file",
    "sockets": "use $(circus.sockets.NAME) and use_sockets",
    "arbiter": "not settable from a config file",
}
_KNOWN = (*WATCHER_OPTIONS, *_EXTRA_TYPED, *WATCHER_EXTRAS, *(f"{p}.x" for p in _PREFIXES))


def socket_references(text: str | None) -> set[str]:
    """Lowercase names of the sockets ``$(circus.sockets.NAME)`` tokens in ``text`` refer to."""
    if not text:
        return set()
    return {match.group(1).lower() for match in _SOCKET_REF.finditer(text)}


def _parse_hook(view: SectionView, key: str) -> HookSpec:
    text = view.text(key) or ""
    target, sep, flag = text.partition(",")
    try:
        dotted = check_dotted(target)
    except ValueError:
        raise view.error(key, EXPECTED_DOTTED + ", optionally followed by ', true|false'") from None
    ignore = False
    if sep:
        try:
            ignore = to_bool(flag)
        except ValueError:
            raise view.error(key, "expected 'dotted.path' or 'dotted.path, true|false'") from None
    raw = view.options[key]
    return HookSpec(
        dotted,
        ignore,
        filename=raw.filename,
        lineno=raw.lineno,
        section=view.name,
        option=key,
        text=raw.value.strip(),
    )


def _parse_rlimit(view: SectionView, key: str) -> tuple[str, int]:
    name = key[len("rlimit_") :].lower()
    if not name or not hasattr(resource, "RLIMIT_" + name.upper()):
        known = sorted(n[7:].lower() for n in dir(resource) if n.startswith("RLIMIT_"))
        raise view.error(key, "expected rlimit_<name> with a name among " + ", ".join(known))
    # empty, -1 or "unlimited" mean RLIM_INFINITY, passed on as -1
    return name, view.get(key, to_rlimit, -1, EXPECTED_RLIMIT)


def _free_expected(key: str) -> str:
    return "expected " + LIMITS[key].describe()


def parse_watcher(view: SectionView, name: str, env: Mapping[str, str]) -> WatcherConfig:
    """Validate one watcher section and build its :class:`WatcherConfig`.

    Raises:
        ConfigError: a missing/empty ``cmd``, a badly typed value, an unknown hook or rlimit,
            ``singleton`` with ``numprocesses`` > 1, ``copy_path`` or ``virtualenv`` without
            ``copy_env``.
    """
    if not name:
        raise view.error(None, "expected a watcher name after 'watcher:'")
    kwargs: dict[str, Any] = {"name": name}
    for option, (convert, default, expected) in WATCHER_OPTIONS.items():
        kwargs[option] = view.get(option, convert, default, expected)
    if not kwargs["cmd"]:
        raise view.error("cmd", "expected a command (cmd is required)")

    hooks: dict[str, tuple[str, bool]] = {}
    rlimits: dict[str, int] = {}
    free: dict[str, Any] = {}
    for key in view.names():
        if key in WATCHER_OPTIONS:
            continue
        prefix, dot, rest = key.partition(".")
        if key in _RESERVED:
            view.warn(key, f"not a watcher option in a config file ({_RESERVED[key]}); ignored")
        elif key in _EXTRA_TYPED:
            convert, expected = _EXTRA_TYPED[key]
            free[key] = view.get(key, convert, None, expected)
        elif dot and prefix == "hooks":
            if rest not in HOOK_NAMES:
                raise view.error(key, "expected a hook among " + ", ".join(HOOK_NAMES))
            hooks[rest] = _parse_hook(view, key)
        elif dot and prefix in ("stdout_stream", "stderr_stream"):
            continue  # parse_stream below
        elif key.lower().startswith("rlimit_"):
            limit, value = _parse_rlimit(view, key)
            rlimits[limit] = value
        else:
            if dot and prefix == "flapping":
                view.check_unknown(key, FLAPPING_OPTIONS, "watcher option", name=rest)
            elif dot and prefix not in _PREFIXES:
                view.check_unknown(key, _PREFIXES, "watcher option", name=prefix)
            elif not dot and key not in WATCHER_EXTRAS:
                view.check_unknown(key, _KNOWN, "watcher option")
            free[key] = view.options[key].value
            if key in LIMITS:  # flapping.*, backoff_*, retry_in...: kept as written, capped
                view.get(key, partial(check_free, key), None, _free_expected(key))

    kwargs["env"] = dict(env)
    kwargs["rlimits"] = rlimits
    kwargs["hooks"] = hooks
    kwargs["stdout_stream"] = parse_stream(view, "stdout_stream")
    kwargs["stderr_stream"] = parse_stream(view, "stderr_stream")
    _check_consistency(view, kwargs)
    kwargs.update(free)

    sockets = socket_references(kwargs["cmd"]) | socket_references(kwargs["args"])
    if kwargs["stdin_socket"]:
        sockets.add(kwargs["stdin_socket"])
    return WatcherConfig(
        name=name,
        options=kwargs,
        sockets=frozenset(sockets),
        filename=view.filename,
        lineno=view.lineno,
    )


def _check_consistency(view: SectionView, kwargs: dict[str, Any]) -> None:
    if kwargs["singleton"] and kwargs["numprocesses"] > 1:
        raise view.error("numprocesses", "expected 0 or 1 for a singleton watcher")
    for option in ("copy_path", "virtualenv"):
        if kwargs[option] and not kwargs["copy_env"]:
            raise view.error(option, "requires copy_env = true")
    if kwargs["shell_args"] is not None and not kwargs["shell"]:
        view.warn("shell_args", "ignored because shell is false")

"""The one table of watcher options: ``circus.watcher.OPTIONS``.

Every option a watcher takes has one :class:`OptionSpec` here: its name (the keyword, the
INI key and the control channel's key are the same), its default, its parser and the words
its errors use, its ceiling (from :data:`~circus.watcher.LIMITS`), whether ``set`` may change
it at run time and what that costs, the JSON type the control channel's ``set``/``add``
require, and how the config loader reads it. The watcher builds its options from it, and the
daemon's config loader and its ``set``/``add``/``get``/``options`` commands read it instead
of keeping lists of their own, so none of them can disagree on an option.

Names and defaults follow upstream Circus 0.19 (shared/spec/config.md §4, protocol.md
``set``); the extras (restart policy, backoff, flapping, hook timeout) are ours and documented
in the package README. This module imports only the standard library and the light modules
of this package: the config loader loads it without asyncio or the process layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, Literal

from . import _convert as cv
from . import _option_types as ot
from ._errors import OptionError, UnknownOptionError
from ._limits import LIMITS, MAX_ID, MAX_SECONDS, Limit, check_limit
from ._option_types import HOOK_NAMES, RESPAWN_MODES, RLIMIT_NAMES
from ._probe_spec import to_probe

__all__ = [
    "HOOK_NAMES",
    "OPTIONS",
    "PREFIXES",
    "RESPAWN_MODES",
    "SETTABLE_PREFIXES",
    "Effect",
    "OptionSpec",
    "Wire",
    "convert",
    "fold",
    "not_settable",
    "to_limited_int",
    "unknown",
    "valid_names",
]

#: The JSON type the control channel's ``set``/``add`` require for an option (upstream's
#: rules, protocol.md "set validation"): ``int``, ``number``, ``bool``, ``str``; ``id`` (an
#: int or a name); ``signal`` (a number or a name, sent on as its number); ``env`` (an object
#: of strings); ``hooks`` (an object keyed by hook names); ``stream`` (an object with a
#: ``class``); ``respawn`` (a bool, or one of our restart modes); ``any``: the option's own
#: parser judges (our extras). ``None``: not settable over the control channel by this name.
Wire = Literal["int", "number", "bool", "str", "id", "signal", "env", "hooks", "stream",
               "respawn", "any"]  # fmt: skip


class Effect(Enum):
    """What ``set`` does to a running watcher once the option changed."""

    NEXT_SPAWN = "next spawn"  # processes spawned from then on get the new value
    RELOAD = "reload"  # the running processes are gracefully replaced
    RESIZE = "resize"  # processes are spawned or stopped to the new count


@dataclass(frozen=True)
class OptionSpec:
    """Everything about one watcher option.

    Attributes:
        name: the keyword, INI key and control-channel key (``"flapping.attempts"``); a
            dotted name is a field of a group (``WatcherOptions.flapping.attempts``).
        default: the value when not given (upstream's keyword default).
        parse: a native value or its INI text -> the typed value; raises ValueError,
            TypeError or OptionError.
        expected: what ``parse`` accepts, in words (every error about the option ends so).
        ceiling: the option's range in :data:`~circus.watcher.LIMITS`, if it is a count or a
            duration.
        settable: ``set`` may change it on a live watcher.
        effect: what ``set`` costs a running watcher.
        wire: the JSON type ``set``/``add`` require (:data:`Wire`), None: not over the wire.
        ini: the INI keys carrying it: its name, a key family (``"rlimit_*"``), or none.
        ini_parse: how the config loader reads it where Circus 0.19's INI parser differs
            from its API (whole seconds, users that must exist…); None: ``parse``.
        ini_expected: the words for ``ini_parse``; None: ``expected``.
        verbatim: the config loader checks the text, then passes it on as written (Circus
            0.19 keeps these keys as free-form strings).
        upstream: one of Circus 0.19's Watcher keywords (the loader passes it always).
        listed: shown under its own name by ``options()``.
    """

    name: str
    default: Any
    parse: Callable[[Any], Any]
    expected: str
    ceiling: Limit | None = None
    settable: bool = False
    effect: Effect = Effect.NEXT_SPAWN
    wire: Wire | None = None
    ini: tuple[str, ...] = ()
    ini_parse: Callable[[str], Any] | None = None
    ini_expected: str | None = None
    verbatim: bool = False
    upstream: bool = True
    listed: bool = True

    def read_ini(self, text: str) -> Any:
        """The value the config loader passes on for ``text`` (ValueError when bad)."""
        if self.ini_parse is not None:
            return self.ini_parse(text)
        try:
            value = self.parse(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(text) from exc
        return text if self.verbatim else value

    @property
    def ini_words(self) -> str:
        """What the config loader expects, in words."""
        return self.ini_expected if self.ini_expected is not None else self.expected


def _capped(name: str, parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``parse``, then the range of ``LIMITS[name]`` (an OptionError naming ``name``)."""

    def capped(value: Any) -> Any:
        return check_limit(name, parse(value))

    return capped


def _spec(name: str, default: Any, parse: Callable[[Any], Any], expected: str = "",
          **how: Any) -> OptionSpec:  # fmt: skip
    """One row; a number named in :data:`LIMITS` gets its range and its words from there."""
    limit = LIMITS.get(name)
    if limit is not None and not expected:
        parse, expected = _capped(name, parse), limit.describe()
    how.setdefault("ini", (name,))
    return OptionSpec(name, default, parse, expected, ceiling=limit, **how)


def _bool(name: str, default: bool, **how: Any) -> OptionSpec:
    return _spec(name, default, cv.parse_bool, cv.BOOL_WORDS, wire=how.pop("wire", "bool"), **how)


def _text(name: str, expected: str, **how: Any) -> OptionSpec:
    how.setdefault("ini_parse", ot.ini_text)
    return _spec(name, None, cv.to_opt_str, expected, wire="str", **how)


_RELOAD: dict[str, Any] = {"settable": True, "effect": Effect.RELOAD}
_SET: dict[str, Any] = {"settable": True}
_OURS: dict[str, Any] = {"upstream": False, "verbatim": True, "settable": True, "wire": "any"}
_WHOLE_SECONDS = "an integer >= 0 (seconds{}) and <= " + f"{MAX_SECONDS} (its ceiling: 1 year)"
_STREAM = "a stream object or a dict with 'class' or 'filename'"
_PROBE = "notify, tcp://HOST:PORT, http://HOST:PORT/PATH, exec:COMMAND, or None"


def _id(name: str, user: str) -> OptionSpec:
    return _spec(
        name, None, ot.to_id, f"a {user} name, a {name} from 0 to {MAX_ID}, or None", wire="id",
        ini_parse=ot.ini_user if name == "uid" else ot.ini_group,
        ini_expected=f"an existing {user} name or a numeric {name} (at most {MAX_ID}, its ceiling)",
        **_RELOAD,
    )  # fmt: skip


def _stream(name: str) -> OptionSpec:
    return _spec(name, None, ot.to_stream_conf, _STREAM, wire="stream", ini=(f"{name}.*",),
                 listed=False, **_RELOAD)  # fmt: skip


_ROWS = (
    # Circus 0.19's Watcher keywords, in its constructor's order.
    _spec("cmd", "", cv.to_str, "a command line string", wire="str", ini_parse=ot.ini_text,
          **_RELOAD),
    _text("args", "a string of arguments or None", **_RELOAD),
    _spec("numprocesses", 1, cv.to_int, wire="int", settable=True, effect=Effect.RESIZE),
    _spec("warmup_delay", 0.0, cv.to_float, wire="number", **_SET),
    _text("working_dir", "a directory path or None", **_RELOAD),
    _bool("shell", False, **_RELOAD),
    _text("shell_args", "a string or None"),
    _id("uid", "user"),
    _id("gid", "group"),
    _bool("send_hup", False, **_SET),
    _spec("stop_signal", 15, cv.parse_signal, cv.SIGNAL_WORDS, wire="signal", **_SET),
    _bool("stop_children", False, **_SET),
    _spec("env", None, cv.to_env, "a mapping of strings to strings", wire="env", ini=(),
          **_RELOAD),
    _spec("graceful_timeout", 30.0, cv.to_float, wire="number", **_SET),
    _spec("prereload_fn", None, ot.callable_or_none, "a callable or None", ini=(),
          listed=False),
    _spec("rlimits", None, ot.to_rlimits,
          f"a mapping of rlimit names ({', '.join(RLIMIT_NAMES)}) to int or None",
          ini=("rlimit_*",), listed=False),
    _text("executable", "a path or None"),
    _stream("stdout_stream"),
    _stream("stderr_stream"),
    _spec("priority", 0, cv.to_int, wire="int"),
    _bool("singleton", False, **_SET),
    _bool("use_sockets", False),
    _bool("copy_env", False, **_SET),
    _bool("copy_path", False),
    _spec("max_age", 0, cv.to_float, wire="int", ini_parse=ot.ini_whole_seconds,
          ini_expected=_WHOLE_SECONDS.format("; 0 = off"), **_RELOAD),
    _spec("max_age_variance", 30, cv.to_float, wire="int", ini_parse=ot.ini_whole_seconds,
          ini_expected=_WHOLE_SECONDS.format(""), **_RELOAD),
    _spec("hooks", None, ot.to_hooks, f"a mapping keyed by {', '.join(HOOK_NAMES)}",
          wire="hooks", ini=("hooks.*",), listed=False, **_SET),
    _spec("respawn", True, ot.to_respawn,
          f"a boolean or one of {', '.join(RESPAWN_MODES)}", wire="respawn",
          ini_parse=ot.ini_respawn, **_SET),
    _bool("autostart", True),
    _bool("on_demand", False),
    _text("virtualenv", "a directory path or None"),
    _text("stdin_socket", "a socket name or None", ini_parse=ot.ini_socket_name),
    _bool("close_child_stdin", True, **_SET),
    _bool("close_child_stdout", False, **_SET),
    _bool("close_child_stderr", False, **_SET),
    _text("virtualenv_py_ver", "a version string 'X.Y' or None"),
    _spec("umask", None, cv.to_umask,
          "an octal file mode mask between 000 and 777 (e.g. 022), or None", wire="any",
          ini_parse=ot.ini_octal,
          ini_expected="an octal file mode mask between 000 and 777 (e.g. 022)"),
    _spec("max_retry", 5, cv.to_int, wire="int", **_SET),
    # Ours: spawn retries, restart policy and backoff (README "Restart policy").
    _spec("retry_in", 0.0, cv.to_float, **{**_OURS, "wire": "number"}),
    _spec("success_exit_codes", frozenset({0}), ot.to_exit_codes, "a list of exit codes 0..255",
          **_OURS),
    _spec("backoff_initial", 0.1, cv.to_float, **_OURS),
    _spec("backoff_factor", 2.0, cv.to_float, **_OURS),
    _spec("backoff_max", 30.0, cv.to_float, **_OURS),
    _spec("backoff_reset", 10.0, cv.to_float, **_OURS),
    _spec("give_up_after", 0, cv.to_int, **_OURS),
    _spec("hook_timeout", 30.0, cv.to_float, **_OURS),
    _bool("critical", False, **{**_OURS, "wire": "bool"}),
    _spec("env_file", (), ot.to_paths,
          "a path or a list of paths (one per line in a config file; -PATH: optional)",
          **{**_OURS, "effect": Effect.RELOAD}),
    # Readiness and liveness (README "Readiness and liveness").
    _spec("readiness", None, to_probe, _PROBE, **_OURS),
    _spec("readiness_timeout", 30.0, cv.to_float, **_OURS),
    _spec("liveness", None, to_probe, _PROBE, **_OURS),
    _spec("liveness_interval", 10.0, cv.to_float, **_OURS),
    _spec("liveness_timeout", 5.0, cv.to_float, **_OURS),
    _spec("liveness_failures", 3, cv.to_int, **_OURS),
    _spec("watchdog_sec", 0.0, cv.to_float, **_OURS),
    # Flapping: upstream's plugin names and defaults, built in here.
    _bool("flapping.active", False, **{**_OURS, "wire": "any"}),
    _spec("flapping.attempts", 2, cv.to_int, **_OURS),
    _spec("flapping.window", 1.0, cv.to_float, **_OURS),
    _spec("flapping.retry_in", 7.0, cv.to_float, **_OURS),
    _spec("flapping.max_retry", 5, cv.to_int, **_OURS),
    # Read by Circus 0.19's config parser, used by nothing; accepted so its configs load.
    _bool("check_flapping", True, upstream=False),
)  # fmt: skip

#: Every watcher option by name, in the constructor's order (upstream's, then ours).
OPTIONS: Mapping[str, OptionSpec] = MappingProxyType({spec.name: spec for spec in _ROWS})

#: Keys accepted with a suffix, folded into the ``stdout_stream``/``stderr_stream``/``hooks``/
#: ``rlimits`` mappings.
PREFIXES = ("stdout_stream.", "stderr_stream.", "hooks.", "rlimit_")
#: The key families ``set`` may change one key at a time (``rlimits`` as a whole it may not).
SETTABLE_PREFIXES = PREFIXES


def valid_names() -> list[str]:
    """Every option name accepted, with the prefix families spelled as ``prefix*``."""
    return sorted(OPTIONS) + [prefix + "*" for prefix in PREFIXES]


def unknown(name: str) -> UnknownOptionError:
    """The error for an unknown option name, with a difflib "did you mean"."""
    import difflib  # only a typo needs it

    candidates = list(OPTIONS) + [f"hooks.{hook}" for hook in HOOK_NAMES]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return UnknownOptionError(name, valid_names(), close[0] if close else None)


def not_settable(name: str) -> UnknownOptionError:
    """The error for a known option that ``set`` cannot change (lists those it can)."""
    settable = [key for key, spec in OPTIONS.items() if spec.settable]
    settable += [prefix + "*" for prefix in SETTABLE_PREFIXES]
    return UnknownOptionError(
        name, settable, None, problem="option cannot change at run time:", listing="those that can"
    )


def convert(name: str, value: Any) -> Any:
    """Validate and convert one named option (no prefix keys), raising OptionError."""
    spec = OPTIONS.get(name)
    if spec is None:
        raise unknown(name)
    try:
        return spec.parse(value)
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

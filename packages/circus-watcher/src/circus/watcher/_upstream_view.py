"""What ``options`` and ``get`` answer: Circus 0.19's keys with its value types, then ours.

:data:`UPSTREAM_OPTION_KEYS` is the one table of the keys a 0.19 circusd lists for every
watcher (observed from its ``options`` answer) and how each value is shown: ``args`` is
``""`` when unset, ``respawn`` a boolean, the stream confs ``{}`` when unset, ``working_dir``
the directory the processes run in, ``max_age``/``max_age_variance`` whole seconds. Tools
written for 0.19 read these answers: its Flapping plugin takes any ``flapping.*`` key it sees
as a per-watcher override, so our own options appear only when they differ from their
default (``flapping.active = false`` listed by default would switch that plugin off).

Two keys are not listed: ``__name__`` (a leak of 0.19's INI parser, ``"watcher:NAME"``, that
its own ``get`` refuses) and the ``rlimit_*`` family when unset. A ``respawn`` mode that a
boolean cannot say (``on-failure``) is listed as ``respawn_mode`` beside ``respawn = true``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from ._options import OPTIONS
from ._values import WatcherOptions

__all__ = ["UPSTREAM_OPTION_KEYS", "upstream_options"]


def _whole(value: float) -> int | float:
    """A number as 0.19 shows it: an int when it is whole (its config reads ints)."""
    return int(value) if float(value).is_integer() else value


def _stream_conf(conf: Any) -> dict[str, Any]:
    """A stream's options without its ``class`` (0.19 pops it), ``{}`` when unset."""
    if isinstance(conf, Mapping):
        return {k: v for k, v in conf.items() if k != "class"}
    return {}


def _plain(name: str) -> Callable[[WatcherOptions], Any]:
    return lambda o: o.get(name)


#: Circus 0.19's watcher option keys, each with how its value is shown (sorted, as 0.19
#: answers them).
UPSTREAM_OPTION_KEYS: Mapping[str, Callable[[WatcherOptions], Any]] = MappingProxyType(
    {
        "args": lambda o: o.args if o.args is not None else "",
        "close_child_stderr": _plain("close_child_stderr"),
        "close_child_stdin": _plain("close_child_stdin"),
        "close_child_stdout": _plain("close_child_stdout"),
        "cmd": _plain("cmd"),
        "copy_env": _plain("copy_env"),
        "env": lambda o: dict(o.env),
        "executable": _plain("executable"),
        "gid": _plain("gid"),
        "graceful_timeout": lambda o: float(o.graceful_timeout),
        "max_age": lambda o: _whole(o.max_age),
        "max_age_variance": lambda o: _whole(o.max_age_variance),
        "max_retry": _plain("max_retry"),
        "numprocesses": _plain("numprocesses"),
        "on_demand": _plain("on_demand"),
        "priority": _plain("priority"),
        "respawn": lambda o: o.respawn != "never",
        "send_hup": _plain("send_hup"),
        "shell": _plain("shell"),
        "shell_args": _plain("shell_args"),
        "singleton": _plain("singleton"),
        "stderr_stream_conf": lambda o: _stream_conf(o.stderr_stream),
        "stdout_stream_conf": lambda o: _stream_conf(o.stdout_stream),
        "stop_children": _plain("stop_children"),
        "stop_signal": _plain("stop_signal"),
        "uid": _plain("uid"),
        "use_sockets": _plain("use_sockets"),
        "warmup_delay": lambda o: _whole(o.warmup_delay),
        # unset: the directory circusd runs in, which the processes inherit
        "working_dir": lambda o: o.working_dir or os.getcwd(),
    }
)

# The respawn modes a boolean says (``true``: always, ``false``: never).
_BOOLEAN_RESPAWN = frozenset({"always", "never"})


def _default(name: str) -> Any:
    spec = OPTIONS[name]
    return spec.parse(spec.default)


_DEFAULTS = {name: _default(name) for name, spec in OPTIONS.items() if spec.listed}


def _ours(o: WatcherOptions) -> dict[str, Any]:
    """Our options that differ from their default (lists for sets of exit codes)."""
    result: dict[str, Any] = {}
    for name, default in _DEFAULTS.items():
        if name in UPSTREAM_OPTION_KEYS or name == "respawn":
            continue
        value = o.get(name)
        if value == default:
            continue
        if isinstance(value, frozenset):
            value = sorted(value)
        elif isinstance(value, tuple):
            value = list(value)
        result[name] = value
    if o.respawn not in _BOOLEAN_RESPAWN:
        result["respawn_mode"] = o.respawn
    for limit, value in o.rlimits.items():
        result[f"rlimit_{limit}"] = value
    return result


def upstream_options(o: WatcherOptions) -> dict[str, Any]:
    """``options``'s answer for a watcher with options ``o``: 0.19's keys, our options
    that are set, then the free-form ones, all in sorted key order."""
    result = {key: show(o) for key, show in UPSTREAM_OPTION_KEYS.items()}
    result.update(_ours(o))
    for key, value in o.custom.items():
        result.setdefault(key, value)
    return dict(sorted(result.items()))

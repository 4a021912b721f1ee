"""``[watcher:NAME]`` → :class:`WatcherConfig` (spec/config.md §4).

The kwargs follow the ``circus.watcher.Watcher`` contract: every constructor option is present
with its type and default, then free-form keys (unknown options, ``flapping.*``,
``check_flapping``, the watcher's own extras such as ``backoff_max``) as written. ``env`` is
the ``[env]``/``[env:…]`` variables as written (the watcher expands ``$NAME``).
"""

from __future__ import annotations

import os
import re
import resource
from collections.abc import Mapping
from typing import Any

from circus.watcher import (
    HOOK_NAMES,
    OPTIONS,
    EnvFileError,
    OptionSpec,
    read_env_files,
    split_optional,
)

from ._convert import EXPECTED_DOTTED, EXPECTED_RLIMIT, check_dotted, to_bool, to_rlimit
from ._hookspec import HookSpec
from ._model import WatcherConfig
from ._section import SectionView
from ._streams import parse_stream

__all__ = ["parse_watcher", "WATCHER_OPTIONS", "HOOK_NAMES", "socket_references"]

# Everything about an option (its name, default, parser, words, ceiling, how an INI file
# gives it) is in the watcher's one table, circus.watcher.OPTIONS; this module only walks it.
#: Circus 0.19's Watcher keywords an INI file gives under their own name: always passed on,
#: with their default when absent. Order is the Watcher constructor's.
WATCHER_OPTIONS: dict[str, OptionSpec] = {
    name: spec
    for name, spec in OPTIONS.items()
    if spec.upstream and spec.ini == (name,) and not spec.verbatim
}
# Other options of the table an INI file may give (ours, flapping.*, check_flapping): passed
# on only when present, as written when Circus 0.19 kept them verbatim.
_EXTRAS: dict[str, OptionSpec] = {
    name: spec
    for name, spec in OPTIONS.items()
    if spec.ini == (name,) and name not in WATCHER_OPTIONS
}
FLAPPING_OPTIONS = tuple(name.partition(".")[2] for name in OPTIONS if name.startswith("flapping."))
# Key families: "hooks.*" and the like in the table, plus the flapping.* group.
_PREFIXES = tuple(
    dict.fromkeys(
        [key[: -len(".*")] for spec in OPTIONS.values() for key in spec.ini if key.endswith(".*")]
        + [name.partition(".")[0] for name in OPTIONS if "." in name]
    )
)
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
_KNOWN = (*WATCHER_OPTIONS, *_EXTRAS, *(f"{p}.x" for p in _PREFIXES))

_SOCKET_REF = re.compile(r"(?:\$\(|\(\()circus\.sockets\.([\w-]+)\)\)?", re.IGNORECASE)


def _read(view: SectionView, spec: OptionSpec, key: str, default: Any) -> Any:
    """The option as the table says an INI file gives it, or ``default`` when absent."""
    return view.get(key, spec.read_ini, default, "expected " + spec.ini_words)


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
    for option, spec in WATCHER_OPTIONS.items():
        kwargs[option] = _read(view, spec, option, spec.default)
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
        elif key in _EXTRAS:
            free[key] = _read(view, _EXTRAS[key], key, None)
        elif dot and prefix == "hooks":
            if rest not in HOOK_NAMES:
                raise view.error(key, "expected a hook among " + ", ".join(HOOK_NAMES))
            hooks[rest] = _parse_hook(view, key)
        elif dot and prefix in ("stdout_stream", "stderr_stream"):
            continue  # parse_stream below
        elif key.lower().startswith("rlimit_"):
            limit, value = _parse_rlimit(view, key)
            rlimits[limit] = value
        else:  # a free-form key, kept as written (upstream's behaviour); a typo warns
            if dot and prefix == "flapping":
                view.check_unknown(key, FLAPPING_OPTIONS, "watcher option", name=rest)
            elif dot and prefix not in _PREFIXES:
                view.check_unknown(key, _PREFIXES, "watcher option", name=prefix)
            elif not dot:
                view.check_unknown(key, _KNOWN, "watcher option")
            free[key] = view.options[key].value

    if "env_file" in free:
        free["env_file"] = _env_files(view, OPTIONS["env_file"].parse(free["env_file"]))
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


def _env_files(view: SectionView, entries: tuple[str, ...]) -> tuple[str, ...]:
    """``env_file`` paths made absolute (relative ones from the folder of the file the option
    is written in), each file read once now so a missing or malformed one is a config error."""
    folder = os.path.dirname(os.path.abspath(view.options["env_file"].filename))
    resolved = []
    for entry in entries:
        path, optional = split_optional(entry)
        path = os.path.join(folder, os.path.expanduser(path))
        resolved.append(("-" if optional else "") + path)
    try:
        read_env_files(resolved)
    except EnvFileError as exc:
        raise view.error(
            "env_file", f"expected readable KEY=VALUE environment files: {exc}"
        ) from None
    return tuple(resolved)


def _check_consistency(view: SectionView, kwargs: dict[str, Any]) -> None:
    if kwargs["singleton"] and kwargs["numprocesses"] > 1:
        raise view.error("numprocesses", "expected 0 or 1 for a singleton watcher")
    for option in ("copy_path", "virtualenv"):
        if kwargs[option] and not kwargs["copy_env"]:
            raise view.error(option, "requires copy_env = true")
    if kwargs["shell_args"] is not None and not kwargs["shell"]:
        view.warn("shell_args", "ignored because shell is false")

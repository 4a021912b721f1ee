"""``load_config``: read the main file and its includes, validate everything, build the model.

Every check happens here, before the daemon creates anything, so a bad file never leaves a
daemon half-started: either a complete :class:`CircusConfig` comes back or a
:class:`ConfigError` pointing at the faulty line.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import warnings
from collections.abc import Mapping

from circus.watcher import MAX_TOTAL_PROCESSES

from ._daemon import parse_daemon
from ._depends import DependsOn, check_depends_on, take_depends_on
from ._env import EnvSections, expand_circus_cpus, expand_circus_env
from ._errors import ConfigError, ConfigWarning
from ._model import CircusConfig, PluginConfig, SocketConfig, WatcherConfig
from ._plugin import parse_plugin
from ._reader import RawConfig, RawSection, RawValue, read_ini
from ._section import SectionView
from ._watcher import parse_watcher, socket_references

__all__ = ["load_config"]

_TYPED_PREFIXES = ("watcher", "socket", "plugin", "env")


def load_config(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    format: str = "auto",
) -> CircusConfig:
    """Load a Circus 0.19 INI config file and everything it includes.

    Args:
        path: the main config file. ``include``/``include_dir`` paths in its ``[circus]``
            section are relative to this file's directory.
        environ: circusd's environment, for ``$(circus.env.NAME)`` and ``$NAME`` expansion
            (default: ``os.environ``).
        format: ``"circus"``, ``"supervisor"`` (a supervisord.conf, read by
            :func:`circus.arbiter.supervisor.load_supervisor`; the result's ``supervisor``
            is set) or ``"auto"`` (Supervisor's when its sections say so:
            :func:`circus.arbiter.supervisor.detect_format`).

    Returns:
        The validated, immutable :class:`CircusConfig`.

    Raises:
        ConfigError: the file or an include cannot be read, or anything in them is invalid;
            the message names file, line, section, option, value and what was expected.

    Suspicious but loadable things (typo'd option names, duplicate keys, an include glob
    matching nothing...) are reported with :func:`warnings.warn` as :class:`ConfigWarning`.
    """
    if format not in ("auto", "circus", "supervisor"):
        raise ValueError(f"format must be auto, circus or supervisor, not {format!r}")
    if format != "circus":
        from ..supervisor._detect import detect_format

        if format == "supervisor" or detect_format(path) == "supervisor":
            from ..supervisor._loader import load_supervisor  # only paid for when used

            return load_supervisor(path, environ=environ).config
    environ = os.environ if environ is None else environ
    main = os.fspath(path)
    raw = RawConfig()
    _read_file(main, raw, None)
    _read_includes(main, raw, environ)
    return _build(main, raw, environ)


def _read_file(filename: str, into: RawConfig, origin: tuple[SectionView, str] | None) -> None:
    try:
        with open(filename, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if isinstance(exc, UnicodeDecodeError):
            reason = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        if origin is None:
            raise ConfigError(f"cannot read config file: {reason}", filename=filename) from None
        view, key = origin
        raise view.error(key, f"cannot read included file {filename}: {reason}") from None
    read_ini(text, filename, into)


def _view(section: RawSection, variables: Mapping[str, str]) -> SectionView:
    options = {
        key: RawValue(
            expand_circus_cpus(expand_circus_env(raw.value, variables)), raw.filename, raw.lineno
        )
        for key, raw in section.options.items()
    }
    return SectionView(section.name, section.filename, section.lineno, options)


def _env_sections(raw: RawConfig, environ: Mapping[str, str]) -> EnvSections:
    sections = [s for n, s in raw.sections.items() if n == "env" or n.startswith("env:")]
    unexpanded = EnvSections.from_sections(sections)
    variables = unexpanded.lookup_for(None, environ)
    views = [_view(section, variables) for section in sections]
    return EnvSections.from_sections(
        [RawSection(v.name, v.filename, v.lineno, v.options) for v in views]
    )


def _read_includes(main: str, raw: RawConfig, environ: Mapping[str, str]) -> None:
    circus = raw.sections.get("circus")
    if circus is None or not ({"include", "include_dir"} & circus.options.keys()):
        return
    view = _view(circus, _env_sections(raw, environ).lookup_for(None, environ))
    base = os.path.dirname(main)
    seen = {os.path.realpath(main)}
    for key in ("include", "include_dir"):
        for item in (view.text(key) or "").split():
            for filename in _expand_include(view, key, os.path.join(base, item)):
                real = os.path.realpath(filename)
                if real not in seen:
                    seen.add(real)
                    _read_file(filename, raw, (view, key))
    merged = raw.sections["circus"]
    for key in ("include", "include_dir"):
        option = merged.options.get(key)
        if option is not None and option.filename != main:
            warnings.warn(
                f"{option.filename}:{option.lineno}: [circus] {key}: ignored in an included "
                "file (includes are not recursive)",
                ConfigWarning,
                stacklevel=3,
            )
            del merged.options[key]


def _expand_include(view: SectionView, key: str, pattern: str) -> list[str]:
    if "\0" in pattern:  # the OS calls below would raise a bare ValueError
        raise view.error(key, "expected a path; this one contains a NUL character")
    if key == "include_dir":
        if not os.path.isdir(pattern):
            # Circus 0.19 loads such a config (its own tests rely on it): a warning, not a refusal
            what = "is not a directory" if os.path.exists(pattern) else "does not exist"
            view.warn(key, f"{pattern} {what}; nothing is included from it")
            return []
        return sorted(glob.glob(os.path.join(glob.escape(pattern), "*.ini")))
    if glob.has_magic(pattern):
        matches = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
        if not matches:
            view.warn(key, f"{pattern} matches no file")
        return matches
    # A path without wildcards names one file: its absence is a mistake, not "no match".
    return [pattern]


def _build(main: str, raw: RawConfig, environ: Mapping[str, str]) -> CircusConfig:
    env = _env_sections(raw, environ)
    general = env.lookup_for(None, environ)
    circus_view = None
    watchers: dict[str, WatcherConfig] = {}
    sockets: dict[str, SocketConfig] = {}
    plugins: dict[str, PluginConfig] = {}
    watcher_views: dict[str, SectionView] = {}
    depends: dict[str, DependsOn] = {}

    for name, section in raw.sections.items():
        kind, colon, rest = name.partition(":")
        if name == "circus":
            circus_view = _view(section, general)
            continue
        if kind == "env" and (colon or name == "env"):
            continue
        if not colon or kind not in ("watcher", "socket", "plugin"):
            _warn_unknown_section(section)
            continue
        if not section.options:
            _warn(section, "empty section ignored (as Circus 0.19 does)")
            continue
        rest = rest.strip()
        if kind == "watcher":
            view = _view(section, env.lookup_for(rest, environ))
            _unique(watchers, rest.lower(), view, "watcher")
            depends[rest.lower()] = take_depends_on(view, rest)
            watcher = parse_watcher(view, rest, env.env_for(rest))
            if depends[rest.lower()].names:
                watcher = dataclasses.replace(watcher, depends_on=depends[rest.lower()].names)
            watchers[rest.lower()] = watcher
            watcher_views[rest.lower()] = view
        elif kind == "socket":
            view = _view(section, general)
            _unique(sockets, rest.lower(), view, "socket")
            from ._socket import parse_socket  # socket module import is only paid when used

            sockets[rest.lower()] = parse_socket(view, rest.lower())
        else:
            view = _view(section, general)
            _unique(plugins, rest.lower(), view, "plugin")
            plugins[rest.lower()] = parse_plugin(view, rest)

    for key, watcher in watchers.items():
        _check_socket_refs(watcher_views[key], watcher, sockets)
    _check_total_processes(watchers, watcher_views)
    check_depends_on(depends)

    return CircusConfig(
        path=main,
        circus=parse_daemon(circus_view),
        watchers=tuple(sorted(watchers.values(), key=lambda w: (w.name.lower(), w.name))),
        sockets=tuple(sockets.values()),
        plugins=tuple(plugins.values()),
        sources=tuple(raw.files),
    )


def _check_total_processes(
    watchers: Mapping[str, WatcherConfig], views: Mapping[str, SectionView]
) -> None:
    """The ``numprocesses`` of every watcher, summed, stay under the daemon's ceiling; the
    error points at the watcher (in file order) that takes the sum past it."""
    total = 0
    for key, watcher in watchers.items():
        total += int(watcher.options["numprocesses"])
        if total > MAX_TOTAL_PROCESSES:
            raise views[key].error(
                "numprocesses",
                f"expected the numprocesses of every watcher, summed, to be <= "
                f"{MAX_TOTAL_PROCESSES} (the daemon's ceiling); {total} so far",
            )


def _unique(
    seen: Mapping[str, WatcherConfig | SocketConfig | PluginConfig],
    key: str,
    view: SectionView,
    what: str,
) -> None:
    first = seen.get(key)
    if first is not None:
        where = f"{first.filename}:{first.lineno}"
        raise view.error(
            None,
            f"duplicate {what} name (already defined at {where}; names are case-insensitive)",
        )


def _check_socket_refs(
    view: SectionView, watcher: WatcherConfig, sockets: Mapping[str, SocketConfig]
) -> None:
    kwargs = watcher.options
    stdin = kwargs["stdin_socket"]
    if stdin and stdin not in sockets:
        raise view.error("stdin_socket", _no_socket(stdin, sockets))
    for option in ("cmd", "args"):
        refs = socket_references(kwargs[option])
        for ref in sorted(refs):
            if ref not in sockets:
                raise view.error(option, _no_socket(ref, sockets))
        if refs and not kwargs["use_sockets"]:
            view.warn(
                option,
                "refers to a socket but use_sockets is false: the child will not inherit it",
            )
    for option in ("readiness", "liveness"):  # a probe reads the socket's address
        for ref in sorted(socket_references(kwargs.get(option))):
            if ref not in sockets:
                raise view.error(option, _no_socket(ref, sockets))


def _no_socket(name: str, sockets: Mapping[str, SocketConfig]) -> str:
    known = ", ".join(sorted(sockets)) or "none defined"
    return f"expected a [socket:NAME] section for socket {name!r} (known sockets: {known})"


def _warn(section: RawSection, message: str) -> None:
    warnings.warn(
        f"{section.filename}:{section.lineno}: [{section.name}]: {message}",
        ConfigWarning,
        stacklevel=4,
    )


def _warn_unknown_section(section: RawSection) -> None:
    import difflib

    kind, colon, _ = section.name.partition(":")
    candidates = _TYPED_PREFIXES if colon else ("circus", "env")
    close = difflib.get_close_matches(kind.lower(), candidates, n=1, cutoff=0.75)
    if kind.lower() in candidates or close:
        suggestion = (kind.lower() if kind.lower() in candidates else close[0]) + colon
        _warn(
            section,
            f"unknown section type (did you mean [{suggestion}...]?); section ignored",
        )

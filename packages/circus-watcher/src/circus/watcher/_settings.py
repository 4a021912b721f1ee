"""Options at run time: what ``options()`` and ``get_opt`` answer, what ``set_opt`` does, and
the values spawns take from the options (the child environment, the template values).

Every answer is read off the watcher's frozen :class:`~circus.watcher.WatcherOptions` and the
one option table; a change makes a new options object and swaps it in under the lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._env import build_env
from ._envfile import EnvFileError, read_env_files
from ._errors import OptionError
from ._hooks import resolve_all
from ._options import OPTIONS, unknown
from ._values import WatcherOptions

if TYPE_CHECKING:
    from ._watcher import Watcher

__all__ = ["ChildInputs", "get_value", "listing", "set_value"]


def listing(o: WatcherOptions) -> dict[str, Any]:
    """Every option value, as upstream's ``options`` command answers (+ ours)."""
    result: dict[str, Any] = {}
    for name, spec in OPTIONS.items():
        if spec.listed:
            value = o.get(name)
            result[name] = sorted(value) if isinstance(value, frozenset) else value
    result["env"] = dict(o.env)
    for stream in ("stdout_stream", "stderr_stream"):
        conf = o.get(stream)
        if isinstance(conf, Mapping):
            result[f"{stream}_conf"] = {k: v for k, v in conf.items() if k != "class"}
        else:
            result[f"{stream}_conf"] = None
    for name, value in o.rlimits.items():
        result[f"rlimit_{name}"] = value
    result.update(o.custom)
    return result


def get_value(watcher: Watcher, key: str) -> Any:
    """One option's value (``hooks``, ``rlimits``, stream options included).

    Raises:
        UnknownOptionError: no such option.
    """
    o = watcher.settings
    if key == "hooks":
        return watcher._hooks.specs()
    if key in OPTIONS and not OPTIONS[key].listed:
        value = o.get(key)
        return dict(value) if isinstance(value, Mapping) else value
    if key.startswith("hooks."):
        hook = watcher._hooks.hooks.get(key[len("hooks.") :])
        return hook.spec if hook else None
    if key.startswith(("stdout_stream.", "stderr_stream.")):
        head, _, tail = key.partition(".")
        conf = o.get(head)
        return conf.get(tail) if isinstance(conf, Mapping) else None
    options = listing(o)
    if key in options:
        return options[key]
    if key.startswith("rlimit_"):
        return None
    raise unknown(key)


async def set_value(watcher: Watcher, key: str, value: Any) -> None:
    """``set``: change one option and pay what the table says it costs (see ``set_opt``).

    Raises:
        UnknownOptionError: no such option, or one that cannot change at run time.
        OptionError: bad value (nothing changed).
    """
    from ._setopts import apply_options  # it builds on this module

    await apply_options(watcher, {key: value})


class ChildInputs:
    """The child environment and the ``$(circus.X)`` template values of a watcher's spawns,
    built once and shared (read-only) by every process: the environment again after
    :meth:`reset` (at each start, reload and ``set``: circusd's own may have changed), the
    template values again whenever the options change."""

    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher
        self._env: Mapping[str, str] | None = None
        self._template: Mapping[str, str] | None = None
        self._template_of: WatcherOptions | None = None

    def reset(self) -> None:
        """Build both again at their next use."""
        self._env = self._template = None

    def env(self) -> Mapping[str, str]:
        """The exact environment of the children.

        Raises:
            OptionError: ``virtualenv`` names no virtualenv, or an ``env_file`` cannot be
                read or parsed (the files are read again at each start, reload and ``set``).
        """
        if self._env is None:
            o = self._watcher.settings
            files = _read_env_files(o.env_file) if o.env_file else None
            self._env = MappingProxyType(
                build_env(
                    o.env,
                    copy_env=o.copy_env,
                    copy_path=o.copy_path,
                    virtualenv=o.virtualenv,
                    virtualenv_py_ver=o.virtualenv_py_ver,
                    env_files=files,
                )
            )
        return self._env

    def template(self) -> Mapping[str, str]:
        """``{key: text}`` for ``$(circus.KEY)`` (``$(circus.env.X)`` is the process layer's)."""
        settings = self._watcher.settings
        if self._template is None or self._template_of is not settings:
            values: dict[str, str] = {}
            for key, value in listing(settings).items():
                if key == "env":
                    continue
                if isinstance(value, Mapping):
                    for sub, item in value.items():
                        values[f"{key}.{sub}"] = "" if item is None else str(item)
                else:
                    values[key] = "" if value is None else str(value)
            self._template, self._template_of = MappingProxyType(values), settings
        return self._template


def _read_env_files(entries: tuple[str, ...]) -> dict[str, str]:
    try:
        return read_env_files(entries)
    except EnvFileError as exc:
        raise OptionError("env_file", exc.path, f"a readable environment file ({exc})") from None


def install(watcher: Watcher, settings: WatcherOptions) -> None:
    """Make ``settings`` the watcher's options (the caller holds its lock): hooks resolved
    again when they changed, derived inputs (environment, env files) recomputed on next use,
    policies (restart, flapping, backoff) re-read. Emits nothing."""
    hooks = resolve_all(settings.hooks) if settings.hooks != watcher.settings.hooks else None
    watcher.settings = settings
    if hooks is not None:
        watcher._hooks.hooks = hooks
    watcher._inputs.reset()
    watcher._apply_policies()

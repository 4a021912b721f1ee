"""The attributes a Circus 0.19 hook finds on the watcher it is given.

Hooks receive the watcher object itself (``hook(watcher, arbiter, hook_name, ...)``), and
hooks written for 0.19 read its attributes: upstream's example10 sets ``watcher.env[...]``
in ``before_spawn`` so the process about to be spawned sees the variable; its uWSGI example
reads ``watcher.processes[pid].wid``/``.started``, ``watcher._options`` (the free-form
options) and calls ``watcher.send_signal(pid, signum)``. :class:`UpstreamAttributes` gives
the :class:`~circus.watcher.Watcher` every such attribute, each option under its 0.19 name
with its 0.19 value type (the ``options`` answer's, ``UPSTREAM_OPTION_KEYS``).

Only ``env`` is writable, as a live mapping: a key set (or deleted) there changes the
watcher's ``env`` option, so every process spawned from then on gets it; the ones running
keep theirs. The other attributes are read-only: changing an option goes through
``set_opt`` (the ``set`` command), which knows what the change costs.

Hooks run in a thread of their own (``_hooks``); everything here may be read from there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._convert import parse_signal
from ._errors import OptionError
from ._options import convert
from ._upstream_view import UPSTREAM_OPTION_KEYS

if TYPE_CHECKING:
    from ._hooks import HookRunner
    from ._procs import ProcessLike
    from ._procset import ProcessSet
    from ._values import WatcherOptions

__all__ = ["LiveEnv", "UpstreamAttributes", "UPSTREAM_ATTRIBUTES"]


class LiveEnv(MutableMapping[str, str]):
    """``watcher.env``: the environment the watcher's next process gets, writable.

    Reads see the whole environment of a child (``env``, plus circusd's own with
    ``copy_env``, the virtualenv's, the env files'); a write or a delete changes the ``env``
    option itself, read again at the next spawn.
    """

    def __init__(self, watcher: Any) -> None:
        self._w = watcher

    def _child_env(self) -> Mapping[str, str]:
        env: Mapping[str, str] = self._w._inputs.env()
        return env

    def __getitem__(self, key: str) -> str:
        return self._child_env()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._child_env()))

    def __len__(self) -> int:
        return len(self._child_env())

    def __setitem__(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not isinstance(value, str):
            raise OptionError("env", {key: value}, "a mapping of strings to strings")
        self._replace({**self._w.settings.env, key: value})

    def __delitem__(self, key: str) -> None:
        env = dict(self._w.settings.env)
        if key not in env:
            # inherited (copy_env, env files): the option cannot take it away
            raise KeyError(key)
        del env[key]
        self._replace(env)

    def _replace(self, env: dict[str, str]) -> None:
        w = self._w
        # checked as the option is (strings only, no NUL or '=' in a name, its ceilings):
        # a bad value fails the hook that wrote it, not every spawn after it
        w.settings = w.settings.replace("env", convert("env", env))
        w._inputs.reset()

    def __repr__(self) -> str:
        return f"LiveEnv({dict(self._child_env())!r})"


def _option(key: str) -> property:
    show = UPSTREAM_OPTION_KEYS[key]

    def read(self: UpstreamAttributes) -> Any:
        return show(self.settings)

    return property(read, doc=f"The ``{key}`` option, as Circus 0.19's watcher holds it.")


class UpstreamAttributes:
    """Circus 0.19's watcher attributes, read off the watcher's options and processes."""

    settings: WatcherOptions
    name: str
    _procs: ProcessSet
    _hooks: HookRunner

    args = _option("args")
    close_child_stderr = _option("close_child_stderr")
    close_child_stdin = _option("close_child_stdin")
    close_child_stdout = _option("close_child_stdout")
    cmd = _option("cmd")
    copy_env = _option("copy_env")
    executable = _option("executable")
    gid = _option("gid")
    graceful_timeout = _option("graceful_timeout")
    max_age = _option("max_age")
    max_age_variance = _option("max_age_variance")
    max_retry = _option("max_retry")
    respawn = _option("respawn")
    send_hup = _option("send_hup")
    shell = _option("shell")
    shell_args = _option("shell_args")
    stderr_stream_conf = _option("stderr_stream_conf")
    stdout_stream_conf = _option("stdout_stream_conf")
    stop_children = _option("stop_children")
    stop_signal = _option("stop_signal")
    uid = _option("uid")
    use_sockets = _option("use_sockets")
    warmup_delay = _option("warmup_delay")
    working_dir = _option("working_dir")

    @property
    def env(self) -> LiveEnv:
        """The next process's environment; writing a key changes the ``env`` option."""
        return LiveEnv(self)

    @env.setter
    def env(self, value: Mapping[str, str]) -> None:
        LiveEnv(self)._replace(dict(value))

    @property
    def copy_path(self) -> bool:
        """The ``copy_path`` option."""
        return self.settings.copy_path

    @property
    def virtualenv(self) -> str | None:
        """The ``virtualenv`` option."""
        return self.settings.virtualenv

    @property
    def virtualenv_py_ver(self) -> str | None:
        """The ``virtualenv_py_ver`` option."""
        return self.settings.virtualenv_py_ver

    @property
    def stdin_socket(self) -> str | None:
        """The ``stdin_socket`` option."""
        return self.settings.stdin_socket

    @property
    def rlimits(self) -> dict[str, int | None]:
        """The ``rlimits`` option (a copy)."""
        return dict(self.settings.rlimits)

    @property
    def hooks(self) -> dict[str, Any]:
        """``{hook name: the callable}`` of the configured hooks."""
        return {name: hook.func for name, hook in self._hooks.hooks.items()}

    @property
    def _options(self) -> Mapping[str, Any]:
        """The free-form options of the watcher's section (0.19's ``_options``), read-only."""
        return MappingProxyType(dict(self.settings.custom))

    @property
    def optnames(self) -> tuple[str, ...]:
        """The option names ``options`` lists (0.19's, then the free-form ones)."""
        return tuple(UPSTREAM_OPTION_KEYS) + tuple(self.settings.custom)

    @property
    def res_name(self) -> str:
        """The name as 0.19 uses it in resource names: lowercase, spaces as ``_``."""
        return self.name.lower().replace(" ", "_")

    def is_active(self) -> bool:
        """True when the watcher is active."""
        return self.status() == "active"

    def is_stopping(self) -> bool:
        """True while the watcher stops."""
        return self.status() == "stopping"

    def status(self) -> str:  # the Watcher defines it; declared for the two above
        raise NotImplementedError

    def get_active_processes(self) -> list[ProcessLike]:
        """The watcher's processes, oldest first."""
        processes: dict[int, ProcessLike] = self._procs.counted
        return list(processes.values())

    def get_active_pids(self) -> list[int]:
        """The pids of the watcher's processes, oldest first."""
        return list(self._procs.counted)

    def send_signal(self, pid: int, signum: int | str) -> None:
        """Send ``signum`` to the watcher's process ``pid`` now (no signal hooks run: a hook
        calling it is already one).

        Raises:
            ProcessNotFoundError: ``pid`` is not one of the watcher's processes.
            OptionError: ``signum`` is not a signal.
        """
        try:
            number = parse_signal(signum)
        except (TypeError, ValueError):
            raise OptionError("signum", signum, "a signal number or name") from None
        self._procs.find(pid, self.name).send_signal(number)


#: Every attribute a 0.19 hook may read on the watcher it is given (tested by the hooks' tests).
UPSTREAM_ATTRIBUTES = (
    *UPSTREAM_OPTION_KEYS,
    *("copy_path", "virtualenv", "virtualenv_py_ver", "stdin_socket", "rlimits", "hooks"),
    *("_options", "optnames", "res_name", "name", "numprocesses", "priority", "singleton"),
    *("autostart", "on_demand", "processes", "pids", "sockets", "arbiter"),
    *("is_active", "is_stopping", "is_stopped", "status", "get_active_processes"),
    *("get_active_pids", "send_signal"),
)

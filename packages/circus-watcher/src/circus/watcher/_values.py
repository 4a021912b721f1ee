"""A watcher's option values as one typed, frozen object: :class:`WatcherOptions`.

Built from :data:`~circus.watcher.OPTIONS` (every default, overridden by what was given,
each value through its option's parser), checked as a whole (upstream's cross-option rules),
and never changed in place: ``set`` makes a new object with :meth:`WatcherOptions.replace`,
so a value read once stays what it was for whoever holds it. Mapping values (``env``,
``rlimits``, ``hooks``, stream confs, free-form options) are read-only views.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ._errors import OptionError
from ._options import OPTIONS, convert, fold


@dataclass(frozen=True)
class FlappingOptions:
    """The ``flapping.*`` options (README "Flapping")."""

    active: bool
    attempts: int
    window: float
    retry_in: float
    max_retry: int


@dataclass(frozen=True)
class WatcherOptions:
    """Every option of one watcher, typed; the attribute of ``flapping.X`` is ``flapping.X``.

    ``custom`` holds the free-form options upstream keeps verbatim (``custom_options``).
    Read a value by its wire name with :meth:`get`; change one with :meth:`replace`.
    """

    cmd: str
    args: str | None
    numprocesses: int
    warmup_delay: float
    working_dir: str | None
    shell: bool
    shell_args: str | None
    uid: int | str | None
    gid: int | str | None
    send_hup: bool
    stop_signal: int
    stop_children: bool
    env: Mapping[str, str]
    graceful_timeout: float
    prereload_fn: Callable[[Any], Any] | None
    rlimits: Mapping[str, int | None]
    executable: str | None
    stdout_stream: Any  # None, a stream conf (read-only mapping) or a stream object
    stderr_stream: Any
    priority: int
    singleton: bool
    use_sockets: bool
    copy_env: bool
    copy_path: bool
    max_age: float
    max_age_variance: float
    hooks: Mapping[str, Any]
    respawn: str
    autostart: bool
    on_demand: bool
    virtualenv: str | None
    stdin_socket: str | None
    close_child_stdin: bool
    close_child_stdout: bool
    close_child_stderr: bool
    virtualenv_py_ver: str | None
    umask: int | None
    max_retry: int
    retry_in: float
    success_exit_codes: frozenset[int]
    backoff_initial: float
    backoff_factor: float
    backoff_max: float
    backoff_reset: float
    give_up_after: int
    hook_timeout: float
    critical: bool
    env_file: tuple[str, ...]
    readiness: str | None
    readiness_timeout: float
    liveness: str | None
    liveness_interval: float
    liveness_timeout: float
    liveness_failures: int
    watchdog_sec: float
    flapping: FlappingOptions
    check_flapping: bool
    custom: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def build(
        cls, given: Mapping[str, Any], custom: Mapping[str, Any] | None = None
    ) -> WatcherOptions:
        """Every default, overridden by ``given`` (prefixed keys folded), validated.

        Raises:
            UnknownOptionError: a name that is no option.
            OptionError: a bad value, or options that contradict each other.
        """
        values = dict(_DEFAULTS)
        for name, value in fold(given).items():
            spec = OPTIONS.get(name)
            if spec is None or value is not spec.default:  # a default is converted already
                values[name] = convert(name, value)
        result = _make(values, custom or {})
        result.check()
        return result

    def get(self, name: str) -> Any:
        """The value of the option called ``name`` (``"flapping.window"`` included)."""
        head, dot, tail = name.partition(".")
        if dot and head == "flapping":
            return getattr(self.flapping, tail)
        return getattr(self, name)

    def replace(self, name: str, value: Any) -> WatcherOptions:
        """A copy with option ``name`` set to ``value`` (already converted), checked.

        Raises:
            OptionError: the result breaks a cross-option rule (nothing changed).
        """
        return self.replace_many({name: value})

    def replace_many(self, values: Mapping[str, Any]) -> WatcherOptions:
        """A copy with every option of ``values`` set (already converted), checked once
        all are in: options that must change together (``copy_env`` and ``copy_path``) can.

        Raises:
            OptionError: the result breaks a cross-option rule (nothing changed).
        """
        result = self
        for name, value in values.items():
            head, dot, tail = name.partition(".")
            if dot and head == "flapping":
                flapping = dataclasses.replace(result.flapping, **{tail: value})
                result = dataclasses.replace(result, flapping=flapping)
            else:
                frozen = _frozen(value) if name in _MAPPINGS else value
                result = dataclasses.replace(result, **{name: frozen})
        result.check()
        return result

    def with_custom(self, key: str, value: Any) -> WatcherOptions:
        """A copy with the free-form option ``key`` set to ``value``."""
        return dataclasses.replace(self, custom=MappingProxyType({**self.custom, key: value}))

    def check(self) -> None:
        """Cross-option rules (upstream's ValueErrors, with our error shape).

        Raises:
            OptionError: ``singleton`` with more than one process, ``copy_path`` or
                ``virtualenv`` without ``copy_env``.
        """
        if self.singleton and self.numprocesses > 1:
            raise OptionError("numprocesses", self.numprocesses, "0 or 1 when singleton is set")
        if self.copy_path and not self.copy_env:
            raise OptionError("copy_path", True, "copy_env to be true as well")
        if self.virtualenv and not self.copy_env:
            raise OptionError("virtualenv", self.virtualenv, "copy_env to be true as well")


# The options whose value may be a mapping (a stream option may also be a stream object).
_MAPPINGS = frozenset({"env", "rlimits", "hooks", "stdout_stream", "stderr_stream"})


def _frozen(value: Any) -> Any:
    return MappingProxyType(dict(value)) if isinstance(value, Mapping) else value


def _make(values: Mapping[str, Any], custom: Mapping[str, Any]) -> WatcherOptions:
    flat = {name: values[name] for name in _FLAT}
    for name in _MAPPINGS:
        flat[name] = _frozen(flat[name])
    flapping = FlappingOptions(**{field: values[name] for name, field in _FLAPPING})
    return WatcherOptions(**flat, flapping=flapping, custom=MappingProxyType(dict(custom)))


# Defaults parsed once (``env`` None -> {} and so on), not at every construction.
_DEFAULTS: dict[str, Any] = {name: spec.parse(spec.default) for name, spec in OPTIONS.items()}
_FLAT = tuple(name for name in OPTIONS if "." not in name)
_FLAPPING = tuple(
    (name, name.partition(".")[2]) for name in OPTIONS if name.startswith("flapping.")
)

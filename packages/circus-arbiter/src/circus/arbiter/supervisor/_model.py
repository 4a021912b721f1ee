"""What a loaded supervisord.conf is: the Circus config it runs, plus Supervisor's own view
(processes by their supervisorctl names, groups, and the sections the control API reads)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import ConfigError, ConfigWarning
from ._reader import SupValue

if TYPE_CHECKING:
    from ..config import CircusConfig

__all__ = ["SupSection", "SupProcess", "SupervisordSection", "SupervisorConfig", "namespec"]


def namespec(group: str, name: str) -> str:
    """supervisorctl's name of a process: ``name`` when the group has its name, else
    ``group:name``. It is also the name of the Circus watcher running that process."""
    return name if group == name else f"{group}:{name}"


@dataclass
class SupSection:
    """One section with file-wide expansions applied (``%(here)s``, ``%(ENV_X)s``,
    ``%(host_node_name)s`` where the section allows them) and where each value was written."""

    name: str
    filename: str
    lineno: int
    options: dict[str, SupValue] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set, repr=False, compare=False)

    def get(self, key: str, default: str | None = None) -> str | None:
        """The option's text, or ``default`` when absent."""
        raw = self.options.get(key)
        return default if raw is None else raw.value

    def where(self, key: str | None) -> tuple[str, int]:
        """``(filename, lineno)`` of the option (of the header when absent or ``None``)."""
        raw = self.options.get(key) if key is not None else None
        return (raw.filename, raw.lineno) if raw else (self.filename, self.lineno)

    def error(self, key: str | None, expected: str) -> ConfigError:
        """A :class:`ConfigError` at ``key``'s line (the header's line when absent)."""
        raw = self.options.get(key) if key is not None else None
        filename, lineno = self.where(key)
        return ConfigError(
            expected,
            filename=filename,
            lineno=lineno,
            section=self.name,
            option=key,
            value=raw.value if raw else None,
        )

    def warn(self, key: str | None, message: str) -> None:
        """Issue a :class:`ConfigWarning` ``file:line: [section] key: message`` (once: the
        processes of one program share their section's warnings)."""
        filename, lineno = self.where(key)
        prefix = f"[{self.name}] {key}" if key is not None else f"[{self.name}]"
        text = f"{filename}:{lineno}: {prefix}: {message}"
        if text not in self._warned:
            self._warned.add(text)
            warnings.warn(text, ConfigWarning, stacklevel=3)


@dataclass(frozen=True)
class SupProcess:
    """One Supervisor process and the Circus watcher that runs it (its only process, wid 1).

    ``stdout_logfile``/``stderr_logfile`` are the absolute paths the output goes to, or
    ``None`` when it is not written to a file of its own (``NONE``, ``AUTO`` without
    ``childlogdir``, ``/dev/stdout``, or stderr redirected to stdout). ``autorestart``
    (``always``/``never``/``on-failure``), ``exitcodes``, ``startsecs``, ``startretries``
    and ``priority`` are the program's Supervisor values.
    """

    namespec: str
    group: str
    name: str
    program: str
    kind: str
    process_num: int
    stdout_logfile: str | None = None
    stderr_logfile: str | None = None
    redirect_stderr: bool = False
    stdout_events_enabled: bool = False
    stderr_events_enabled: bool = False
    autorestart: str = "on-failure"
    exitcodes: tuple[int, ...] = (0,)
    startsecs: int = 1
    startretries: int = 3
    priority: int = 999
    filename: str = ""
    lineno: int = 0

    @property
    def watcher(self) -> str:
        """The Circus watcher running this process (the namespec)."""
        return self.namespec

    @property
    def wid(self) -> int:
        """The process's wid in its watcher: always 1 (one process per watcher)."""
        return 1


@dataclass(frozen=True)
class SupervisordSection:
    """``[supervisord]``, typed; paths absolute. ``None`` where the file says nothing."""

    nodaemon: bool = False
    logfile: str | None = None
    pidfile: str | None = None
    loglevel: str = "info"
    identifier: str = "supervisor"
    childlogdir: str | None = None
    directory: str | None = None
    user: str | None = None
    umask: int = 0o022
    minfds: int = 1024
    minprocs: int = 200
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SupervisorConfig:
    """A loaded supervisord.conf.

    ``config`` is what circusd runs (its ``supervisor`` attribute is this object);
    ``processes`` in start order; ``groups`` maps every group (homogeneous or not) to its
    namespecs; ``sections`` holds the sections this loader does not turn into watchers
    (``unix_http_server``, ``inet_http_server``, ``supervisorctl``, ``eventlistener:X``,
    ``rpcinterface:X``, ``ctlplugin:X``), keyed by their header. ``ini`` is the Circus INI
    equivalent, section by section (``watcher:X``, ``env:X``, ``socket:X``, ``circus``):
    ``(option, value)`` pairs as ``circusctl convert`` prints them.
    """

    path: str
    config: CircusConfig
    supervisord: SupervisordSection
    processes: tuple[SupProcess, ...] = ()
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sections: Mapping[str, SupSection] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    ini: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict, repr=False)

    def process(self, name: str) -> SupProcess:
        """The process whose namespec is ``name``. Raises ``KeyError``."""
        for proc in self.processes:
            if proc.namespec == name:
                return proc
        raise KeyError(name)

"""The interface every measured thing implements: a Backend opens Sessions on one program.

A *session* is one daemon (or, for the raw reference, the bench process itself) managing one
program of ``numprocesses`` copies. Workloads are written once against :class:`Session`; a new
peer plugs in by implementing it.
"""

from __future__ import annotations

import os
import signal
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ..procs import BenchError, comm_state, running_children, wait_for


class NotApplicable(Exception):  # noqa: N818 - a marker, not an error
    """The workload has no meaning for this backend (e.g. a control round trip for raw)."""


@dataclass(frozen=True)
class ProgramSpec:
    """One program to manage: ``numprocesses`` copies of ``argv``.

    Attributes:
        name: watcher / program name in the generated config.
        argv: the command; ``argv[0]`` is an absolute path.
        comm: the process name once exec'd, used to count running copies in /proc.
        numprocesses: how many copies.
        respawn: restart copies that die.
        stdout_file: send the copies' stdout to this file (None: not captured).
        no_backoff: replace copies at once even when they die in quick succession (turns off
            a manager's crash-loop backoff where it has one; the respawn workload kills
            back to back, and wants the respawn itself timed, not the policy's delays).
        autostart: the manager starts the copies itself when it starts (the launch
            workload: exec of the daemon to all copies running).
    """

    name: str
    argv: tuple[str, ...]
    comm: str
    numprocesses: int
    respawn: bool = True
    stdout_file: Path | None = None
    no_backoff: bool = False
    autostart: bool = False


class Session(ABC):
    """One running manager of one program; a context manager that leaves nothing behind."""

    def __init__(self, spec: ProgramSpec, workdir: Path) -> None:
        self.spec = spec
        self.workdir = workdir

    @property
    @abstractmethod
    def parent_pid(self) -> int:
        """The pid whose direct children are the program's processes."""

    @property
    def daemon_pid(self) -> int | None:
        """The daemon's pid (None for the raw reference, which has no daemon)."""
        return None

    #: Seconds from the exec of the daemon to all copies running in /proc, measured when
    #: the spec asks for ``autostart`` (None: no daemon, or not asked).
    launch_took: float | None = None

    @abstractmethod
    def start(self, wait: bool = True) -> None:
        """Start every copy; with ``wait``, return once the manager says they all run."""

    @abstractmethod
    def stop(self) -> None:
        """Stop every copy; return once the manager says they are all stopped."""

    def track(self, pids: set[int] | list[int] | None = None) -> None:
        """Remember the manager's children for the cleanup in close() (not timed); no-op here."""
        return None

    def call_status(self) -> None:
        """One control-channel status call (the cheap one)."""
        raise NotApplicable

    def call_list(self) -> None:
        """One control-channel call listing the program's processes."""
        raise NotApplicable

    def cli_status(self) -> None:
        """One run of the manager's command-line client asking for the status."""
        raise NotApplicable

    @abstractmethod
    def close(self) -> None:
        """Shut the manager down and make sure no process it started is left."""

    def pids(self) -> set[int]:
        """Running (exec'd, not zombie) copies of the program."""
        return running_children(self.parent_pid, self.spec.comm)

    def respawn_once(self, old: int, timeout: float = 60.0) -> tuple[float, int]:
        """SIGKILL copy ``old``; return (seconds until a new copy runs, its pid).

        The default polls the manager's children every millisecond, for managers that publish
        no spawn event.
        """
        parent, comm = self.parent_pid, self.spec.comm
        # Children are read before the kill so a copy that was already there is not mistaken
        # for the replacement.
        before = running_children(parent, comm)
        found: list[int] = []

        def replaced() -> bool:
            for pid in running_children(parent, comm) - before:
                found.append(pid)
                return True
            return False

        t0 = time.perf_counter()
        os.kill(old, signal.SIGKILL)
        t1 = wait_for(replaced, timeout, f"a copy replacing pid {old}", interval=0.001)
        return t1 - t0, found[0]

    def gone(self, pids: set[int]) -> bool:
        """Whether every pid in ``pids`` is gone (reaped): one /proc read per pid."""
        return all(comm_state(p) is None for p in pids)

    def wait_gone(self, pids: set[int], timeout: float) -> float:
        """Wait until every pid in ``pids`` is gone (reaped by its parent); return when
        (perf_counter, after the check that found them all gone)."""
        return wait_for(
            lambda: self.gone(pids),
            timeout,
            f"{len(pids)} processes of {self.spec.name} to go",
            0.005,
        )

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Backend(ABC):
    """Something to measure: makes :class:`Session` objects for program specs."""

    #: short name used in --peers, the table and the JSON.
    name: str = ""

    def unavailable(self) -> str | None:
        """Why this backend cannot run here (None when it can); must be cheap."""
        return None

    def prepare(self) -> None:
        """One-off setup before the first session (e.g. build a cached venv)."""
        return None

    @abstractmethod
    def open(self, spec: ProgramSpec, workdir: Path) -> Session:
        """Start a manager for ``spec`` in ``workdir``, ready for commands (nothing started)."""

    def describe(self) -> str:
        """One line for the report: version and how it is driven."""
        return self.name


__all__ = ["Backend", "BenchError", "NotApplicable", "ProgramSpec", "Session"]

"""What every real daemon session shares: launching it, tracking its children, shutting down.

Subclasses say how to wait until the daemon answers, how to ask it to quit, and which client
connections to release; the lifecycle (and the guarantee that no child outlives the session,
even when the daemon crashed) lives here once.
"""

from __future__ import annotations

import os
import subprocess
import time
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path

from ..procs import BenchError, children, comm_state, die_with_parent, identify, kill_identified
from ..settings import CACHE_DIR
from .base import ProgramSpec, Session

READY_TIMEOUT = 60.0

#: Where the daemons' Python keeps its bytecode. An installed package has its .pyc files
#: (pip and distributions compile at install), but an editable install in a tree where
#: PYTHONDONTWRITEBYTECODE is set (this dev machine) would compile every module at each
#: daemon start; every Python daemon (ours and the peers) gets the same cache here.
PYCACHE = CACHE_DIR / "bench-pycache"


def daemon_env() -> dict[str, str]:
    """The environment every daemon is started with: ours, with bytecode cached."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


class DaemonSession(Session):
    """A session whose program is run by a daemon process we start and own."""

    def __init__(self, spec: ProgramSpec, workdir: Path, argv: list[str], log_name: str) -> None:
        super().__init__(spec, workdir)
        self.log_path = workdir / log_name
        self._seen: dict[int, int] = {}
        env = daemon_env()
        with open(self.log_path, "wb") as log:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=die_with_parent,
                env=env,
            )
        if spec.autostart:
            try:
                self.launch_took = self._wait_launched(t0)
            except BaseException:
                self._abort()
                raise

    def _abort(self) -> None:
        # No client is connected yet (subclasses connect after this constructor): the
        # daemon and whatever it started are killed outright.
        self.track()
        self.proc.kill()
        self.proc.wait()
        kill_identified(self._seen)

    def _wait_launched(self, t0: float) -> float:
        """Seconds from ``t0`` (just before the exec) until every copy runs in /proc.

        Polled every 2 ms before any client connects; a child is counted once it has
        exec'd the program and is not a zombie, and its /proc entry is read only until then.
        """
        n, comm = self.spec.numprocesses, self.spec.comm
        deadline = t0 + READY_TIMEOUT + n * 0.05
        running: set[int] = set()
        while True:
            for pid in children(self.proc.pid) - running:
                cs = comm_state(pid)
                if cs is not None and cs[0] == comm and cs[1] not in ("Z", "X"):
                    running.add(pid)
            now = time.perf_counter()
            if len(running) >= n:
                return now - t0
            if self.proc.poll() is not None:
                raise BenchError(f"daemon exited with {self.proc.returncode}: {self.log_tail()}")
            if now > deadline:
                raise BenchError(f"{len(running)} of {n} running after {now - t0:.0f}s")
            time.sleep(0.002)

    @property
    def parent_pid(self) -> int:
        return self.proc.pid

    @property
    def daemon_pid(self) -> int | None:
        return self.proc.pid

    def track(self, pids: set[int] | list[int] | None = None) -> None:
        """Remember ``pids`` (default: the daemon's children now) for the cleanup in close()."""
        self._seen |= identify(children(self.proc.pid) if pids is None else pids)

    def log_tail(self) -> str:
        """The end of the daemon's output, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def wait_ready(self, answers: Callable[[], bool]) -> None:
        """Poll ``answers()`` (True once the daemon serves requests) for READY_TIMEOUT s.

        Raises:
            BenchError: with the daemon's log when it exits or never answers.
        """
        deadline = time.monotonic() + READY_TIMEOUT
        while not answers():
            if self.proc.poll() is not None:
                raise BenchError(f"daemon exited with {self.proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(
                    f"daemon not answering after {READY_TIMEOUT:g}s: {self.log_tail()}"
                )
            time.sleep(0.01)

    def respawn_once(self, old: int, timeout: float = 60.0) -> tuple[float, int]:
        took, pid = super().respawn_once(old, timeout)
        self.track([pid])
        return took, pid

    @abstractmethod
    def ask_quit(self) -> None:
        """Ask the daemon to shut down (errors are the caller's to ignore)."""

    def release(self) -> None:
        """Close the client connections (after the daemon is gone)."""
        return None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.track()
            try:
                self.ask_quit()
            except Exception:  # noqa: BLE001 - a dead or wedged daemon is handled just below
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.release()
        # Whatever the daemon left behind (it crashed, or quit without stopping) goes now.
        kill_identified(self._seen)

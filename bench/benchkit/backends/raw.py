"""The raw reference: the bench process itself runs the copies with bare ``subprocess.Popen``.

This is the floor every manager is compared with: no daemon, no control channel, each child in
its own session like a managed one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from .base import Backend, ProgramSpec, Session


class RawSession(Session):
    """Copies started by ``Popen`` from this process; stop is SIGTERM then ``wait`` each."""

    def __init__(self, spec: ProgramSpec, workdir: Path) -> None:
        super().__init__(spec, workdir)
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def parent_pid(self) -> int:
        return os.getpid()

    def _spawn(self) -> subprocess.Popen[bytes]:
        out = subprocess.DEVNULL
        if self.spec.stdout_file is not None:
            out = open(self.spec.stdout_file, "ab")  # noqa: SIM115 - closed right below
        try:
            return subprocess.Popen(
                self.spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()

    def start(self, wait: bool = True) -> None:
        # Popen returns once the child has exec'd (it waits on its error pipe), so returning
        # here means every copy runs.
        self.procs = [self._spawn() for _ in range(self.spec.numprocesses)]

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.wait()
        self.procs = []

    def respawn_once(self, old: int, timeout: float = 60.0) -> tuple[float, int]:
        """SIGKILL ``old``, reap it, start a replacement: the least any manager can do."""
        (i, proc) = next((i, p) for i, p in enumerate(self.procs) if p.pid == old)
        t0 = time.perf_counter()
        proc.kill()
        proc.wait()
        self.procs[i] = self._spawn()
        return time.perf_counter() - t0, self.procs[i].pid

    def close(self) -> None:
        for p in self.procs:
            p.kill()  # our own unreaped children: the pid cannot have been reused
            p.wait()
        self.procs = []


class RawBackend(Backend):
    """The reference everything is divided by."""

    name = "raw"

    def open(self, spec: ProgramSpec, workdir: Path) -> Session:
        return RawSession(spec, workdir)

    def describe(self) -> str:
        return "bare subprocess.Popen from the bench process (the reference)"

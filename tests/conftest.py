"""End-to-end fixtures: a real ``circusd`` subprocess on a config in tmp_path, with ipc
endpoints in tmp_path, driven by :class:`circus.ctl.CircusClient`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from circus.ctl import CircusClient
from circus.process.testing import leak_check_fixture, wait_until

# No test leaves a child process or a descriptor behind (DEVELOPERS.md, test rules).
no_leaks = leak_check_fixture()

PY = sys.executable
CIRCUSD = str(Path(sys.executable).with_name("circusd"))


class Daemon:
    """One circusd process; :meth:`call` talks to it, :meth:`stop` ends it (reaped)."""

    def __init__(self, tmp_path: Path, body: str, args: tuple[str, ...] = ()) -> None:
        self.dir = tmp_path
        self.endpoint = f"ipc://{tmp_path}/ctl"
        self.pubsub = f"ipc://{tmp_path}/pub"
        self.stats = f"ipc://{tmp_path}/stats"
        self.config = tmp_path / "circus.ini"
        self.log = tmp_path / "circusd.log"
        self.write(body)
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: CircusClient | None = None
        self.descendants: set[int] = set()

    def write(self, body: str) -> None:
        """(Re)write the config: our [circus] header plus ``body``."""
        header = (
            f"[circus]\nendpoint = {self.endpoint}\npubsub_endpoint = {self.pubsub}\n"
            f"loglevel = debug\n"
        )
        if body.lstrip().startswith("[circus]"):
            body = body.lstrip()[len("[circus]") :]
        self.config.write_text(header + body)

    def start(self, wait: bool = True) -> Daemon:
        """Spawn circusd; with ``wait`` return once its control channel answers."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [CIRCUSD, str(self.config), *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
            )
        if wait:
            wait_until(self._answers, 20, "circusd to answer")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"circusd exited {self.proc.returncode}: {self.output()}")
        if not os.path.exists(self.endpoint[len("ipc://") :]):
            return False
        try:
            return self.call("numwatchers", timeout=1).get("status") == "ok"
        except Exception:
            self.close_client()
            return False

    def output(self) -> str:
        """Everything circusd logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def call(self, command: str, timeout: float = 10.0, **props: Any) -> dict[str, Any]:
        """One command; the raw answer (errors included)."""
        if self._client is None:
            self._client = CircusClient(self.endpoint, timeout=timeout, check=False)
        self._client.timeout = timeout
        return self._client.call(command, props)

    def pids(self, name: str) -> list[int]:
        """The pids ``list NAME`` reports."""
        return sorted(self.call("list", name=name)["pids"])

    def track(self) -> set[int]:
        """Remember every current descendant of circusd (checked dead after stop)."""
        assert self.proc is not None
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            kids = []
        self.descendants |= {k.pid for k in kids}
        return self.descendants

    def close_client(self) -> None:
        """Close the control client."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to circusd."""
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for circusd to exit; its status."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> int | None:
        """SIGTERM circusd, wait; SIGKILL it (and its descendants) if it hangs."""
        self.close_client()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.track()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid in self.descendants:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self.proc.returncode


@pytest.fixture
def circusd(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """``circusd(body, *args, start=True)``: a Daemon on a config with our [circus] header."""
    made: list[Daemon] = []

    def make(body: str = "", *args: str, start: bool = True) -> Daemon:
        daemon = Daemon(tmp_path, body, args)
        made.append(daemon)
        return daemon.start() if start else daemon

    yield make
    for daemon in made:
        daemon.stop()


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def is_alive() -> Callable[[int], bool]:
    """The :func:`alive` helper."""
    return alive


@pytest.fixture
def wait() -> Callable[..., Any]:
    """:func:`circus.process.testing.wait_until` (predicate, timeout, message)."""
    return wait_until


SLEEP = f"{PY} -c 'import time; time.sleep(300)'"


@pytest.fixture
def e2e() -> Any:
    """Helpers for end-to-end tests: ``CIRCUSD``, ``SLEEP``, ``PY``, ``alive``, ``wait``."""
    from types import SimpleNamespace

    return SimpleNamespace(CIRCUSD=CIRCUSD, SLEEP=SLEEP, PY=PY, alive=alive, wait=wait_until)

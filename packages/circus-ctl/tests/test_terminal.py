"""The interactive parts on a real terminal (a pty): circusctl's shell and circus-top's view."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from circus.ctl.testing import FakeDaemon


class Terminal:
    """A process attached to a pseudo-terminal; read its screen, type into it."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.leader, follower = pty.openpty()
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=follower,
                stdout=follower,
                stderr=follower,
                env=env,
                start_new_session=True,
            )
        finally:
            os.close(follower)
        self.screen = b""

    def expect(self, text: bytes, timeout: float = 30) -> None:
        """Read until ``text`` has appeared on the screen."""
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{text!r} never appeared; screen: {self.screen[-2000:]!r}")
            ready, _, _ = select.select([self.leader], [], [], remaining)
            if ready:
                try:
                    self.screen += os.read(self.leader, 65536)
                except OSError:  # EIO: the process closed the terminal
                    break

    def type(self, keys: bytes) -> None:
        """Send keystrokes."""
        os.write(self.leader, keys)

    def close(self) -> int:
        """Wait for the process (killing it if it hangs) and release the terminal."""
        try:
            deadline = time.monotonic() + 20
            while self.proc.poll() is None and time.monotonic() < deadline:
                # Keep draining the screen: a process blocked writing to a full pty never exits.
                ready, _, _ = select.select([self.leader], [], [], 0.1)
                if ready:
                    try:
                        self.screen += os.read(self.leader, 65536)
                    except OSError:
                        pass
            if self.proc.poll() is None:
                self.proc.kill()
            return self.proc.wait(10)
        finally:
            os.close(self.leader)


@pytest.fixture
def terminal() -> Iterator[type[Terminal]]:
    made: list[Terminal] = []

    class Tracked(Terminal):
        def __init__(self, argv: list[str], env: dict[str, str]) -> None:
            super().__init__(argv, env)
            made.append(self)

    yield Tracked
    for term in made:
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait(10)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(TERM="xterm", COLUMNS="100", LINES="30", **extra)
    return env


def test_shell_keeps_history(daemon: FakeDaemon, tmp_path: Path, terminal) -> None:
    history = tmp_path / "history"
    argv = [sys.executable, "-m", "circus.ctl.cli", "--endpoint", daemon.endpoint]
    term = terminal(argv, _env(CIRCUSCTL_HISTORY=str(history)))
    term.expect(b"(circusctl) ")
    term.type(b"numwatchers\r")
    term.expect(b"3\r\n")
    term.type(b"exit\r")
    assert term.close() == 0
    assert "numwatchers" in history.read_text()


def test_top_curses_view_and_quit(daemon: FakeDaemon, tmp_path: Path, terminal) -> None:
    argv = [
        sys.executable,
        "-c",
        "import sys; from circus.ctl.top import main; sys.exit(main())",
        "--endpoint",
        f"ipc://{tmp_path / 'no-stats.sock'}",
        "--ctl-endpoint",
        daemon.endpoint,
        "--wait",
        "0.2",
    ]
    term = terminal(argv, _env())
    term.expect(b"(q: quit)")
    term.expect(b"sleeper")
    term.type(b"q")
    assert term.close() == 0

"""The systemd watchdog across a daemon-reexec: systemd kills a unit whose pings stop for
longer than ``WatchdogSec`` (``$WATCHDOG_USEC``), and a re-exec must not be such a gap. The
new image pings at the same interval, and the last ping of the old image and the first of
the new are less than the watchdog period apart."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from circus.process.testing import wait_until

CONFIG = """
[watcher:idle]
cmd = sleep 600
numprocesses = 3
graceful_timeout = 5
hooks.before_start = slowhooks.before_start
"""

# The watchdog period: circusd pings every half of it, from its event loop. Long enough
# that a loaded machine's loop keeps up.
WATCHDOG_USEC = 3_000_000

# A hooks module that takes longer than the watchdog period to import once ``slow`` exists
# beside it: a big application's hooks, say, that the new image imports again before it
# serves. No ping may wait for it.
SLOW_HOOKS = """\
import os, time
if os.path.exists(os.path.join(os.path.dirname(__file__), "slow")):
    time.sleep(3.5)

def before_start(*args, **kwargs):
    return True
"""


class Systemd:
    """A datagram socket standing for systemd's notify socket: every message with the
    monotonic time it arrived, read by a thread as soon as it arrives."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            now = time.monotonic()
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self.messages.append((now, fields))

    def times(self, key: str) -> list[float]:
        """When each message holding ``key`` arrived."""
        with self._lock:
            return [at for at, fields in self.messages if key in fields]

    def close(self) -> None:
        """Stop the reader and close the socket."""
        self._stop.set()
        self._thread.join(10)
        self.sock.close()


def _environ(pid: int) -> dict[str, str]:
    """The environment ``pid``'s image was exec'd with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


@pytest.mark.slow
def test_no_watchdog_gap_across_a_reexec(circusd, tmp_path, monkeypatch) -> None:
    systemd = Systemd(tmp_path / "notify")
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
        (tmp_path / "slowhooks.py").write_text(SLOW_HOOKS)
        monkeypatch.setenv("PYTHONPATH", str(tmp_path))
        daemon = circusd(CONFIG)
        wait_until(lambda: len(systemd.times("READY")) == 1, 60, "READY=1")
        wait_until(lambda: len(systemd.times("WATCHDOG")) >= 3, 30, "the first image's pings")
        (tmp_path / "slow").touch()
        asked = time.monotonic()
        answer = daemon.call("daemon-reexec", timeout=60)
        assert answer["status"] == "ok", answer
        wait_until(lambda: len(systemd.times("READY")) == 2, 60, "READY=1 from the new image")
        ready = systemd.times("READY")[1]
        wait_until(
            lambda: len([t for t in systemd.times("WATCHDOG") if t > ready]) >= 3,
            30,
            "the new image's pings",
        )
        assert daemon.proc.poll() is None
        # the same period for the new image: what it was exec'd with
        env = _environ(daemon.proc.pid)
        assert env.get("WATCHDOG_USEC") == str(WATCHDOG_USEC)
        assert env.get("WATCHDOG_PID") == str(daemon.proc.pid)
        pings = systemd.times("WATCHDOG")
        around = [t for t in pings if t >= asked - WATCHDOG_USEC / 1e6]
        gaps = [b - a for a, b in zip(around, around[1:], strict=False)]
        assert max(gaps) < WATCHDOG_USEC / 1e6, (
            f"a gap of {max(gaps):.2f} s between two pings across the re-exec "
            f"(watchdog period {WATCHDOG_USEC / 1e6} s): {[round(g, 2) for g in gaps]}"
        )
    finally:
        systemd.close()

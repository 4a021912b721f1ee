"""circusd under systemd (Type=notify) keeps speaking to systemd across a daemon-reexec:
the new image, in the same pid, says READY=1 again and goes on with the watchdog pings."""

from __future__ import annotations

import socket

import pytest
from circus.process.testing import wait_until

CONFIG = """
[watcher:idle]
cmd = sleep 600
numprocesses = 2
graceful_timeout = 5
"""


class Notify:
    """A datagram socket standing for systemd's notify socket; the messages it got."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []

    def count(self, key: str) -> int:
        """How many messages so far hold ``key`` (reading what arrived)."""
        try:
            while True:
                data = self.sock.recv(65536)
                self.messages.append(
                    dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
                )
        except (TimeoutError, BlockingIOError):
            pass
        return sum(key in message for message in self.messages)


@pytest.mark.slow
def test_the_new_image_keeps_talking_to_systemd(circusd, tmp_path, monkeypatch) -> None:
    notify = Notify(str(tmp_path / "notify"))
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        monkeypatch.setenv("WATCHDOG_USEC", "400000")
        daemon = circusd(CONFIG)
        wait_until(lambda: notify.count("READY") == 1, 60, "READY=1")
        answer = daemon.call("daemon-reexec", timeout=60)
        assert answer["status"] == "ok", answer
        wait_until(lambda: notify.count("READY") == 2, 60, "READY=1 from the new image")
        pings = notify.count("WATCHDOG")
        wait_until(lambda: notify.count("WATCHDOG") > pings + 1, 30, "the new image's pings")
        assert daemon.proc.poll() is None
    finally:
        notify.sock.close()

"""The watchdog bridge of a new circusd image (``SystemdNotifier.bridge``): pings from a
thread until the loop serves, bounded, on a real datagram socket standing for systemd's."""

from __future__ import annotations

import socket

from circus.arbiter._sdnotify import SystemdNotifier
from circus.process.testing import wait_until


def _received(sock: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(sock.recv(4096))
        except BlockingIOError:
            return got


def test_bridge_pings_until_unbridged_or_its_limit(tmp_path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(path)
        systemd.setblocking(False)
        got: list[bytes] = []
        notifier = SystemdNotifier(path, watchdog_usec=40_000)  # a ping every 20 ms
        notifier.bridge()
        wait_until(lambda: got.extend(_received(systemd)) or len(got) >= 3, 30, "bridge pings")
        assert set(got) == {b"WATCHDOG=1"}
        notifier.unbridge()
        assert notifier._bridge is None
        _received(systemd)
        notifier.unbridge()  # twice: nothing
        # its limit: the pings stop by themselves (a new image that never serves)
        notifier.bridge(limit=0.1)
        assert notifier._bridge is not None
        thread = notifier._bridge[1]
        wait_until(lambda: not thread.is_alive(), 30, "the bridge ending at its limit")
        assert all(message == b"WATCHDOG=1" for message in _received(systemd))
        notifier.close()
        # no watchdog, no bridge
        quiet = SystemdNotifier(path, watchdog_usec=0)
        quiet.bridge()
        assert quiet._bridge is None
        assert not quiet.ping()
        quiet.close()

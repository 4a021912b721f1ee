"""``circusctl listen --timeout``: give up when no connection is made, wait forever without.

A SUB socket's connect never fails by itself, so "cannot connect" means no ZeroMQ handshake
within the timeout. Each case runs circusctl as a real process with a deadline.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq
from circus.ctl import CircusConsumer
from circus.ctl.errors import DaemonUnreachable
from circus.ctl.testing import FakeDaemon, Publisher

DEADLINE = 30  # seconds a refused listen may take on a busy machine (it should take ~1)


@pytest.fixture
def closed_port() -> Iterator[str]:
    """A tcp endpoint on loopback that refuses connections: bound (so nobody else takes
    the port meanwhile) but not listening."""
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind(("127.0.0.1", 0))
    try:
        yield f"tcp://127.0.0.1:{held.getsockname()[1]}"
    finally:
        held.close()


@pytest.fixture
def stale_ipc(tmp_path: Path) -> str:
    """An ipc endpoint whose socket file exists but nobody listens on."""
    path = tmp_path / "stale.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))
    leftover.close()
    return f"ipc://{path}"


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str, float]:
    start = time.monotonic()
    out, err = proc.communicate(timeout=DEADLINE)
    return proc.returncode, out, err, time.monotonic() - start


@pytest.mark.slow
@pytest.mark.parametrize("where", ["argument", "pubsub-endpoint", "global-endpoint"])
def test_closed_tcp_port_gives_up(ctl_process: Callable, closed_port: str, where: str) -> None:
    args = {
        "argument": ["listen", "--timeout", "1", closed_port],
        "pubsub-endpoint": ["--timeout", "1", "listen", "--pubsub-endpoint", closed_port],
        "global-endpoint": ["--endpoint", closed_port, "--timeout", "1", "listen"],
    }[where]
    code, out, err, _ = _finish(ctl_process(*args))
    assert code == 1, (out, err)
    assert f"cannot connect to the pub/sub endpoint {closed_port} within 1s" in err, err
    assert "connection refused" in err
    assert "Traceback" not in err
    assert out == ""


@pytest.mark.parametrize("kind", ["missing", "stale"])
def test_ipc_path_nobody_listens_on_gives_up(
    ctl_process: Callable, tmp_path: Path, stale_ipc: str, kind: str
) -> None:
    endpoint = stale_ipc if kind == "stale" else f"ipc://{tmp_path}/missing.sock"
    code, _, err, _ = _finish(ctl_process("listen", "--timeout", "1", endpoint))
    assert code == 1, err
    assert f"cannot connect to the pub/sub endpoint {endpoint} within 1s" in err, err
    assert ("does not exist" if kind == "missing" else "nothing listens") in err


def test_json_error(ctl_process: Callable, closed_port: str) -> None:
    import json

    code, out, _, _ = _finish(ctl_process("--json", "listen", "--timeout", "1", closed_port))
    assert code == 1
    answer = json.loads(out)
    assert answer["status"] == "error" and answer["endpoint"] == closed_port


def test_control_socket_is_refused_at_once(
    ctl_process: Callable, fake_daemon: Callable[..., FakeDaemon]
) -> None:
    """A ROUTER (circusd's control endpoint) refuses a SUB's handshake: no need to wait."""
    daemon = fake_daemon()
    proc = ctl_process("listen", "--timeout", "20", "--pubsub-endpoint", daemon.endpoint)
    code, _, err, took = _finish(proc)
    assert code == 1, err
    assert "refused our ZeroMQ handshake" in err, err
    assert took < 15  # well before the 20 s timeout


@pytest.mark.slow
def test_connected_listen_waits_past_the_timeout(ctl_process: Callable, tmp_path: Path) -> None:
    """--timeout bounds the connection, not the wait for events (they may be rare)."""
    endpoint = f"ipc://{tmp_path}/xpub.sock"
    context = zmq.Context()
    xpub = context.socket(zmq.XPUB)  # tells us when listen's subscription arrives
    xpub.linger = 0
    try:
        xpub.bind(endpoint)
        proc = ctl_process("listen", "--timeout", "1", "--count", "1", endpoint)
        assert xpub.poll(DEADLINE * 1000), "listen never subscribed"
        assert xpub.recv() == b"\x01"  # subscribed to everything: connected
        time.sleep(2.5)  # the span checked (over twice the timeout), not a synchronisation
        assert proc.poll() is None, proc.communicate()
        xpub.send_multipart([b"watcher.web.spawn", b'{"process_pid": 7}'])
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        xpub.close()
        context.term()
    assert proc.returncode == 0, err
    assert out.startswith("watcher.web.spawn: ")


@pytest.mark.slow
def test_without_timeout_listen_keeps_waiting(ctl_process: Callable) -> None:
    """As Circus 0.19: nothing there to talk to is no reason to give up."""
    # A plain tcp listener: accept() tells us listen is trying; it never gets a handshake.
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(DEADLINE)
    try:
        proc = ctl_process("listen", f"tcp://127.0.0.1:{server.getsockname()[1]}")
        conn, _ = server.accept()
        conn.close()
        time.sleep(3)  # the span checked, not a synchronisation
        assert proc.poll() is None, proc.communicate()
    finally:
        server.close()
    proc.kill()
    proc.communicate(timeout=10)


def test_late_publisher_is_found_within_the_timeout(ctl_process: Callable, tmp_path: Path) -> None:
    """A daemon that comes up while listen is waiting is a connection made in time."""
    endpoint = f"ipc://{tmp_path}/late.sock"
    proc = ctl_process("listen", "--timeout", "60", "--count", "1", endpoint)
    time.sleep(1)  # listen is retrying by now (nothing to synchronise with)
    with Publisher(endpoint) as pub:
        deadline = time.monotonic() + DEADLINE
        while proc.poll() is None:
            assert time.monotonic() < deadline
            pub.publish("watcher.web.start", {})
            time.sleep(0.05)
    assert proc.returncode == 0, proc.communicate()


def test_consumer_connect_timeout(closed_port: str, publisher: Publisher) -> None:
    start = time.monotonic()
    with pytest.raises(DaemonUnreachable, match="connection refused"):
        CircusConsumer(None, closed_port, connect_timeout=0.5)
    assert time.monotonic() - start < DEADLINE
    with CircusConsumer(None, publisher.endpoint, connect_timeout=DEADLINE) as consumer:
        assert consumer.recv(timeout=0.01) is None  # connected, nothing published


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "0"], "--timeout must be positive"),
        (["tcp://127.0.0.1:1", "ipc:///x"], "one endpoint at most"),
        (["--pubsub-endpoint", "ipc:///y", "ipc:///x"], "give one"),
    ],
)
def test_bad_arguments(ctl_process: Callable, args: list[str], message: str) -> None:
    code, _, err, _ = _finish(ctl_process("listen", *args))
    assert code == 2 and message in err, err

"""The dashboard against a daemon that requires CURVE: a ROUTER and a PUB that are CURVE
servers (ZAP-checked keys), as circusd's are with ``curve_secret_key``; and circushttpd's
``--curve-key``/``--curve-server-key`` options and environment variables.

tests/test_httpd_e2e.py runs the same against a real CURVE-enabled circusd.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tornado", reason="the dashboard needs the web extra")
pytest.importorskip("prometheus_client", reason="the dashboard needs the web extra")

import zmq  # noqa: E402
from circus.ctl import protocol  # noqa: E402
from circus.ctl.keys import ClientCurve, generate, load_secret  # noqa: E402
from circus.ctl.web import Dashboard  # noqa: E402
from zmq.auth.thread import ThreadAuthenticator  # noqa: E402

REPLIES: dict[str, dict[str, Any]] = {
    "status": {"statuses": {"web": "active"}},
    "stats": {"infos": {"web": {"7": {"pid": 7, "wid": 1, "cpu": 1.0, "mem_info1": "1M"}}}},
    "dstats": {"info": {"pid": 1}},
    "logs": {"logs": []},
}


class CurveDaemon:
    """A fake daemon whose control (ROUTER) and pub/sub (PUB) sockets require CURVE.

    Keys in ``authorized`` (a directory of public ``.key`` files) are let in. The ROUTER
    answers :data:`REPLIES` from a thread; :meth:`publish` sends on the PUB.
    """

    def __init__(self, root: Path, server_secret: Path, authorized: Path) -> None:
        self.endpoint = f"ipc://{root}/ctrl.sock"
        self.pubsub = f"ipc://{root}/pub.sock"
        public, secret = load_secret(server_secret)
        self._context = zmq.Context()
        self._auth = ThreadAuthenticator(self._context)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(authorized))
        self._router = self._secured(zmq.ROUTER, public, secret, self.endpoint)
        self._pub = self._secured(zmq.PUB, public, secret, self.pubsub)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="curve-daemon", daemon=True)
        self._thread.start()

    def _secured(self, kind: int, public: bytes, secret: bytes, endpoint: str) -> zmq.Socket:
        sock = self._context.socket(kind)
        sock.linger = 0
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True
        sock.bind(endpoint)
        return sock

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._router.poll(50):
                continue
            identity, payload = self._router.recv_multipart()
            request = protocol.decode(payload)
            command = str(request.get("command"))
            if command == "globaloptions":
                fields: dict[str, Any] = {"options": {"pubsub_endpoint": self.pubsub}}
            else:
                fields = REPLIES.get(command, {})
            answer = protocol.ok_answer(request.get("id"), fields)
            self._router.send_multipart([identity, protocol.encode(answer)])

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Send one pub/sub message (from the test's thread)."""
        self._pub.send_multipart([topic.encode(), protocol.encode(payload)])

    def close(self) -> None:
        """Stop the thread and the authenticator; close every socket and the context."""
        self._stop.set()
        self._thread.join(10)
        self._router.close(0)
        self._pub.close(0)
        self._auth.stop()
        self._context.term()


class Keys:
    """The daemon's pair, an authorized client pair and a stranger's pair."""

    def __init__(self, root: Path) -> None:
        folder = root / "keys"
        self.server_public, self.server_secret = generate(folder, "server")
        self.client_public, self.client_secret = generate(folder, "client")
        self.stranger_public, self.stranger_secret = generate(folder, "stranger")
        self.authorized = root / "authorized"
        self.authorized.mkdir()
        (self.authorized / "client.key").write_bytes(self.client_public.read_bytes())


def _watch(tmp_path: Path, key: str | None, timeout: float = 1.0) -> list[dict[str, Any]]:
    """Run a Dashboard with the ``key`` pair (None: no CURVE) against a CurveDaemon; return
    the messages sent to the pages once an event got through (or an error is shown)."""
    keys = Keys(tmp_path)
    curve = None
    if key is not None:
        curve = ClientCurve.from_files(getattr(keys, f"{key}_secret"), keys.server_public)
    messages: list[dict[str, Any]] = []

    async def main() -> None:
        daemon = CurveDaemon(tmp_path, keys.server_secret, keys.authorized)
        dashboard = Dashboard([daemon.endpoint], interval=0.1, timeout=timeout, curve=curve)
        dashboard.hub.add(lambda text: messages.append(json.loads(text)))
        try:
            dashboard.start()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if any(m["type"] == "event" for m in messages):
                    return
                if any(m["type"] == "snapshot" and m["error"] for m in messages):
                    return
                if dashboard.links[0].state.connected:  # until the subscription is up
                    daemon.publish("watcher.web.spawn", {"process_pid": 8, "time": 1.0})
                await asyncio.sleep(0.05)
            raise AssertionError(f"neither an event nor an error: {messages}")
        finally:
            await dashboard.close()
            daemon.close()

    asyncio.run(main())
    return messages


def test_dashboard_with_an_authorized_key_polls_and_follows_events(tmp_path: Path) -> None:
    messages = _watch(tmp_path, "client")
    snapshots = [m for m in messages if m["type"] == "snapshot"]
    assert snapshots and snapshots[-1]["connected"], messages
    assert [w["name"] for w in snapshots[-1]["watchers"]] == ["web"]
    event = next(m for m in messages if m["type"] == "event")
    assert event["topic"] == "watcher.web.spawn"  # the pub/sub socket spoke CURVE too


def test_dashboard_without_a_key_shows_why_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    messages = _watch(tmp_path, None, timeout=30)
    assert time.monotonic() - started < 15  # the failed handshake, not the 30 s poll timeout
    (snapshot,) = [m for m in messages if m["type"] == "snapshot"]
    assert not snapshot["connected"] and not snapshot["watchers"]
    assert "require CURVE" in snapshot["error"] and "--curve-key" in snapshot["error"]


def test_dashboard_with_an_unknown_key_says_it_was_refused(tmp_path: Path) -> None:
    started = time.monotonic()
    messages = _watch(tmp_path, "stranger", timeout=30)
    assert time.monotonic() - started < 15
    (snapshot,) = [m for m in messages if m["type"] == "snapshot"]
    assert not snapshot["connected"]
    assert "refused our CURVE key" in snapshot["error"]


def test_circushttpd_refuses_half_or_bad_curve_options(tmp_path: Path) -> None:
    keys = Keys(tmp_path)

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "circus.ctl.web", "--port", "0", *args],
            capture_output=True,
            text=True,
            timeout=30,
            env={"PATH": "/usr/bin:/bin", **(env or {})},
        )

    half = run("--curve-key", str(keys.client_secret))
    assert half.returncode == 1
    assert "CURVE needs both" in half.stderr and "--curve-server-key" in half.stderr
    # the environment variables are read as circusctl reads them; a public key given as
    # the secret one is named
    wrong = run(
        env={
            "CIRCUSCTL_CURVE_KEY": str(keys.client_public),
            "CIRCUSCTL_CURVE_SERVER_KEY": str(keys.server_public),
        }
    )
    assert wrong.returncode == 1
    assert str(keys.client_public) in wrong.stderr and "no secret key" in wrong.stderr
    missing = run("--curve-key", str(tmp_path / "nope"), "--curve-server-key", "x")
    assert missing.returncode == 1 and "nope" in missing.stderr

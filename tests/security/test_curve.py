"""CURVE on circusd's channels: keys in [circus], used by CircusClient, consumers, circusctl
and plugins; a client without an authorized key gets nothing; exposed endpoints refused
without CURVE unless ``insecure_bind = true``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from circus.arbiter import CurveSettings
from circus.arbiter._curve import check_exposure, is_loopback
from circus.arbiter._errors import ArbiterError
from circus.ctl import CircusClient, CircusConsumer
from circus.ctl.errors import CallTimeout, DaemonUnreachable
from circus.ctl.keys import generate

CIRCUSCTL = str(Path(sys.executable).with_name("circusctl"))
CIRCUSD = str(Path(sys.executable).with_name("circusd"))


class Keys:
    """A server pair, an authorized client pair and an unknown client pair."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "keys"
        self.server_public, self.server_secret = generate(self.dir, "server")
        self.client_public, self.client_secret = generate(self.dir, "client")
        self.stranger_public, self.stranger_secret = generate(self.dir, "stranger")
        self.authorized = root / "authorized"
        self.authorized.mkdir()
        (self.authorized / "client.key").write_bytes(self.client_public.read_bytes())

    def circus_section(self) -> str:
        return (
            f"[circus]\ncurve_secret_key = {self.server_secret}\n"
            f"curve_public_key = {self.server_public}\n"
            f"curve_authorized_keys = {self.authorized}\n"
        )

    def client(self, endpoint: str, timeout: float = 5.0, **kw: Any) -> CircusClient:
        return CircusClient(
            endpoint,
            timeout=timeout,
            curve_key=self.client_secret,
            curve_server_key=self.server_public,
            **kw,
        )


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


WATCHER = "\n[watcher:w]\ncmd = {py} -c 'import time; time.sleep(300)'\n"


def curve_daemon(circusd: Any, keys: Keys, e2e: Any, extra: str = "") -> Any:
    daemon = circusd(keys.circus_section() + extra + WATCHER.format(py=e2e.PY), start=False)
    daemon.start(wait=False)
    with keys.client(daemon.endpoint, timeout=1) as client:
        e2e.wait(lambda: _answers(client), 20, "circusd to answer over CURVE")
    return daemon


def _answers(client: CircusClient) -> bool:
    try:
        return client.call("numwatchers")["status"] == "ok"
    except (CallTimeout, DaemonUnreachable):
        return False


def test_keyed_client_is_served_others_get_nothing(
    circusd: Any, keys: Keys, e2e: Any, tmp_path: Path
) -> None:
    daemon = curve_daemon(circusd, keys, e2e)
    with keys.client(daemon.endpoint) as client:
        assert client.call("list")["watchers"] == ["w"]
    with CircusClient(daemon.endpoint, timeout=1) as plain:
        with pytest.raises((CallTimeout, DaemonUnreachable)):
            plain.call("list")
    with CircusClient(
        daemon.endpoint,
        timeout=1,
        curve_key=keys.stranger_secret,
        curve_server_key=keys.server_public,
    ) as stranger:
        with pytest.raises(DaemonUnreachable, match="refused our CURVE key"):
            stranger.call("list")
    # revoking a key: delete its file; new connections with it are refused
    (keys.authorized / "client.key").unlink()
    with keys.client(daemon.endpoint, timeout=1) as revoked:
        with pytest.raises(DaemonUnreachable, match="refused our CURVE key"):
            revoked.call("list")
    # circusd logs the refusal on its own time: the client may hear of it first
    e2e.wait(lambda: "refused a client" in daemon.output(), 20, "the refusal in circusd's log")


@pytest.mark.slow
def test_pubsub_only_for_keyed_subscribers(circusd: Any, keys: Keys, e2e: Any) -> None:
    daemon = curve_daemon(circusd, keys, e2e)
    keyed = CircusConsumer(
        "watcher.",
        daemon.pubsub,
        timeout=0.3,
        curve_key=keys.client_secret,
        curve_server_key=keys.server_public,
    )
    plain = CircusConsumer("watcher.", daemon.pubsub, timeout=0.3)
    with keyed, plain, keys.client(daemon.endpoint) as client:

        def event_seen() -> bool:
            client.call("incr", name="w", waiting=True)
            client.call("decr", name="w", waiting=True)
            return keyed.recv(timeout=0.5) is not None

        e2e.wait(event_seen, 20, "an event on the CURVE pub/sub channel")
        client.call("incr", name="w", waiting=True)
        assert plain.recv(timeout=1.0) is None


@pytest.mark.slow
def test_circusctl_with_flags_and_environment(circusd: Any, keys: Keys, e2e: Any) -> None:
    daemon = curve_daemon(circusd, keys, e2e)
    flags = [
        CIRCUSCTL,
        "--endpoint",
        daemon.endpoint,
        "--timeout",
        "5",
        "--curve-key",
        str(keys.client_secret),
        "--curve-server-key",
        str(keys.server_public),
        "list",
    ]
    result = subprocess.run(flags, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "w", result
    env = dict(
        os.environ,
        CIRCUSCTL_ENDPOINT=daemon.endpoint,
        CIRCUSCTL_CURVE_KEY=str(keys.client_secret),
        CIRCUSCTL_CURVE_SERVER_KEY=str(keys.server_public),
    )
    result = subprocess.run(
        [CIRCUSCTL, "status"], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0 and "w: active" in result.stdout, result
    result = subprocess.run(
        [CIRCUSCTL, "--endpoint", daemon.endpoint, "--timeout", "1", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "CURVE" in result.stderr, result


PLUGIN = """
from circus.plugins import CircusPlugin

class Recorder(CircusPlugin):
    name = "recorder"

    def handle_init(self):
        pass

    def handle_recv(self, data):
        topic, msg = data
        with open(self.config["out"], "a") as f:
            f.write(topic.decode() + "\\n")
            f.write(repr(self.call("numwatchers")) + "\\n")
"""


def test_plugins_work_under_curve(
    circusd: Any, keys: Keys, e2e: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "curve_recorder.py").write_text(PLUGIN)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    out = tmp_path / "plugin.out"
    daemon = curve_daemon(
        circusd,
        keys,
        e2e,
        extra=f"\n[plugin:rec]\nuse = curve_recorder.Recorder\nout = {out}\n",
    )
    with keys.client(daemon.endpoint) as client:

        def recorded() -> bool:
            client.call("incr", name="w", waiting=True)
            # w and the plugin's own watcher, plugin:rec
            return out.exists() and "'numwatchers': 2" in out.read_text()

        e2e.wait(recorded, 20, "the plugin to receive an event and call circusd")
    assert "watcher.w." in out.read_text()


def test_exposed_endpoint_refused_without_curve(tmp_path: Path) -> None:
    config = tmp_path / "circus.ini"
    # refused before anything is bound: no port is opened
    config.write_text(
        "[circus]\nendpoint = tcp://0.0.0.0:0\n"
        f"pubsub_endpoint = ipc://{tmp_path}/pub\n"
        f"\n[watcher:w]\ncmd = {sys.executable} -c 'import time; time.sleep(300)'\n"
    )
    result = subprocess.run(
        [CIRCUSD, str(config)], capture_output=True, text=True, timeout=20, cwd=tmp_path
    )
    assert result.returncode == 1
    assert "refusing to bind tcp://0.0.0.0:0 without authentication" in result.stderr
    assert "insecure_bind" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("ipc:///tmp/x", True),
        ("inproc://x", True),
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.3.2.1:1", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("tcp://lo:5555", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://192.168.1.10:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://[::]:5555", False),
        ("tcp://example.com:5555", False),
        ("pgm://eth0;239.192.1.1:5555", False),
    ],
)
def test_is_loopback(endpoint: str, loopback: bool) -> None:
    assert is_loopback(endpoint) is loopback


def test_exposure_rules(keys: Keys) -> None:
    exposed = ["ipc:///tmp/a", "tcp://0.0.0.0:5556"]
    with pytest.raises(ArbiterError, match="tcp://0.0.0.0:5556"):
        check_exposure(exposed, None)
    check_exposure(exposed, CurveSettings(insecure_bind=True))
    settings = CurveSettings.from_extra(
        {"curve_secret_key": str(keys.server_secret), "curve_authorized_keys": "authorized"},
        str(keys.authorized.parent),
    )
    assert settings.enabled and settings.authorized_keys == str(keys.authorized)
    check_exposure(exposed, settings)
    check_exposure(["tcp://127.0.0.1:5555", None], None)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"insecure_bind": "maybe"}, "insecure_bind = 'maybe'"),
        ({"curve_authorized_keys": "/x"}, "need curve_secret_key"),
        ({"curve_secret_key": "/x"}, "needs curve_authorized_keys"),
    ],
)
def test_bad_settings(extra: dict[str, str], message: str) -> None:
    with pytest.raises(ArbiterError, match=message):
        CurveSettings.from_extra(extra)


def test_bad_key_files_name_the_file(tmp_path: Path, keys: Keys) -> None:
    from circus.arbiter._curve import CurveServer

    with pytest.raises(ArbiterError, match="holds no secret key"):
        CurveServer(CurveSettings.make(str(keys.server_public), None, str(keys.authorized)))
    with pytest.raises(ArbiterError, match="is not the public half"):
        CurveServer(
            CurveSettings.make(
                str(keys.server_secret), str(keys.client_public), str(keys.authorized)
            )
        )
    with pytest.raises(ArbiterError, match="not a directory"):
        CurveServer(CurveSettings.make(str(keys.server_secret), None, str(tmp_path / "none")))


@pytest.mark.slow
def test_circus_top_with_curve(circusd: Any, keys: Keys, e2e: Any) -> None:
    daemon = curve_daemon(circusd, keys, e2e)
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("circus-top")),
            "--ctl-endpoint",
            daemon.endpoint,
            "--endpoint",
            f"ipc://{daemon.dir}/no-stats",
            "--wait",
            "0.5",
            "--curve-key",
            str(keys.client_secret),
            "--curve-server-key",
            str(keys.server_public),
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result
    assert "w" in result.stdout


def test_python_api_curve_settings(keys: Keys, tmp_path: Path) -> None:
    import asyncio

    from circus.arbiter import Arbiter
    from circus.ctl import AsyncCircusClient

    async def main() -> None:
        arbiter = Arbiter(
            [],
            endpoint=f"ipc://{tmp_path}/api-ctl",
            pubsub_endpoint=f"ipc://{tmp_path}/api-pub",
            curve=CurveSettings.make(str(keys.server_secret), None, str(keys.authorized)),
        )
        await arbiter.start_async()
        try:
            async with AsyncCircusClient(
                arbiter.endpoint,
                timeout=5,
                curve_key=keys.client_secret,
                curve_server_key=keys.server_public,
            ) as client:
                assert (await client.call("numwatchers"))["numwatchers"] == 0
            async with AsyncCircusClient(arbiter.endpoint, timeout=0.5) as plain:
                with pytest.raises((CallTimeout, DaemonUnreachable)):
                    await plain.call("numwatchers")
        finally:
            await arbiter.stop()

    asyncio.run(main())

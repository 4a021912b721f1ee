"""``reloadconfig``/SIGHUP and CURVE: a reload applies the new config's security settings
fully (new endpoints bound with the new CURVE settings, key changes applied) or refuses with
an error answer and leaves the running daemon as it was."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from circus.ctl import CircusClient
from circus.ctl.errors import CallError, CallTimeout, DaemonUnreachable
from circus.ctl.keys import generate

WATCHER = "\n[watcher:w]\ncmd = {py} -c 'import time; time.sleep(300)'\n"


class Keys:
    """Two server pairs, an authorized client pair, and the authorized-keys directory."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "keys"
        self.server_public, self.server_secret = generate(self.dir, "server")
        self.other_public, self.other_secret = generate(self.dir, "other")
        self.client_public, self.client_secret = generate(self.dir, "client")
        self.authorized = root / "authorized"
        self.authorized.mkdir()
        (self.authorized / "client.key").write_bytes(self.client_public.read_bytes())

    def section(self, secret: Path | None = None) -> str:
        return (
            f"curve_secret_key = {secret or self.server_secret}\n"
            f"curve_authorized_keys = {self.authorized}\n"
        )

    def client(self, endpoint: str, server: Path | None = None, timeout: float = 5.0) -> Any:
        return CircusClient(
            endpoint,
            timeout=timeout,
            curve_key=self.client_secret,
            curve_server_key=server or self.server_public,
        )


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


def _served(client: CircusClient) -> bool:
    try:
        return client.call("numwatchers")["status"] == "ok"
    except (CallTimeout, DaemonUnreachable):
        return False


def _keyed_served(keys: Keys, endpoint: str, server: Path | None = None) -> bool:
    with keys.client(endpoint, server=server, timeout=1) as client:
        return _served(client)


def _refused(endpoint: str) -> None:
    """A client without keys gets nothing from ``endpoint``."""
    with CircusClient(endpoint, timeout=1) as plain:
        with pytest.raises((CallTimeout, DaemonUnreachable)):
            plain.call("list")


def _config(daemon: Any, endpoint: str, circus: str, e2e: Any) -> None:
    daemon.config.write_text(
        f"[circus]\nendpoint = {endpoint}\npubsub_endpoint = {daemon.pubsub}\n"
        f"loglevel = debug\n{circus}" + WATCHER.format(py=e2e.PY)
    )


def _curve_daemon(circusd: Any, keys: Keys, e2e: Any) -> Any:
    daemon = circusd(keys.section() + WATCHER.format(py=e2e.PY), start=False)
    daemon.start(wait=False)
    with keys.client(daemon.endpoint, timeout=1) as client:
        e2e.wait(lambda: _served(client), 20, "circusd to answer over CURVE")
    return daemon


def test_moved_endpoint_of_a_curve_daemon_keeps_curve(
    circusd: Any, keys: Keys, e2e: Any, tmp_path: Path
) -> None:
    daemon = _curve_daemon(circusd, keys, e2e)
    moved = f"ipc://{tmp_path}/ctl2"
    _config(daemon, moved, keys.section(), e2e)
    with keys.client(daemon.endpoint) as client:
        assert client.call("reloadconfig", waiting=True)["status"] == "ok"
    with keys.client(moved) as client:
        e2e.wait(lambda: _served(client), 20, "the moved endpoint to answer over CURVE")
        assert client.call("list")["watchers"] == ["w"]
    _refused(moved)


def test_sighup_moved_endpoint_keeps_curve(
    circusd: Any, keys: Keys, e2e: Any, tmp_path: Path
) -> None:
    daemon = _curve_daemon(circusd, keys, e2e)
    moved = f"ipc://{tmp_path}/ctl-hup"
    _config(daemon, moved, keys.section(), e2e)
    daemon.signal(signal.SIGHUP)
    with keys.client(moved, timeout=1) as client:
        e2e.wait(lambda: _served(client), 20, "the moved endpoint to answer over CURVE")
    _refused(moved)


def test_exposed_endpoint_refused_on_reload(circusd: Any, e2e: Any, tmp_path: Path) -> None:
    daemon = circusd(WATCHER.format(py=e2e.PY))
    before = daemon.pids("w")
    # port 0: were it bound, the kernel would pick a free port; it must not be bound at all
    _config(daemon, "tcp://0.0.0.0:0", "", e2e)
    for waiting in (True, False):  # refused in the answer even to a client that does not wait
        answer = daemon.call("reloadconfig", waiting=waiting)
        assert answer["status"] == "error", answer
        assert "refusing to bind tcp://0.0.0.0:0 without authentication" in answer["reason"]
    # nothing half-applied: same endpoint, same watcher, same processes
    options = daemon.call("globaloptions")["options"]
    assert options["endpoint"] == daemon.endpoint
    assert daemon.pids("w") == before
    assert "0.0.0.0" not in "".join(c.laddr.ip for c in _tcp_listeners(daemon.proc.pid))


def _tcp_listeners(pid: int) -> list[Any]:
    import psutil

    return [c for c in psutil.Process(pid).net_connections("tcp") if c.status == "LISTEN"]


def test_turning_curve_on_by_reload(circusd: Any, keys: Keys, e2e: Any, tmp_path: Path) -> None:
    daemon = circusd(WATCHER.format(py=e2e.PY))
    _config(daemon, daemon.endpoint, keys.section(), e2e)
    assert daemon.call("reloadconfig", waiting=True)["status"] == "ok"
    daemon.close_client()
    with keys.client(daemon.endpoint, timeout=1) as client:
        e2e.wait(lambda: _served(client), 20, "the endpoint to answer over CURVE")
    _refused(daemon.endpoint)


def test_key_pair_change_applied(circusd: Any, keys: Keys, e2e: Any, tmp_path: Path) -> None:
    daemon = _curve_daemon(circusd, keys, e2e)
    _config(daemon, daemon.endpoint, keys.section(keys.other_secret), e2e)
    with keys.client(daemon.endpoint) as client:
        assert client.call("reloadconfig", waiting=True)["status"] == "ok"
    with keys.client(daemon.endpoint, server=keys.other_public, timeout=1) as client:
        e2e.wait(lambda: _served(client), 20, "the endpoint to answer with the new key pair")
    # the old server key no longer completes a handshake
    with keys.client(daemon.endpoint, timeout=1) as old:
        with pytest.raises((CallTimeout, DaemonUnreachable)):
            old.call("list")


def test_bad_curve_reload_leaves_daemon_as_it_was(
    circusd: Any, keys: Keys, e2e: Any, tmp_path: Path
) -> None:
    daemon = _curve_daemon(circusd, keys, e2e)
    moved = f"ipc://{tmp_path}/ctl3"
    _config(daemon, moved, keys.section(tmp_path / "missing.key_secret"), e2e)
    with keys.client(daemon.endpoint) as client:
        with pytest.raises(CallError, match="missing.key_secret"):
            client.call("reloadconfig", waiting=True)
        assert client.call("list")["watchers"] == ["w"]
    assert not Path(moved[len("ipc://") :]).exists()
    _refused(daemon.endpoint)


def test_authorized_keys_change_applied(circusd: Any, keys: Keys, e2e: Any, tmp_path: Path) -> None:
    daemon = _curve_daemon(circusd, keys, e2e)
    newcomer_public, newcomer_secret = generate(keys.dir, "newcomer")
    others = tmp_path / "others"
    others.mkdir()
    (others / "newcomer.key").write_bytes(newcomer_public.read_bytes())
    _config(
        daemon,
        daemon.endpoint,
        f"curve_secret_key = {keys.server_secret}\ncurve_authorized_keys = {others}\n",
        e2e,
    )
    with keys.client(daemon.endpoint) as client:
        assert client.call("reloadconfig", waiting=True)["status"] == "ok"
    with CircusClient(
        daemon.endpoint,
        timeout=5,
        curve_key=newcomer_secret,
        curve_server_key=keys.server_public,
    ) as newcomer:
        assert newcomer.call("list")["watchers"] == ["w"]
    with keys.client(daemon.endpoint, timeout=5) as dropped:
        with pytest.raises(DaemonUnreachable, match="refused our CURVE key"):
            dropped.call("list")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_curve_on_for_fixed_tcp_endpoints_in_place(
    circusd: Any, keys: Keys, e2e: Any, tmp_path: Path
) -> None:
    from circus.ctl import CircusConsumer

    daemon = circusd(start=False)
    daemon.endpoint = f"tcp://127.0.0.1:{_free_port()}"
    daemon.pubsub = f"tcp://127.0.0.1:{_free_port()}"
    # upstream's open access: a plain tcp peer may reloadconfig (by default it may not)
    _config(daemon, daemon.endpoint, "unauthenticated_access = full\n", e2e)
    daemon.start(wait=False)
    with CircusClient(daemon.endpoint, timeout=1) as plain:
        e2e.wait(lambda: _served(plain), 20, "circusd to answer on tcp")
        _config(daemon, daemon.endpoint, keys.section(), e2e)
        # answered through the old socket, which then gives the address to the new one
        assert plain.call("reloadconfig", waiting=True)["status"] == "ok"
    # a fresh client each try: one that met the old plain socket during the handover saw a
    # refused handshake
    e2e.wait(lambda: _keyed_served(keys, daemon.endpoint), 20, "the address to answer over CURVE")
    with keys.client(daemon.endpoint, timeout=5) as client:
        keyed = CircusConsumer(
            "watcher.",
            daemon.pubsub,
            timeout=0.3,
            curve_key=keys.client_secret,
            curve_server_key=keys.server_public,
        )
        with keyed:

            def event_seen() -> bool:
                client.call("incr", name="w", waiting=True)
                client.call("decr", name="w", waiting=True)
                return keyed.recv(timeout=0.5) is not None

            e2e.wait(event_seen, 20, "an event on the re-keyed pub/sub address")
    _refused(daemon.endpoint)


def test_refused_key_is_reported_at_once_and_truly(
    circusd: Any, keys: Keys, e2e: Any, tmp_path: Path
) -> None:
    import time

    daemon = _curve_daemon(circusd, keys, e2e)
    (keys.authorized / "client.key").unlink()
    with keys.client(daemon.endpoint, timeout=30) as refused:
        started = time.monotonic()
        with pytest.raises(DaemonUnreachable) as info:
            refused.call("list")
        elapsed = time.monotonic() - started
    message = str(info.value)
    assert "refused our CURVE key" in message and daemon.endpoint in message
    assert "waited" not in message, message
    assert elapsed < 20, elapsed


def test_failed_bind_leaves_daemon_as_it_was(circusd: Any, e2e: Any, tmp_path: Path) -> None:
    daemon = circusd(WATCHER.format(py=e2e.PY))
    moved_pub = tmp_path / "pub2"
    daemon.config.write_text(
        f"[circus]\nendpoint = ipc://{tmp_path}/no-such-dir/ctl\n"
        f"pubsub_endpoint = ipc://{moved_pub}\n" + WATCHER.format(py=e2e.PY)
    )
    answer = daemon.call("reloadconfig", waiting=True)
    assert answer["status"] == "error" and "cannot bind" in answer["reason"], answer
    options = daemon.call("globaloptions")["options"]
    assert (options["endpoint"], options["pubsub_endpoint"]) == (daemon.endpoint, daemon.pubsub)
    assert not moved_pub.exists()  # the new pub/sub socket, bound first, was closed again
    assert Path(daemon.pubsub[len("ipc://") :]).exists()


def test_turning_curve_off_by_reload(circusd: Any, keys: Keys, e2e: Any) -> None:
    daemon = _curve_daemon(circusd, keys, e2e)
    _config(daemon, daemon.endpoint, "", e2e)
    with keys.client(daemon.endpoint) as client:
        assert client.call("reloadconfig", waiting=True)["status"] == "ok"
    with CircusClient(daemon.endpoint, timeout=1) as plain:
        e2e.wait(lambda: _served(plain), 20, "the endpoint to answer without CURVE")
        assert plain.call("list")["watchers"] == ["w"]


def test_key_pair_replaced_under_the_same_file_names(
    circusd: Any, keys: Keys, e2e: Any, tmp_path: Path
) -> None:
    daemon = _curve_daemon(circusd, keys, e2e)
    # same config text, new key pair in the files it names
    keys.server_secret.write_bytes(keys.other_secret.read_bytes())
    with keys.client(daemon.endpoint) as client:
        assert client.call("reloadconfig", waiting=True)["status"] == "ok"
    with keys.client(daemon.endpoint, server=keys.other_public, timeout=1) as client:
        e2e.wait(lambda: _served(client), 20, "the endpoint to answer with the new key pair")


def test_curve_switch_undo_restores_the_running_server(keys: Keys, tmp_path: Path) -> None:
    import zmq
    from circus.arbiter import CurveSettings
    from circus.arbiter._curve import CurveServer, CurveSwitch, client_curve_for

    endpoint = f"ipc://{tmp_path}/switch"
    context = zmq.Context()
    current = CurveServer(CurveSettings.make(str(keys.server_secret), None, str(keys.authorized)))
    current.start(context, [endpoint])
    try:
        others = tmp_path / "others"
        others.mkdir()
        same_keys = CurveSwitch(
            {"curve_secret_key": str(keys.server_secret), "curve_authorized_keys": str(others)},
            [endpoint],
            current,
            None,
            context,
        )
        assert not same_keys.rekey  # a new authorized-keys directory needs no re-bind
        switch = CurveSwitch(
            {"curve_secret_key": str(keys.other_secret), "curve_authorized_keys": str(others)},
            [endpoint],
            current,
            None,
            context,
        )
        assert switch.rekey
        switch.stage()
        staged = client_curve_for(endpoint)
        assert staged is not None and staged.server != current.public
        assert not current.running  # the authenticator moved to the new server
        switch.undo()
        restored = client_curve_for(endpoint)
        assert restored is not None and restored.server == current.public
        assert current.running
    finally:
        current.stop()
        context.term()


def test_undo_gives_a_taken_over_ipc_path_back(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new key pair re-binds pub/sub (its ipc path taken over), then the control bind
    fails: the old pub/sub socket gets its path back, with its old key pair."""
    import asyncio

    import zmq
    import zmq.asyncio
    from circus.arbiter import Arbiter, CurveSettings
    from circus.arbiter._controller import Controller
    from circus.arbiter._errors import ArbiterError
    from circus.arbiter.config import DaemonConfig
    from circus.ctl import AsyncCircusClient
    from circus.ctl.keys import ClientCurve

    ctl, pub = f"ipc://{tmp_path}/u-ctl", f"ipc://{tmp_path}/u-pub"

    async def main() -> None:
        arbiter = Arbiter(
            [],
            endpoint=ctl,
            pubsub_endpoint=pub,
            curve=CurveSettings.make(str(keys.server_secret), None, str(keys.authorized)),
        )
        await arbiter.start_async()
        context = zmq.asyncio.Context()
        sub = context.socket(zmq.SUB)
        sub.linger = 0
        try:
            with monkeypatch.context() as patch:

                def refuse(self: Controller, owner: str | None = None) -> None:
                    raise ArbiterError("cannot bind (test)")

                patch.setattr(Controller, "bind", refuse)
                other = {
                    "curve_secret_key": str(keys.other_secret),
                    "curve_authorized_keys": str(keys.authorized),
                }
                daemon = DaemonConfig(endpoint=ctl, pubsub_endpoint=pub, loglevel="")
                with pytest.raises(ArbiterError, match="cannot bind"):
                    await arbiter.apply_daemon_options(daemon, curve=other)
            assert arbiter.pubsub_endpoint == pub
            # a new subscriber with the OLD server key reaches the old socket on its path
            ClientCurve.from_files(keys.client_secret, keys.server_public).apply(sub)
            sub.setsockopt(zmq.SUBSCRIBE, b"watcher.")
            sub.connect(pub)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while not await sub.poll(100):
                assert loop.time() < deadline, "no event from the old pub/sub socket"
                arbiter.publish_event("probe", "ping")
            async with AsyncCircusClient(
                ctl, timeout=5, curve_key=keys.client_secret, curve_server_key=keys.server_public
            ) as client:
                assert (await client.call("numwatchers"))["numwatchers"] == 0
        finally:
            sub.close(linger=0)
            context.term()
            await arbiter.stop()

    asyncio.run(main())


def test_check_security_refuses_without_changing_anything(keys: Keys, tmp_path: Path) -> None:
    from circus.arbiter import Arbiter
    from circus.arbiter._errors import CommandError
    from circus.arbiter._reload import check_security

    config = tmp_path / "check.ini"
    arbiter = Arbiter([], config_file=str(config))
    try:
        config.write_text("[circus]\nendpoint = tcp://0.0.0.0:5555\n")
        with pytest.raises(CommandError, match="refusing to bind tcp://0.0.0.0:5555"):
            check_security(arbiter)
        config.write_text(f"[circus]\nendpoint = tcp://0.0.0.0:5555\n{keys.section()}")
        check_security(arbiter)  # CURVE on: accepted
        config.write_text(f"[circus]\n{keys.section(tmp_path / 'gone.key_secret')}")
        with pytest.raises(CommandError, match="gone.key_secret"):
            check_security(arbiter)
    finally:
        arbiter.context.term()  # never started: its own context is still open


def test_dashboard_gets_the_new_key_pair(circusd: Any, keys: Keys, e2e: Any) -> None:
    pytest.importorskip("tornado")
    pytest.importorskip("prometheus_client")
    httpd = "httpd = true\nhttpd_host = 127.0.0.1\nhttpd_port = 0\n"
    daemon = circusd(keys.section() + httpd + WATCHER.format(py=e2e.PY), start=False)
    daemon.start(wait=False)
    e2e.wait(lambda: _keyed_served(keys, daemon.endpoint), 20, "circusd to answer over CURVE")
    with keys.client(daemon.endpoint) as client:
        before = client.call("options", name="circushttpd")["options"]["args"]
        assert str(keys.server_secret) in before
        _config(daemon, daemon.endpoint, keys.section(keys.other_secret) + httpd, e2e)
        assert client.call("reloadconfig", waiting=True)["status"] == "ok"
    with keys.client(daemon.endpoint, server=keys.other_public) as client:
        e2e.wait(lambda: _served(client), 20, "circusd to answer with the new key pair")
        after = client.call("options", name="circushttpd")["options"]["args"]
        assert str(keys.other_secret) in after and str(keys.server_secret) not in after
        assert e2e.wait(lambda: client.call("list", name="circushttpd")["pids"], 20)

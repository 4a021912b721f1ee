"""Login: off on loopback by default, a token required anywhere else."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tornado", reason="the dashboard needs the web extra")
pytest.importorskip("prometheus_client", reason="the dashboard needs the web extra")

from circus.ctl.web import AuthPolicy, Dashboard, InsecureBindError, main  # noqa: E402
from circus.ctl.web.testing import close_websocket, serve  # noqa: E402
from tornado.httpclient import HTTPRequest  # noqa: E402
from tornado.simple_httpclient import SimpleAsyncHTTPClient  # noqa: E402
from tornado.websocket import websocket_connect  # noqa: E402

TOKEN = "s3cret-token-for-tests"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.0.2.10", False),
    ],
)
def test_only_loopback_may_go_without_a_token(host: str, loopback: bool) -> None:
    policy = AuthPolicy()
    if loopback:
        policy.check_bind(host)
    else:
        with pytest.raises(InsecureBindError, match="without a login"):
            policy.check_bind(host)
    AuthPolicy(TOKEN).check_bind(host)  # with a token, anywhere is fine


def test_circushttpd_refuses_to_start_off_loopback_without_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CIRCUSHTTPD_TOKEN", raising=False)
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "refusing to serve the dashboard on '0.0.0.0' without a login" in err
    assert "--token-file" in err and "CIRCUSHTTPD_TOKEN" in err


def test_an_empty_or_missing_token_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    assert main(["--token-file", str(empty), "--port", "0"]) == 1
    assert f"the token file {empty} is empty" in capsys.readouterr().err
    assert main(["--token-file", str(tmp_path / "nope"), "--port", "0"]) == 1
    assert "cannot read the token file" in capsys.readouterr().err


def test_with_a_token_every_door_asks_for_it(tmp_path: Path) -> None:
    async def scenario(url: str, http: SimpleAsyncHTTPClient) -> None:
        async def fetch(path: str, **kwargs: Any):
            return await http.fetch(url + path, raise_error=False, follow_redirects=False, **kwargs)

        page = await fetch("/")
        assert page.code == 302 and page.headers["Location"] == "/login"
        for path in ("/api/state", "/metrics", "/api/daemons/0/logs"):
            assert (await fetch(path)).code == 401, path
        call = await fetch(
            "/api/daemons/0/call",
            method="POST",
            body=json.dumps({"command": "incr", "properties": {"name": "x"}}),
            headers={"Content-Type": "application/json"},
        )
        assert call.code == 401
        ws_url = url.replace("http://", "ws://") + "/ws"
        refused = await fetch("/ws", headers=upgrade_headers())
        assert refused.code == 401

        wrong = await fetch("/login", method="POST", body="token=guess")
        assert wrong.code == 403 and b"wrong token" in wrong.body
        right = await fetch("/login", method="POST", body=f"token={TOKEN}")
        assert right.code == 302 and right.headers["Location"] == "/"
        cookie = right.headers["Set-Cookie"].split(";")[0]
        assert "HttpOnly" in right.headers["Set-Cookie"]
        assert (await fetch("/", headers={"Cookie": cookie})).code == 200
        assert (await fetch("/api/state", headers={"Cookie": cookie})).code == 200
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await fetch("/metrics", headers=bearer)).code == 200
        bad = {"Authorization": "Bearer nope"}
        assert (await fetch("/metrics", headers=bad)).code == 401
        ws = await websocket_connect(HTTPRequest(ws_url, headers={"Cookie": cookie}))
        try:
            assert json.loads(await ws.read_message())["type"] == "hello"
        finally:
            await close_websocket(ws)

    async def run() -> None:
        dashboard = Dashboard(
            [f"ipc://{tmp_path}/absent.sock"], interval=0.2, timeout=0.3, auth=AuthPolicy(TOKEN)
        )
        http = SimpleAsyncHTTPClient(force_instance=True)
        try:
            async with serve(dashboard) as url:
                await asyncio.wait_for(scenario(url, http), 30)
        finally:
            http.close()

    asyncio.run(run())


def test_token_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    from circus.ctl.web._auth import read_token

    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\nignored\n")
    assert read_token(str(token_file), {}) == TOKEN
    assert read_token(None, {"CIRCUSHTTPD_TOKEN": "from-the-environment"}) == "from-the-environment"
    assert read_token(None, {}) is None


def upgrade_headers(**more: str) -> dict[str, str]:
    """Headers of a websocket handshake, sent as a plain request so a refusal can be read
    (and the connection is closed by our own client)."""
    return {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        **more,
    }


def test_the_websocket_refuses_other_origins(tmp_path: Path) -> None:
    async def run() -> None:
        dashboard = Dashboard([f"ipc://{tmp_path}/absent.sock"], interval=0.2, timeout=0.3)
        http = SimpleAsyncHTTPClient(force_instance=True)
        try:
            async with serve(dashboard) as url:
                refused = await http.fetch(
                    url + "/ws",
                    headers=upgrade_headers(Origin="http://evil.example"),
                    raise_error=False,
                )
                assert refused.code == 403
                ws_url = url.replace("http://", "ws://") + "/ws"
                ws = await websocket_connect(HTTPRequest(ws_url, headers={"Origin": url}))
                try:
                    assert json.loads(await ws.read_message())["type"] == "hello"
                finally:
                    await close_websocket(ws)
        finally:
            http.close()

    asyncio.run(run())

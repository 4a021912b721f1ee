"""The dashboard cannot be turned against its host: DNS rebinding, cross-site requests,
token guessing, short tokens, framing and injected scripts are all refused.

Every test serves a real dashboard on 127.0.0.x:0 in front of a fake daemon that records
what it is asked, and attacks it with real HTTP and websocket clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tornado", reason="the dashboard needs the web extra")
pytest.importorskip("prometheus_client", reason="the dashboard needs the web extra")

from circus.ctl.testing import CANNED_REPLIES, FakeDaemon  # noqa: E402
from circus.ctl.web import AuthPolicy, Dashboard, WebError, main  # noqa: E402
from circus.ctl.web.testing import Circushttpd, close_websocket, serve  # noqa: E402
from circus.process.testing import async_wait_until  # noqa: E402
from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse  # noqa: E402
from tornado.simple_httpclient import SimpleAsyncHTTPClient  # noqa: E402
from tornado.websocket import websocket_connect  # noqa: E402

TOKEN = "a-long-enough-dashboard-token"
JSON = {"Content-Type": "application/json"}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
STOP = json.dumps({"command": "stop", "properties": {"name": "web"}})
STATIC = Path(__file__).parents[1] / "src" / "circus" / "ctl" / "web" / "static"


class Site:
    """A served dashboard, the fake daemon behind it and an HTTP client."""

    def __init__(self, url: str, daemon: FakeDaemon, http: SimpleAsyncHTTPClient) -> None:
        self.url = url
        self.daemon = daemon
        self.http = http
        self.port = int(url.rsplit(":", 1)[1])
        self.host = url.split("//", 1)[1]

    async def fetch(self, path: str, **kwargs: Any) -> HTTPResponse:
        kwargs.setdefault("raise_error", False)
        kwargs.setdefault("follow_redirects", False)
        return await self.http.fetch(self.url + path, **kwargs)

    async def fetch_from(self, source: str, path: str, **kwargs: Any) -> HTTPResponse:
        """``path`` fetched from the local address ``source`` (another client address)."""
        request = HTTPRequest(
            self.url + path, network_interface=source, follow_redirects=False, **kwargs
        )
        return await self.http.fetch(request, raise_error=False)

    def stops(self) -> int:
        return self.daemon.commands().count("stop")


@contextlib.asynccontextmanager
async def site(
    tmp_path: Path, *, token: str | None = None, host: str = "127.0.0.1", **options: Any
) -> AsyncIterator[Site]:
    """Serve a dashboard (``options`` go to :class:`Dashboard`) for a fake daemon that
    answers ``stop``; yield once the dashboard has reached the daemon."""
    daemon = FakeDaemon(f"ipc://{tmp_path}/ctrl.sock", {**CANNED_REPLIES, "stop": {}})
    dashboard = Dashboard(
        [daemon.endpoint], interval=0.2, timeout=1.0, auth=AuthPolicy(token), **options
    )
    http = SimpleAsyncHTTPClient(force_instance=True)
    try:
        async with serve(dashboard, host) as url:
            yield Site(url, daemon, http)
    finally:
        http.close()
        daemon.close()


async def connected(site: Site, headers: dict[str, str] | None = None) -> None:
    """Wait until the dashboard has reached the fake daemon (so an action would run)."""

    async def reached() -> bool:
        answer = await site.fetch("/api/state", headers=headers)
        return answer.code == 200 and json.loads(answer.body)["daemons"][0]["connected"]

    await async_wait_until(reached, 20, "the dashboard to reach the fake daemon")


def upgrade(**more: str) -> dict[str, str]:
    """Headers of a websocket handshake sent as a plain request, so a refusal can be read."""
    return {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        **more,
    }


def run(coro: Any) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


# ---------------------------------------------------------------- DNS rebinding: Host


def test_a_rebound_name_cannot_stop_a_watcher(tmp_path: Path) -> None:
    """A page on evil.example, resolved to 127.0.0.1, is same-origin with itself: its
    requests carry ``Host: evil.example:PORT`` and a matching Origin. Nothing may run."""

    async def scenario() -> None:
        async with site(tmp_path) as s:
            await connected(s)
            evil = f"evil.example:{s.port}"
            browser = {"Host": evil, "Origin": f"http://{evil}"}
            call = await s.fetch(
                "/api/daemons/0/call", method="POST", body=STOP, headers={**JSON, **browser}
            )
            assert call.code == 421, call.body
            for path in ("/", "/login", "/api/state", "/metrics", "/static/app.js", "/nope"):
                answer = await s.fetch(path, headers=browser)
                assert answer.code == 421, (path, answer.code)
                assert b"web" not in answer.body and b"circus_" not in answer.body
            handshake = await s.fetch("/ws", headers=upgrade(**browser))
            assert handshake.code == 421
            ws_url = f"ws://{s.host}/ws"
            with pytest.raises(HTTPClientError) as refused:
                await websocket_connect(HTTPRequest(ws_url, headers=browser))
            assert refused.value.code == 421
            assert s.stops() == 0

    run(scenario())


def test_loopback_names_and_the_bound_address_are_allowed_with_their_port(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with site(tmp_path, host="127.0.0.2") as s:
            for host in (
                f"127.0.0.2:{s.port}",  # the bound address
                f"localhost:{s.port}",
                f"LOCALHOST:{s.port}",
                f"127.0.0.1:{s.port}",
                f"[::1]:{s.port}",
            ):
                assert (await s.fetch("/api/state", headers={"Host": host})).code == 200, host
            for host in (
                f"localhost:{s.port + 1}",  # right name, wrong port
                "localhost",  # port 80 implied
                f"127.0.0.3:{s.port}",  # loopback, but not where we listen
                f"localhost.:{s.port}",
                f"evil.example:{s.port}",
            ):
                answer = await s.fetch("/api/state", headers={"Host": host})
                assert answer.code == 421, (host, answer.code)
            for host in (  # malformed: tornado itself may answer 400 first
                f"localhost:{s.port}@evil.example",
                f"localhost:{s.port}, evil.example",
                f"localhost:{s.port}/x",
                "",
            ):
                answer = await s.fetch("/api/state", headers={"Host": host})
                assert answer.code in (400, 421), (host, answer.code)

    run(scenario())


def test_names_used_behind_a_proxy_are_allowed_when_listed(tmp_path: Path) -> None:
    async def scenario() -> None:
        listed = ["dash.example.com", "ops.example.com:8443"]
        async with site(tmp_path, allowed_hosts=listed) as s:
            for host in ("dash.example.com", "dash.example.com:443", "ops.example.com:8443"):
                assert (await s.fetch("/", headers={"Host": host})).code == 200, host
            for host in ("ops.example.com", "ops.example.com:443", "example.com"):
                assert (await s.fetch("/", headers={"Host": host})).code == 421, host

    run(scenario())


def test_a_malformed_allowed_host_is_refused_at_start() -> None:
    for bad in ("http://dash.example.com", "dash example", "dash.example.com:http", ""):
        with pytest.raises(WebError, match="allowed host"):
            Dashboard(["ipc:///nonexistent"], allowed_hosts=[bad])


def test_circushttpd_takes_allowed_hosts_from_its_option_and_environment(
    tmp_path: Path,
) -> None:
    import os
    import urllib.error
    import urllib.request

    def code(url: str, host: str) -> int:
        request = urllib.request.Request(url + "api/state", headers={"Host": host})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code

    env = {**os.environ, "CIRCUSHTTPD_ALLOWED_HOSTS": "env.example, env2.example"}
    endpoint = f"ipc://{tmp_path}/absent.sock"
    with Circushttpd("--endpoint", endpoint, "--allowed-host", "opt.example", env=env) as web:
        for host in ("opt.example", "env.example", "env2.example:99"):
            assert code(web.url, host) == 200, host
        assert code(web.url, "evil.example") == 421


# ---------------------------------------------------------------- cross-site: Origin


def test_cross_site_requests_change_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with site(tmp_path, token=TOKEN) as s:
            await connected(s, BEARER)
            for headers in (
                {"Origin": "http://evil.example"},
                {"Origin": "null"},
                {"Origin": f"http://127.0.0.1:{s.port + 1}"},
                {"Sec-Fetch-Site": "cross-site"},
                {"Sec-Fetch-Site": "same-site", "Origin": f"http://{s.host}"},
            ):
                call = await s.fetch(
                    "/api/daemons/0/call",
                    method="POST",
                    body=STOP,
                    headers={**JSON, **BEARER, **headers},
                )
                assert call.code == 403, (headers, call.code)
                login = await s.fetch("/login", method="POST", body="token=x", headers=headers)
                assert login.code == 403, (headers, login.code)
                handshake = await s.fetch("/ws", headers={**BEARER, **upgrade(**headers)})
                assert handshake.code == 403, (headers, handshake.code)
            assert s.stops() == 0
            # A same-origin form post under Referrer-Policy: no-referrer says Origin: null.
            same = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
            call = await s.fetch(
                "/api/daemons/0/call", method="POST", body=STOP, headers={**JSON, **BEARER, **same}
            )
            assert call.code == 200 and s.stops() == 1
            call = await s.fetch(
                "/api/daemons/0/call",
                method="POST",
                body=STOP,
                headers={**JSON, **BEARER, "Origin": f"http://{s.host}"},
            )
            assert call.code == 200 and s.stops() == 2
            ws = await websocket_connect(
                HTTPRequest(f"ws://{s.host}/ws", headers={**BEARER, "Origin": f"http://{s.host}"})
            )
            try:
                assert json.loads(await ws.read_message())["type"] == "hello"
            finally:
                await close_websocket(ws)

    run(scenario())


# ---------------------------------------------------------------- guessing the token


def test_failed_logins_are_limited_per_client(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with site(tmp_path, token=TOKEN) as s:
            for _ in range(5):
                wrong = await s.fetch("/login", method="POST", body="token=guess-guess-guess")
                assert wrong.code == 403
            limited = await s.fetch("/login", method="POST", body=f"token={TOKEN}")
            assert limited.code == 429, "the right token is not even checked while limited"
            assert 1 <= int(limited.headers["Retry-After"]) <= 60
            assert "Set-Cookie" not in limited.headers
            bearer = await s.fetch("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert bearer.code == 429 and "Retry-After" in bearer.headers
            # Another client is not held back by the first one's failures.
            other = await s.fetch_from(
                "127.0.0.2", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert other.code == 200

    with caplog.at_level(logging.WARNING, logger="circus.ctl.web"):
        run(scenario())
    refused = [r for r in caplog.records if "login" in r.getMessage()]
    assert 1 <= len(refused) <= 3, [r.getMessage() for r in refused]
    assert "127.0.0.1" in refused[0].getMessage()


def test_failed_logins_are_limited_overall(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with site(tmp_path, token=TOKEN) as s:
            bad = {"Authorization": "Bearer guess-guess-guess-guess"}
            for n in range(50):  # 10 addresses x 5 failures: each under its own limit
                source = f"127.0.0.{10 + n // 5}"
                answer = await s.fetch_from(source, "/api/state", headers=bad)
                assert answer.code == 401, (n, answer.code)
            fresh = await s.fetch_from("127.0.0.99", "/login", method="POST", body=f"token={TOKEN}")
            assert fresh.code == 429 and 1 <= int(fresh.headers["Retry-After"]) <= 60

    with caplog.at_level(logging.WARNING):
        run(scenario())
    assert len([r for r in caplog.records if "login" in r.getMessage()]) <= 3
    # 51 refused requests: the access log keeps a few lines, with the count left out.
    access = [r.getMessage() for r in caplog.records if r.name == "tornado.access"]
    assert 1 <= len(access) <= 6, access


def test_the_failure_window_slides() -> None:
    from circus.ctl.web._ratelimit import FailureLimiter

    now = [1000.0]
    limiter = FailureLimiter(per_client=2, overall=3, window=60.0, clock=lambda: now[0])
    limiter.failed("a")
    now[0] += 10
    limiter.failed("a")
    assert limiter.retry_after("a") == pytest.approx(50.0)
    assert limiter.retry_after("b") is None
    limiter.failed("b")
    assert limiter.retry_after("c") == pytest.approx(50.0)  # 3 overall
    now[0] += 50  # a's first failure leaves the window
    assert limiter.retry_after("a") is None
    assert limiter.retry_after("c") is None
    assert limiter.tracked() == 2
    now[0] += 10
    assert limiter.tracked() == 0  # nothing is remembered past the window


# ---------------------------------------------------------------- short tokens


def test_short_tokens_are_refused_however_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    short = tmp_path / "token"
    short.write_text("fifteen-chars!!\n")
    monkeypatch.delenv("CIRCUSHTTPD_TOKEN", raising=False)
    assert main(["--token-file", str(short), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "--token-file" in err and str(short) in err and "at least 16" in err
    monkeypatch.setenv("CIRCUSHTTPD_TOKEN", "short")
    assert main(["--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "CIRCUSHTTPD_TOKEN" in err and "at least 16" in err
    with pytest.raises(WebError, match="at least 16"):
        AuthPolicy("fifteen-chars!!")
    AuthPolicy("sixteen-chars!!!")


def test_circushttpd_exits_non_zero_on_a_short_token(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "CIRCUSHTTPD_TOKEN": "tiny"}
    done = subprocess.run(
        [sys.executable, "-m", "circus.ctl.web", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "CIRCUSHTTPD_TOKEN" in done.stderr and "at least 16" in done.stderr


# ---------------------------------------------------------------- headers and the page


def test_every_response_carries_the_security_headers(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with site(tmp_path) as s:
            answers = {path: await s.fetch(path) for path in ("/", "/login", "/api/state")}
            answers["/static/app.js"] = await s.fetch("/static/app.js")
            answers["404"] = await s.fetch("/nope")
            answers["421"] = await s.fetch("/", headers={"Host": "evil.example"})
            for what, answer in answers.items():
                headers = answer.headers
                csp = headers.get("Content-Security-Policy", "")
                directives = {
                    words[0]: words[1:] for words in (d.split() for d in csp.split(";")) if words
                }
                assert directives.get("connect-src", [""])[0] == "'self'", (what, csp)
                assert directives.get("default-src") == ["'none'"], (what, csp)
                assert directives.get("frame-ancestors") == ["'none'"], (what, csp)
                assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, what
                assert not {"ws:", "wss:", "*"} & set(directives["connect-src"]), (what, csp)
                assert headers.get("X-Frame-Options") == "DENY", what
                assert headers.get("X-Content-Type-Options") == "nosniff", what
                assert headers.get("Referrer-Policy") == "no-referrer", what
            page_csp = answers["/"].headers["Content-Security-Policy"]
            assert f"ws://{s.host}" in page_csp  # the page's own websocket, and only it

    run(scenario())


class _Inline(HTMLParser):
    """Collects what a strict CSP (no 'unsafe-inline') would block in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        values = dict(attrs)
        if tag == "script":
            self._in_script = True
            if "src" not in names:
                self.blocked.append("inline <script>")
            elif not str(values["src"]).startswith("/"):
                self.blocked.append(f"script from {values['src']}")
        if tag == "style":
            self.blocked.append("<style> element")
        if (
            tag == "link"
            and values.get("rel") == "stylesheet"
            and not str(values.get("href")).startswith("/")
        ):
            self.blocked.append(f"stylesheet {values.get('href')}")
        for name in names:
            if name == "style" or name.startswith("on"):
                self.blocked.append(f"{tag} {name}=")
            if name in ("href", "src", "action") and str(values[name]).startswith("javascript:"):
                self.blocked.append(f"{tag} {name}=javascript:")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.blocked.append("inline script text")


def test_the_shipped_pages_need_nothing_the_policy_blocks(tmp_path: Path) -> None:
    pages = [(STATIC / "index.html").read_text()]

    async def login_page() -> None:
        async with site(tmp_path, token=TOKEN) as s:
            answer = await s.fetch("/login")
            assert answer.code == 200
            pages.append(answer.body.decode())

    run(login_page())
    for page in pages:
        parser = _Inline()
        parser.feed(page)
        assert parser.blocked == []
    script = (STATIC / "app.js").read_text()
    for pattern in (
        r"\beval\s*\(",
        r"new\s+Function\s*\(",
        r"setTimeout\s*\(\s*[\"'`]",
        r"setAttribute\s*\(\s*[\"']style",
        r"setAttribute\s*\(\s*[\"']on",
        r"\.innerHTML\s*=",
        r"\.outerHTML\s*=",
        r"insertAdjacentHTML",
        r"document\.write",
        r"https?://",
    ):
        assert re.search(pattern, script) is None, pattern
    # The page's attributes helper maps on* keys to listeners, never to attributes.
    assert 'k.startsWith("on")) node.addEventListener' in script

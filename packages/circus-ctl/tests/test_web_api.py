"""circushttpd's HTTP API, websocket and /metrics against a fake daemon (real sockets).

The "daemon" is :class:`circus.ctl.testing.FakeDaemon` (a real ROUTER) plus a real PUB
socket, so these tests need no circusd; tests/web/ drives a real one from a browser.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tornado", reason="the dashboard needs the web extra")
pytest.importorskip("prometheus_client", reason="the dashboard needs the web extra")

from circus.ctl import protocol  # noqa: E402
from circus.ctl.testing import FakeDaemon, Publisher  # noqa: E402
from circus.ctl.web import Dashboard  # noqa: E402
from circus.ctl.web.testing import close_websocket, serve  # noqa: E402
from circus.process.testing import async_wait_until  # noqa: E402
from tornado.httpclient import HTTPRequest, HTTPResponse  # noqa: E402
from tornado.simple_httpclient import SimpleAsyncHTTPClient  # noqa: E402
from tornado.websocket import WebSocketClientConnection, websocket_connect  # noqa: E402

TOKEN = "a-long-enough-dashboard-token"
INFO = {"cpu": 1.5, "mem": 0.1, "mem_info1": "4.00M", "age": 2.0, "cmdline": "python3"}


def daemon_replies(pubsub: str) -> dict[str, Any]:
    """Answers of a daemon running ``web`` with a process count that incr/decr change."""
    pids = [1001, 1002]

    def stats(request: dict[str, Any]) -> dict[str, Any]:
        table = {str(pid): {**INFO, "pid": pid, "wid": i + 1} for i, pid in enumerate(pids)}
        return {"infos": {"web": table}}

    def incr(request: dict[str, Any]) -> dict[str, Any]:
        pids.append(pids[-1] + 1)
        return {"numprocesses": len(pids)}

    return {
        "status": {"statuses": {"web": "active"}},
        "stats": stats,
        "dstats": {"info": {**INFO, "pid": 999}},
        "globaloptions": {"options": {"pubsub_endpoint": pubsub, "endpoint": "x"}},
        "logs": {"logs": [protocol.logs_answer_entry("web", 1001, "stdout", "booted\n", 1.0)]},
        "incr": incr,
        "stop": {"status": "error", "reason": "arbiter is already stopping", "errno": 5},
    }


class Env:
    """A fake daemon and its publisher, the dashboard served for them, an HTTP client."""

    def __init__(
        self, tmp_path: Path, token: str | None = None, more: tuple[str, ...] = ()
    ) -> None:
        self.endpoint = f"ipc://{tmp_path}/ctrl.sock"
        self.pubsub = f"ipc://{tmp_path}/pub.sock"
        self.publisher = Publisher(self.pubsub)
        self.daemon = FakeDaemon(self.endpoint, daemon_replies(self.pubsub))
        from circus.ctl.web._auth import AuthPolicy

        self.dashboard = Dashboard(
            [self.endpoint, *more], interval=0.2, timeout=0.5, auth=AuthPolicy(token)
        )
        self.http = SimpleAsyncHTTPClient(force_instance=True)
        self.url = ""
        self.token = token

    def close(self) -> None:
        self.http.close()
        self.daemon.close()
        self.publisher.close()

    def _login(self, headers: dict[str, str] | None) -> dict[str, str]:
        """``headers`` plus the Bearer token, when the dashboard has one."""
        if self.token is None:
            return dict(headers or {})
        return {"Authorization": f"Bearer {self.token}", **(headers or {})}

    async def fetch(self, path: str, **kwargs: Any) -> HTTPResponse:
        kwargs.setdefault("raise_error", False)
        kwargs.setdefault("follow_redirects", False)
        kwargs["headers"] = self._login(kwargs.get("headers"))
        return await self.http.fetch(self.url + path, **kwargs)

    async def state(self) -> dict[str, Any]:
        response = await self.fetch("/api/state")
        assert response.code == 200, response.body
        return json.loads(response.body)["daemons"][0]

    async def ws(self, headers: dict[str, str] | None = None) -> WebSocketClientConnection:
        url = self.url.replace("http://", "ws://") + "/ws"
        return await websocket_connect(HTTPRequest(url, headers=self._login(headers)))


def run(
    tmp_path: Path,
    scenario: Callable[[Env], Awaitable[None]],
    token: str | None = None,
    more: tuple[str, ...] = (),
) -> None:
    """Run ``scenario(env)`` on a fresh loop with the dashboard served; clean up after."""

    async def main() -> None:
        env = Env(tmp_path, token, more)
        try:
            async with serve(env.dashboard) as url:
                env.url = url
                await asyncio.wait_for(scenario(env), 30)
        finally:
            env.close()

    asyncio.run(main())


async def next_of(ws: WebSocketClientConnection, kind: str, timeout: float = 10) -> dict:  # noqa: ASYNC109
    """Read websocket messages until one of type ``kind``; return it."""
    deadline = time.monotonic() + timeout
    while True:
        text = await asyncio.wait_for(ws.read_message(), max(0.1, deadline - time.monotonic()))
        assert text is not None, "websocket closed"
        message = json.loads(text)
        if message["type"] == kind:
            return message


def test_state_api_shows_the_daemons_watchers(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        async def connected() -> Any:
            state = await env.state()
            return state if state["connected"] else None

        state = await async_wait_until(connected, message="the dashboard to reach the daemon")
        (web,) = state["watchers"]
        assert web["name"] == "web" and web["status"] == "active"
        assert web["numprocesses"] == 2 and web["cpu"] == 3.0
        assert [p["pid"] for p in web["processes"]] == [1001, 1002]
        assert state["circusd"]["pid"] == 999
        page = await env.fetch("/")
        assert page.code == 200 and b"<title>Circus dashboard</title>" in page.body
        script = await env.fetch("/static/app.js")
        assert script.code == 200 and b"WebSocket" in script.body

    run(tmp_path, scenario)


def test_metrics_endpoint_serves_prometheus_text(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        async def scraped() -> str | None:
            response = await env.fetch("/metrics")
            assert response.code == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = response.body.decode()
            return text if "circus_process_cpu_percent{" in text else None

        text = await async_wait_until(scraped, message="process metrics")
        endpoint = env.endpoint
        assert f'circus_daemon_up{{endpoint="{endpoint}"}} 1.0' in text
        assert f'circus_watcher_processes{{endpoint="{endpoint}",watcher="web"}} 2.0' in text
        assert f'circus_watcher_memory_bytes{{endpoint="{endpoint}",watcher="web"}}' in text
        assert (
            f'circus_process_memory_bytes{{endpoint="{endpoint}",pid="1001",watcher="web",'
            f'wid="1"}} 4.194304e+06' in text
        )

    run(tmp_path, scenario)


def test_websocket_output_one_entry_per_line_and_missed_lines_counted(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        ws = await env.ws()
        try:
            await next_of(ws, "hello")
            await async_wait_until(
                lambda: _connected_snapshot(ws), message="a connected snapshot on the websocket"
            )

            async def relayed() -> dict | None:  # until the subscription reached the PUB
                env.publisher.publish("watcher.web.spawn", {"process_pid": 1, "time": 5.0})
                try:
                    return await next_of(ws, "event", timeout=0.3)
                except TimeoutError:
                    return None

            await async_wait_until(relayed, message="an event on the websocket")
            env.publisher.send(protocol.output_message("web", 7, "stdout", "a\nb\n", 6.0, 0))
            # seq 5: lines 2, 3 and 4 were dropped by circusd before they reached the link
            env.publisher.send(protocol.output_message("web", 7, "stdout", "c\n", 6.5, 5))
            lines: list[dict] = []
            dropped = 0
            while len(lines) < 3:
                batch = await next_of(ws, "outputs")
                lines += batch["lines"]
                dropped += batch["dropped"]
            assert [line["data"] for line in lines] == ["a\n", "b\n", "c\n"]
            assert dropped == 3
            assert [e["data"] for e in env.dashboard.links[0].logs][-3:] == ["a\n", "b\n", "c\n"]
        finally:
            ws.close()

    run(tmp_path, scenario, token=TOKEN)


def test_websocket_relays_snapshots_events_output_and_answers(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        ws = await env.ws()
        try:
            hello = await next_of(ws, "hello")
            assert hello["daemons"] == [{"index": 0, "endpoint": env.endpoint}]
            snapshot = await async_wait_until(
                lambda: _connected_snapshot(ws), message="a connected snapshot on the websocket"
            )
            assert snapshot["watchers"][0]["numprocesses"] == 2
            # Publish until the subscription has reached the PUB socket (slow joiner).
            event = {"process_pid": 1003, "time": 5.0}

            async def relayed() -> dict | None:
                env.publisher.publish("watcher.web.spawn", event)
                try:
                    return await next_of(ws, "event", timeout=0.3)
                except TimeoutError:
                    return None

            message = await async_wait_until(relayed, message="the event on the websocket")
            assert message["topic"] == "watcher.web.spawn" and message["payload"] == event
            assert message["watcher"] == "web" and message["event"] == "spawn"
            env.publisher.send(protocol.output_message("web", 1001, "stderr", "oops\n", 6.0))
            batch = await next_of(ws, "outputs")
            assert batch["dropped"] == 0 and len(batch["lines"]) == 1
            output = batch["lines"][0]
            assert output["data"] == "oops\n" and output["stream"] == "stderr"
            assert output["watcher"] == "web" and output["pid"] == 1001

            ws.write_message(
                json.dumps(
                    {
                        "type": "call",
                        "id": 7,
                        "daemon": 0,
                        "command": "incr",
                        "properties": {"name": "web"},
                    }
                )
            )
            answer = await next_of(ws, "answer")
            assert answer["id"] == 7 and answer["ok"] is True
            assert answer["answer"]["numprocesses"] == 3
            incr = env.daemon.last("incr")["properties"]
            assert incr == {"name": "web", "waiting": True}
            snapshot = await async_wait_until(
                lambda: _snapshot_with(ws, 3), message="the incremented count on the websocket"
            )
            assert snapshot["watchers"][0]["numprocesses"] == 3

            ws.write_message(
                json.dumps(
                    {
                        "type": "call",
                        "id": 8,
                        "daemon": 0,
                        "command": "stop",
                        "properties": {"name": "web"},
                    }
                )
            )
            answer = await next_of(ws, "answer")
            assert answer == {
                "type": "answer",
                "id": 8,
                "command": "stop",
                "ok": False,
                "error": "arbiter is already stopping",
                "errno": 5,
            }
            ws.write_message(json.dumps({"type": "call", "id": 9, "daemon": 0, "command": "quit"}))
            answer = await next_of(ws, "answer")
            assert answer["id"] == 9 and not answer["ok"] and "does not relay" in answer["error"]
            ws.write_message("{not json")
            answer = await next_of(ws, "answer")
            assert not answer["ok"] and answer["error"] == "not JSON"
        finally:
            await close_websocket(ws)

    run(tmp_path, scenario, token=TOKEN)


async def _connected_snapshot(ws: WebSocketClientConnection) -> dict | None:
    message = await next_of(ws, "snapshot")
    return message if message["connected"] and message["watchers"] else None


async def _snapshot_with(ws: WebSocketClientConnection, count: int) -> dict | None:
    message = await next_of(ws, "snapshot")
    return message if message["watchers"][0]["numprocesses"] == count else None


def test_websocket_backlog_carries_recent_output(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        await async_wait_until(
            lambda: _is_connected(env), message="the dashboard to reach the daemon"
        )
        ws = await env.ws()
        try:
            backlog = await next_of(ws, "backlog")
            assert [line["data"] for line in backlog["logs"]] == ["booted\n"]
        finally:
            await close_websocket(ws)

    run(tmp_path, scenario, token=TOKEN)


async def _is_connected(env: Env) -> bool:
    return bool((await env.state())["connected"])


def test_http_call_relays_actions_and_refuses_bad_requests(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        await async_wait_until(
            lambda: _is_connected(env), message="the dashboard to reach the daemon"
        )
        json_headers = {"Content-Type": "application/json"}

        async def post(path: str, body: Any, headers: dict[str, str] = json_headers):
            response = await env.fetch(path, method="POST", body=json.dumps(body), headers=headers)
            return response.code, json.loads(response.body)

        code, body = await post(
            "/api/daemons/0/call", {"command": "incr", "properties": {"name": "web"}}
        )
        assert code == 200 and body["ok"] and body["answer"]["numprocesses"] == 3
        code, body = await post(
            "/api/daemons/0/call", {"command": "stop", "properties": {"name": "web"}}
        )
        assert (code, body["error"], body["errno"]) == (409, "arbiter is already stopping", 5)
        code, body = await post("/api/daemons/3/call", {"command": "incr"})
        assert code == 404 and "no daemon number 3" in body["error"]
        code, body = await post("/api/daemons/0/call", {"command": "quit"})
        assert code == 400 and "does not relay 'quit'" in body["error"]
        code, body = await post("/api/daemons/0/call", {"command": "incr", "properties": [1]})
        assert code == 400
        code, body = await post(
            "/api/daemons/0/call", {"command": "incr"}, {"Content-Type": "text/plain"}
        )
        assert code == 415
        code, body = await post(
            "/api/daemons/0/call",
            {"command": "incr"},
            {**json_headers, "Origin": "http://evil.example"},
        )
        assert code == 403 and "cross-origin" in body["error"]
        assert env.daemon.commands().count("incr") == 1

    run(tmp_path, scenario, token=TOKEN)


def test_a_daemon_that_goes_away_shows_disconnected_then_comes_back(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        await async_wait_until(
            lambda: _is_connected(env), message="the dashboard to reach the daemon"
        )
        env.daemon.close()

        async def disconnected() -> Any:
            state = await env.state()
            return state if not state["connected"] else None

        state = await async_wait_until(disconnected, message="the daemon to show as disconnected")
        assert state["error"]
        response = await env.fetch(
            "/api/daemons/0/call",
            method="POST",
            body=json.dumps({"command": "incr", "properties": {"name": "web"}}),
            headers={"Content-Type": "application/json"},
        )
        assert response.code == 503 and b"disconnected" in response.body
        metrics = (await env.fetch("/metrics")).body.decode()
        assert f'circus_daemon_up{{endpoint="{env.endpoint}"}} 0.0' in metrics
        # The same endpoint comes back: picked up again without restarting circushttpd.
        env.daemon = FakeDaemon(env.endpoint, daemon_replies(env.pubsub))
        await async_wait_until(
            lambda: _is_connected(env), message="the daemon to be picked up again"
        )

    run(tmp_path, scenario, token=TOKEN)


def test_several_endpoints_show_side_by_side(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        async def both() -> Any:
            response = await env.fetch("/api/state")
            daemons = json.loads(response.body)["daemons"]
            return daemons if len(daemons) == 2 and daemons[0]["connected"] else None

        daemons = await async_wait_until(both, message="two daemons")
        assert [d["endpoint"] for d in daemons] == [env.endpoint, f"ipc://{tmp_path}/none"]
        assert daemons[0]["watchers"][0]["name"] == "web"
        await async_wait_until(
            lambda: _second_disconnected(env), message="the absent daemon to show an error"
        )

    run(tmp_path, scenario, more=(f"ipc://{tmp_path}/none",))


async def _second_disconnected(env: Env) -> bool:
    response = await env.fetch("/api/state")
    second = json.loads(response.body)["daemons"][1]
    return not second["connected"] and bool(second["error"])


def test_restarts_count_processes_that_exit_on_their_own(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        await async_wait_until(
            lambda: _is_connected(env), message="the dashboard to reach the daemon"
        )
        ws = await env.ws()
        try:
            # Wait for the subscription: publish a harmless event until it is relayed.
            async def subscribed() -> bool:
                env.publisher.publish("watcher.web.start", {"time": 1.0})
                try:
                    await next_of(ws, "event", timeout=0.3)
                    return True
                except TimeoutError:
                    return False

            await async_wait_until(subscribed, message="the pub/sub subscription")
            # Asked to stop (kill then reap): not a restart. Died alone (reap only): one.
            env.publisher.publish("watcher.web.kill", {"process_pid": 1001, "time": 2.0})
            env.publisher.publish(
                "watcher.web.reap", {"process_pid": 1001, "time": 2.1, "exit_code": -15}
            )
            env.publisher.publish(
                "watcher.web.reap", {"process_pid": 1002, "time": 3.0, "exit_code": 1}
            )
            for _ in range(3):
                await next_of(ws, "event")
        finally:
            await close_websocket(ws)
        assert (await env.state())["watchers"][0]["restarts"] == 1
        metrics = (await env.fetch("/metrics")).body.decode()
        assert (
            f'circus_watcher_restarts_total{{endpoint="{env.endpoint}",watcher="web"}} 1.0'
            in metrics
        )

    run(tmp_path, scenario)


def test_an_output_burst_reaches_the_page_in_a_few_batches(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        await async_wait_until(
            lambda: _is_connected(env), message="the dashboard to reach the daemon"
        )
        ws = await env.ws()
        try:

            async def subscribed() -> bool:
                env.publisher.send(protocol.output_message("web", 1, "stdout", "probe\n"))
                try:
                    await next_of(ws, "outputs", timeout=0.3)
                    return True
                except TimeoutError:
                    return False

            await async_wait_until(subscribed, message="the pub/sub subscription")
            total = 3000
            for n in range(total):
                env.publisher.send(protocol.output_message("web", 1001, "stdout", f"{n}\n"))
            sizes: list[int] = []
            dropped = 0
            while True:  # until the burst is over: no batch for a second
                try:
                    batch = await next_of(ws, "outputs", timeout=1.0)
                except TimeoutError:
                    break
                sizes.append(len(batch["lines"]))
                dropped += batch["dropped"]
            # A handful of messages, not one per line; nothing is lost silently (ZeroMQ may
            # drop some lines at its high-water mark before they reach circushttpd).
            assert sizes and max(sizes) > 1 and max(sizes) <= 500
            assert len(sizes) < total / 10
            assert sum(sizes) + dropped <= total
        finally:
            await close_websocket(ws)

    run(tmp_path, scenario, token=TOKEN)


# ---------------------------------------------------------------- without a token: read-only

ACTION_CALLS = (
    ("start", {"name": "web"}),
    ("stop", {"name": "web"}),
    ("restart", {"name": "web"}),
    ("reload", {"name": "web"}),
    ("incr", {"name": "web"}),
    ("decr", {"name": "web"}),
    ("signal", {"name": "web", "pid": 1001, "signum": "TERM"}),
    ("kill", {"name": "web"}),
    ("STOP", {"name": "web"}),
)


def _says_how_to_log_in(error: str) -> bool:
    return all(
        word in error for word in ("read-only", "login token", "--token-file", "$CIRCUSHTTPD_TOKEN")
    ) and ("httpd_token_file" in error)


def test_without_a_token_actions_are_refused_and_change_nothing(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        await async_wait_until(
            lambda: _is_connected(env), message="the dashboard to reach the daemon"
        )
        state = json.loads((await env.fetch("/api/state")).body)
        assert state["read_only"] is True
        for command, properties in ACTION_CALLS:
            response = await env.fetch(
                "/api/daemons/0/call",
                method="POST",
                body=json.dumps({"command": command, "properties": properties}),
                headers={"Content-Type": "application/json"},
            )
            body = json.loads(response.body)
            assert response.code == 403, (command, response.code, body)
            assert body["ok"] is False and _says_how_to_log_in(body["error"]), body
        # The output lines are the processes', not the caller's: refused too.
        logs = await env.fetch("/api/daemons/0/logs")
        assert logs.code == 403 and "output needs a login token" in json.loads(logs.body)["error"]
        relayed_logs = await env.fetch(
            "/api/daemons/0/call",
            method="POST",
            body=json.dumps({"command": "logs"}),
            headers={"Content-Type": "application/json"},
        )
        assert relayed_logs.code == 403
        # Reads still work.
        status = await env.fetch(
            "/api/daemons/0/call",
            method="POST",
            body=json.dumps({"command": "status"}),
            headers={"Content-Type": "application/json"},
        )
        assert status.code == 200 and json.loads(status.body)["answer"]["statuses"]
        assert (await env.fetch("/metrics")).code == 200
        actions = {"start", "stop", "restart", "reload", "incr", "decr", "signal", "kill"}
        assert not actions & set(env.daemon.commands())
        assert (await env.state())["watchers"][0]["numprocesses"] == 2

    run(tmp_path, scenario)


def test_without_a_token_the_websocket_shows_events_but_no_output_and_refuses_actions(
    tmp_path: Path,
) -> None:
    async def scenario(env: Env) -> None:
        await async_wait_until(
            lambda: _is_connected(env), message="the dashboard to reach the daemon"
        )
        ws = await env.ws()
        try:
            hello = await next_of(ws, "hello")
            assert hello["read_only"] is True and _says_how_to_log_in(hello["read_only_reason"])
            backlog = await next_of(ws, "backlog")
            assert backlog["logs"] == [] and env.dashboard.links[0].logs  # kept, not sent

            async def relayed() -> dict | None:
                env.publisher.send(protocol.output_message("web", 1001, "stdout", "secret\n"))
                env.publisher.publish("watcher.web.spawn", {"process_pid": 1003, "time": 5.0})
                try:
                    return await next_of(ws, "event", timeout=0.3)
                except TimeoutError:
                    return None

            await async_wait_until(relayed, message="an event on the websocket")
            # The dashboard received output lines (it keeps them) yet sent none to this page.
            await async_wait_until(
                _async(lambda: any(e["data"] == "secret\n" for e in env.dashboard.links[0].logs)),
                message="the output line to reach the dashboard",
            )
            for number, command in enumerate(("incr", "kill", "logs")):
                ws.write_message(
                    json.dumps(
                        {
                            "type": "call",
                            "id": number,
                            "daemon": 0,
                            "command": command,
                            "properties": {"name": "web"},
                        }
                    )
                )
            seen: list[dict] = []
            while len([m for m in seen if m["type"] == "answer"]) < 3:
                seen.append(json.loads(await asyncio.wait_for(ws.read_message(), 10)))
            answers = [m for m in seen if m["type"] == "answer"]
            assert all(not a["ok"] and "read-only" in a["error"] for a in answers), answers
            # Output batches leave the dashboard 0.1 s after a line arrives: a page that may
            # see them would have got one within this window.
            seen += await _collect(ws, 1.5)
            assert [m for m in seen if m["type"] == "snapshot"], "the page is still fed"
            assert not [m for m in seen if m["type"] == "outputs"], seen
        finally:
            await close_websocket(ws)
        assert "incr" not in env.daemon.commands() and "kill" not in env.daemon.commands()

    run(tmp_path, scenario)


def test_with_a_token_the_dashboard_is_not_read_only(tmp_path: Path) -> None:
    async def scenario(env: Env) -> None:
        await async_wait_until(
            lambda: _is_connected(env), message="the dashboard to reach the daemon"
        )
        assert json.loads((await env.fetch("/api/state")).body)["read_only"] is False
        ws = await env.ws()
        try:
            hello = await next_of(ws, "hello")
            assert hello["read_only"] is False and hello["read_only_reason"] is None
        finally:
            await close_websocket(ws)
        logs = await env.fetch("/api/daemons/0/logs")
        assert logs.code == 200

    run(tmp_path, scenario, token=TOKEN)


def _async(check: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def wrapped() -> Any:
        return check()

    return wrapped


async def _collect(ws: WebSocketClientConnection, seconds: float) -> list[dict]:
    """Every message received during the next ``seconds``."""
    messages: list[dict] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            text = await asyncio.wait_for(ws.read_message(), left)
        except TimeoutError:
            break
        assert text is not None, "websocket closed"
        messages.append(json.loads(text))
    return messages


def test_without_a_token_environment_values_are_hidden() -> None:
    """What is configured, never its secrets: a read-only dashboard relays ``options`` and
    ``get`` with every environment value hidden (names kept)."""
    from circus.ctl.web._handlers import _hide_env

    answer = {"status": "ok", "options": {"cmd": "run", "env": {"TOKEN": "s3cret", "A": "1"}}}
    hidden = _hide_env(answer)
    assert hidden["options"] == {"cmd": "run", "env": {"TOKEN": "<hidden>", "A": "<hidden>"}}
    assert answer["options"]["env"]["TOKEN"] == "s3cret"  # the daemon's answer is not changed
    assert _hide_env({"status": "ok", "statuses": {}}) == {"status": "ok", "statuses": {}}

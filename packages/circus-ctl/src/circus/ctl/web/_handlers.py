"""The HTTP side: page, login, JSON API, websocket and ``/metrics`` handlers."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import math
from typing import TYPE_CHECKING, Any

import tornado.httputil
import tornado.web
import tornado.websocket
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import __version__
from ..errors import CallError
from ._app import STATIC_DIR
from ._auth import ACTIONS_NEED_TOKEN, COOKIE, OUTPUT_NEEDS_TOKEN
from ._hosts import cross_site
from ._link import READ_COMMANDS
from ._secure import Refused, SecureHeaders
from .errors import DaemonDisconnected, TooManyFailures

if TYPE_CHECKING:
    from ._app import Dashboard

__all__ = ["routes"]

log = logging.getLogger("circus.ctl.web")


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _Base(SecureHeaders):
    """Shared: the dashboard object, who the caller is, and no cross-site state changes."""

    @property
    def dashboard(self) -> Dashboard:
        dashboard: Dashboard = self.settings["dashboard"]
        return dashboard

    @property
    def client(self) -> str:
        """The caller's address (the peer of the connection: no X-Forwarded-For)."""
        return str(self.request.remote_ip)

    def prepare(self) -> None:
        if self.request.method not in _SAFE_METHODS:
            _refuse_cross_site(self.request)

    def get_current_user(self) -> str | None:
        auth = self.dashboard.auth
        if not auth.required:
            return "anonymous"
        if self.get_signed_cookie(COOKIE, max_age_days=7) == b"ok":
            return "cookie"
        header = self.request.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            return "token" if auth.attempt(credential.strip(), self.client) else None
        except TooManyFailures as exc:
            raise Refused(429, str(exc), exc.retry_after) from None

    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(value, default=str))


def _refuse_cross_site(request: tornado.httputil.HTTPServerRequest) -> None:
    why = cross_site(request.headers, request.headers.get("Host", ""))
    if why is not None:
        raise Refused(403, f"cross-origin request refused ({why})")


class _Api(_Base):
    """JSON handlers: 401 JSON (not a redirect) when the caller has not logged in."""

    json_errors = True

    def prepare(self) -> None:
        super().prepare()
        if self.current_user is None:
            raise Refused(401, "login required")


class IndexHandler(_Base):
    """``/``: the page (or a redirect to the login form)."""

    def get(self) -> None:
        if self.current_user is None:
            self.redirect("/login")
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish((STATIC_DIR / "index.html").read_bytes())


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>circushttpd - login</title>
<link rel="stylesheet" href="/static/app.css"></head>
<body class="login"><form method="post" action="/login" class="login-box">
<h1>Circus</h1><p>This dashboard needs its token.</p>
<input type="password" name="token" placeholder="token" autofocus autocomplete="current-password">
<button type="submit">Log in</button><p class="error">{error}</p></form></body></html>
"""


class LoginHandler(_Base):
    """``/login``: a form asking for the token; a right token sets a signed cookie.

    Wrong tokens are limited (see :class:`~._auth.AuthPolicy`): past the limit the form
    answers 429 with ``Retry-After`` without looking at the token.
    """

    def get(self) -> None:
        if self.current_user is not None:
            self.redirect("/")
            return
        self.set_header("Cache-Control", "no-store")
        self.finish(_LOGIN_PAGE.format(error=""))

    def post(self) -> None:
        token = self.get_body_argument("token", default="")
        try:
            accepted = self.dashboard.auth.attempt(token, self.client)
        except TooManyFailures as exc:
            self.set_status(429)
            self.set_header("Retry-After", str(max(1, math.ceil(exc.retry_after))))
            self.finish(_LOGIN_PAGE.format(error=html.escape(str(exc))))
            return
        if accepted:
            self.set_signed_cookie(COOKIE, "ok", expires_days=7, httponly=True, samesite="Strict")
            self.redirect("/")
            return
        self.set_status(403)
        self.finish(_LOGIN_PAGE.format(error=html.escape("wrong token")))


class LogoutHandler(_Base):
    """``/logout``: forget the cookie."""

    def post(self) -> None:
        self.clear_cookie(COOKIE)
        self.redirect("/login")


class StateHandler(_Api):
    """``GET /api/state``: every daemon's latest snapshot, and whether actions are refused
    (``read_only``: no token)."""

    def get(self) -> None:
        self.write_json(
            {
                "version": __version__,
                "interval": self.dashboard.interval,
                "read_only": self.dashboard.auth.read_only,
                "daemons": [state.to_json() for state in self.dashboard.states()],
            }
        )


class LogsHandler(_Api):
    """``GET /api/daemons/N/logs``: the output lines kept for daemon N (oldest first);
    403 on a read-only dashboard."""

    def get(self, index: str) -> None:
        if self.dashboard.auth.read_only:
            self.write_json({"ok": False, "error": OUTPUT_NEEDS_TOKEN}, 403)
            return
        try:
            link = self.dashboard.link(int(index))
        except KeyError as exc:
            self.write_json({"ok": False, "error": str(exc.args[0])}, 404)
            return
        self.write_json({"ok": True, "logs": list(link.logs)})


async def relay(dashboard: Dashboard, index: Any, command: Any, properties: Any) -> dict[str, Any]:
    """Relay one command to daemon ``index``; return ``{"ok": True, "answer"}`` or
    ``{"ok": False, "error", "errno"?}`` plus an HTTP-like ``status`` code.

    A read-only dashboard (no token) relays only the reads of ``READ_COMMANDS`` but ``logs``
    (the processes' output): anything else is refused with 403 before the daemon is asked.
    """
    if not isinstance(index, int) or isinstance(index, bool):
        return {"ok": False, "status": 400, "error": "'daemon' must be an integer"}
    if not isinstance(command, str) or not command:
        return {"ok": False, "status": 400, "error": "'command' must be a command name"}
    if dashboard.auth.read_only:
        name = command.lower()
        if name == "logs":
            return {"ok": False, "status": 403, "error": OUTPUT_NEEDS_TOKEN}
        if name not in READ_COMMANDS:
            return {"ok": False, "status": 403, "error": ACTIONS_NEED_TOKEN}
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        return {"ok": False, "status": 400, "error": "'properties' must be an object"}
    try:
        link = dashboard.link(index)
        answer = await link.call(command, properties)
    except KeyError as exc:
        return {"ok": False, "status": 404, "error": str(exc.args[0])}
    except ValueError as exc:
        return {"ok": False, "status": 400, "error": str(exc)}
    except CallError as exc:
        return {"ok": False, "status": 409, "error": exc.reason, "errno": exc.errno}
    except DaemonDisconnected as exc:
        return {"ok": False, "status": 503, "error": str(exc)}
    if dashboard.auth.read_only:
        answer = _hide_env(answer)
    return {"ok": True, "status": 200, "answer": answer}


def _hide_env(answer: Any) -> Any:
    """An ``options``/``get`` answer with its environment values hidden: without a token
    the dashboard shows every local user what is configured, never its secrets."""
    options = answer.get("options") if isinstance(answer, dict) else None
    if isinstance(options, dict) and isinstance(options.get("env"), dict):
        options = {**options, "env": dict.fromkeys(options["env"], "<hidden>")}
        return {**answer, "options": options}
    return answer


class CallHandler(_Api):
    """``POST /api/daemons/N/call`` with ``{"command", "properties"}`` (JSON): relay it."""

    async def post(self, index: str) -> None:
        if not self.request.headers.get("Content-Type", "").startswith("application/json"):
            # A JSON body cannot be posted cross-site without a CORS preflight we never grant.
            self.write_json({"ok": False, "error": "send application/json"}, 415)
            return
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            self.write_json({"ok": False, "error": "body is not JSON"}, 400)
            return
        if not isinstance(body, dict):
            self.write_json({"ok": False, "error": "body must be a JSON object"}, 400)
            return
        result = await relay(
            self.dashboard, int(index), body.get("command"), body.get("properties")
        )
        status = result.pop("status")
        self.write_json(result, status)


class MetricsHandler(_Base):
    """``GET /metrics``: Prometheus text format from the cached snapshots."""

    def get(self) -> None:
        if self.current_user is None:
            self.set_status(401)
            self.set_header("WWW-Authenticate", 'Bearer realm="circushttpd"')
            self.finish("login required: send Authorization: Bearer TOKEN\n")
            return
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.dashboard.registry))


class SocketHandler(_Base, tornado.websocket.WebSocketHandler):
    """``/ws``: pushes snapshots, events and output lines; takes ``call`` messages.

    From the page: ``{"type": "call", "id", "daemon", "command", "properties"}``; answered by
    ``{"type": "answer", "id", "ok", "answer" | "error"}``. On connect the page gets ``hello``
    (the daemons, and ``read_only``), each daemon's snapshot, then ``backlog`` (recent events
    and output lines). A read-only dashboard sends no output lines and refuses actions.
    """

    def prepare(self) -> None:
        # The handshake is a GET, but the socket it opens runs commands: same origin only.
        _refuse_cross_site(self.request)
        if self.current_user is None:
            raise Refused(401, "login required")

    def check_origin(self, origin: str) -> bool:
        return cross_site({"Origin": origin}, self.request.headers.get("Host", "")) is None

    def open(self, *args: str, **kwargs: str) -> None:
        dashboard = self.dashboard
        self._tasks: set[asyncio.Task[None]] = set()
        output = not dashboard.auth.read_only
        hello = {
            "type": "hello",
            "version": __version__,
            "interval": dashboard.interval,
            "login": dashboard.auth.required,
            "read_only": not output,
            "read_only_reason": None if output else ACTIONS_NEED_TOKEN,
            "daemons": [{"index": s.index, "endpoint": s.endpoint} for s in dashboard.states()],
        }
        self.write_message(json.dumps(hello))
        for state in dashboard.states():
            self.write_message(json.dumps(state.to_json(), default=str))
        for link in dashboard.links:
            backlog = {
                "type": "backlog",
                "daemon": link.index,
                "events": list(link.events),
                "logs": list(link.logs) if output else [],
            }
            self.write_message(json.dumps(backlog, default=str))
        dashboard.hub.add(self._send, output=output)

    def _send(self, text: str) -> None:
        self.write_message(text)

    def on_message(self, message: str | bytes) -> None:
        try:
            request = json.loads(message)
        except ValueError:
            self._send(json.dumps({"type": "answer", "ok": False, "error": "not JSON"}))
            return
        if not isinstance(request, dict) or request.get("type") != "call":
            self._send(json.dumps({"type": "answer", "ok": False, "error": "unknown message"}))
            return
        task = asyncio.get_running_loop().create_task(self._call(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, request: dict[str, Any]) -> None:
        try:
            result = await relay(
                self.dashboard,
                request.get("daemon"),
                request.get("command"),
                request.get("properties"),
            )
        except Exception as exc:  # the page waits for an answer: never leave it hanging
            log.exception("relaying %r", request.get("command"))
            result = {"ok": False, "status": 500, "error": f"{type(exc).__name__}: {exc}"}
        result.pop("status")
        result.update(type="answer", id=request.get("id"), command=request.get("command"))
        try:
            self.write_message(json.dumps(result, default=str))
        except tornado.websocket.WebSocketClosedError:
            pass

    def on_close(self) -> None:
        self.dashboard.hub.discard(self._send)


def routes() -> list[tuple[str, type[tornado.web.RequestHandler]]]:
    """The URL table of the dashboard."""
    return [
        (r"/", IndexHandler),
        (r"/login", LoginHandler),
        (r"/logout", LogoutHandler),
        (r"/api/state", StateHandler),
        (r"/api/daemons/(\d+)/logs", LogsHandler),
        (r"/api/daemons/(\d+)/call", CallHandler),
        (r"/metrics", MetricsHandler),
        (r"/ws", SocketHandler),
    ]

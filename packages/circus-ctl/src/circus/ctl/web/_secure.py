"""The gate every request passes and the headers every response carries.

:class:`GuardedApplication` answers 421 to any request (page, API, static file, websocket
handshake, unknown path) whose ``Host`` is not one of the dashboard's (:mod:`._hosts`),
before any handler runs. :class:`SecureHeaders` is the base of every handler: a strict
Content-Security-Policy, no framing, no sniffing, no referrer; refusals are logged at most
once per 10 s.
"""

from __future__ import annotations

import json
import math
import socket
from http import HTTPStatus
from typing import Any

import tornado.httputil
import tornado.web
from tornado.log import access_log

from ._hosts import HostGuard, split_host
from ._ratelimit import LogThrottle

__all__ = [
    "GuardedApplication",
    "Misdirected",
    "NotFound",
    "Refused",
    "SecureHeaders",
    "StaticFiles",
    "content_security_policy",
    "local_address",
]

_REFUSALS = frozenset({401, 403, 421, 429})


def content_security_policy(host: str | None) -> str:
    """The policy for a response to a request for ``host`` (its validated ``Host``).

    The shipped page loads only its own script and stylesheet, draws on ``<canvas>`` and
    talks to its own origin: ``fetch`` and the websocket (listed by its ``ws://``/``wss://``
    URL too, for browsers where ``'self'`` does not cover websockets).
    """
    connect = "'self'"
    if host and split_host(host) is not None:
        name = host.strip().lower()
        connect += f" ws://{name} wss://{name}"
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {connect}",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        )
    )


class Refused(tornado.web.HTTPError):
    """Refuse the request with ``status`` and say why (``detail``, shown to the client).

    ``retry_after``: seconds, sent as ``Retry-After`` (for 429).
    """

    def __init__(self, status: int, detail: str, retry_after: float | None = None) -> None:
        super().__init__(status)
        self.detail = detail
        self.retry_after = retry_after


class SecureHeaders(tornado.web.RequestHandler):
    """Base of every dashboard handler: security headers on every response (errors too),
    and error bodies that say why (JSON when ``json_errors``)."""

    json_errors = False

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", content_security_policy(self._policy_host()))
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cross-Origin-Opener-Policy", "same-origin")
        self.set_header("Cross-Origin-Resource-Policy", "same-origin")

    def _policy_host(self) -> str | None:
        return self.request.headers.get("Host")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        detail = getattr(error, "detail", None) or _phrase(status_code)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            self.set_header("Retry-After", str(max(1, math.ceil(retry_after))))
        self.set_header("Cache-Control", "no-store")
        if self.json_errors:
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(json.dumps({"ok": False, "error": detail}))
        else:
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(f"{status_code} {detail}\n")


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "error"


class Misdirected(SecureHeaders):
    """Any method on any path, for a ``Host`` the dashboard does not answer for: 421."""

    def _policy_host(self) -> str | None:
        return None  # not one of ours: never echo it

    def prepare(self) -> None:
        raise Refused(
            421,
            "this dashboard does not answer for that Host; if it is served under this "
            "name, start it with --allowed-host NAME",
        )


class NotFound(SecureHeaders):
    """Unknown paths: 404, with the security headers."""

    def prepare(self) -> None:
        raise Refused(404, "not found")


class StaticFiles(SecureHeaders, tornado.web.StaticFileHandler):
    """The page's script and stylesheet, with the security headers."""


def local_address(request: tornado.httputil.HTTPServerRequest) -> tuple[str, int] | None:
    """The address and port ``request``'s connection arrived on (None: not TCP)."""
    stream = getattr(request.connection, "stream", None)
    sock = getattr(stream, "socket", None)
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        address = sock.getsockname()
    except OSError:
        return None
    return str(address[0]), int(address[1])


class GuardedApplication(tornado.web.Application):
    """A tornado application that serves only requests naming one of ``host_guard``'s
    hosts (setting ``host_guard``: a :class:`HostGuard`), and logs refusals (401, 403,
    421, 429) at most once per 10 s with the count of the ones left out."""

    def __init__(self, *args: Any, **settings: Any) -> None:
        settings.setdefault("host_guard", HostGuard())
        settings.setdefault("static_handler_class", StaticFiles)
        settings.setdefault("default_handler_class", NotFound)
        super().__init__(*args, **settings)
        self._refusals = LogThrottle()

    def find_handler(
        self, request: tornado.httputil.HTTPServerRequest, **kwargs: Any
    ) -> tornado.web._HandlerDelegate:
        guard: HostGuard = self.settings["host_guard"]
        if not guard.allows(request.headers.get("Host"), local_address(request)):
            return self.get_handler_delegate(request, Misdirected)
        return super().find_handler(request, **kwargs)

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        if handler.get_status() in _REFUSALS:
            held = self._refusals.allow()
            if held is None:
                return
            if held:
                access_log.warning("%d more refused request(s) not logged", held)
        super().log_request(handler)

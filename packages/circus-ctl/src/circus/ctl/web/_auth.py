"""Who may use the dashboard: read-only without a token (loopback only), everything with one.

The token is at least :data:`MIN_TOKEN_LENGTH` characters and is checked with a
constant-time comparison; a browser proves it once on the login page and then carries a
signed cookie, scripts (Prometheus, curl) send ``Authorization: Bearer TOKEN``. Wrong tokens
are limited per client address and overall (:class:`~._ratelimit.FailureLimiter`): past the
limit a credential is not even compared until the window has moved on.

Without a token the dashboard is only allowed on loopback, and even there it is read-only:
any local user can reach it, and it acts with its own (often root's) control connection, so
actions and the processes' output are refused (:data:`ACTIONS_NEED_TOKEN`,
:data:`OUTPUT_NEEDS_TOKEN`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

from ._ratelimit import FailureLimiter, LogThrottle
from .errors import InsecureBindError, TooManyFailures, WebError

__all__ = [
    "ACTIONS_NEED_TOKEN",
    "MIN_TOKEN_LENGTH",
    "OUTPUT_NEEDS_TOKEN",
    "TOKEN_ENV",
    "AuthPolicy",
    "is_loopback",
    "read_token",
]

TOKEN_ENV = "CIRCUSHTTPD_TOKEN"
"""Environment variable holding the dashboard's token."""

MIN_TOKEN_LENGTH = 16
"""Shortest token accepted: anything shorter is refused at start."""

log = logging.getLogger("circus.ctl.web")

COOKIE = "circushttpd_auth"

_HOW_TO_LOG_IN = (
    "start circushttpd with --token-file PATH or $CIRCUSHTTPD_TOKEN (under circusd: "
    "httpd_token_file = PATH) and log in with that token"
)

ACTIONS_NEED_TOKEN = (
    "this dashboard is read-only: actions (start, stop, restart, reload, incr, decr, signal, "
    f"kill) need a login token; {_HOW_TO_LOG_IN}"
)
"""The refusal of an action by a dashboard without a token."""

OUTPUT_NEEDS_TOKEN = (
    f"this dashboard is read-only: the processes' output needs a login token; {_HOW_TO_LOG_IN}"
)
"""The refusal of the processes' output by a dashboard without a token."""


def is_loopback(host: str) -> bool:
    """True if ``host`` (a name or an address) only resolves to loopback addresses.

    The empty string and ``0.0.0.0``/``::`` (every interface) are not loopback.
    """
    if host in ("", "*"):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def _too_short(token: str, where: str) -> WebError | None:
    if len(token) >= MIN_TOKEN_LENGTH:
        return None
    return WebError(
        f"the token in {where} is {len(token)} characters long; at least {MIN_TOKEN_LENGTH} "
        "are needed (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
    )


def read_token(token_file: str | None = None, environ: dict[str, str] | None = None) -> str | None:
    """Return the token from ``token_file`` (first line) or ``$CIRCUSHTTPD_TOKEN``, else None.

    Raises:
        WebError: the file cannot be read or is empty, or the token is shorter than
            :data:`MIN_TOKEN_LENGTH` (the message names ``--token-file PATH`` or the variable).
    """
    if token_file:
        try:
            lines = Path(token_file).read_text().splitlines()
        except OSError as exc:
            raise WebError(f"cannot read the token file {token_file}: {exc.strerror}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise WebError(f"the token file {token_file} is empty")
        where = f"--token-file {token_file}"
    else:
        env = os.environ if environ is None else environ
        token = env.get(TOKEN_ENV) or ""
        if not token:
            return None
        where = f"${TOKEN_ENV}"
    error = _too_short(token, where)
    if error is not None:
        raise error
    return token


@dataclass
class AuthPolicy:
    """Whether a login is needed, and how to check one.

    ``token`` None means no login (only allowed on loopback: see :meth:`check_bind`).
    ``cookie_secret`` signs the session cookie; a fresh one per process by default, so a
    restart logs everybody out. ``limiter`` bounds wrong tokens (5 a minute per client
    address, 50 overall, by default).

    Raises:
        WebError: ``token`` is shorter than :data:`MIN_TOKEN_LENGTH`.
    """

    token: str | None = None
    cookie_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    limiter: FailureLimiter = field(default_factory=FailureLimiter)
    _log_throttle: LogThrottle = field(default_factory=LogThrottle, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.token is not None:
            error = _too_short(self.token, "AuthPolicy(token=...)")
            if error is not None:
                raise error

    @property
    def required(self) -> bool:
        """True when requests must prove the token."""
        return self.token is not None

    @property
    def read_only(self) -> bool:
        """True when there is no token: nobody may act or read the processes' output.

        Whoever reaches a dashboard without a token (any local user, on loopback) is not
        known, so it only shows states, events and metrics; with a token, whoever logged in
        may do everything.
        """
        return self.token is None

    def check_bind(self, host: str) -> None:
        """Refuse to serve on ``host`` without a token unless it is loopback.

        Raises:
            InsecureBindError: ``host`` is reachable from elsewhere and there is no token.
        """
        if self.token is None and not is_loopback(host):
            raise InsecureBindError(host)

    def accepts(self, candidate: str | None) -> bool:
        """True if ``candidate`` is the token (always True when no login is needed).

        Constant time: both sides are hashed first, so neither the content nor the length
        of the token shows in how long a wrong guess takes.
        """
        if self.token is None:
            return True
        if not candidate:
            return False
        return hmac.compare_digest(_digest(candidate), _digest(self.token))

    def attempt(self, candidate: str | None, client: str) -> bool:
        """Check a token presented by ``client`` (its address), within the limits.

        Returns whether it is the token; a wrong one counts against ``client``.

        Raises:
            TooManyFailures: too many wrong tokens lately (from ``client`` or overall); the
                candidate was not compared.
        """
        if self.token is None:
            return True
        wait = self.limiter.retry_after(client)
        if wait is not None:
            self._note(
                f"refused a login from {client}: too many failed logins, retry in {wait:.0f} s"
            )
            raise TooManyFailures(wait)
        if self.accepts(candidate):
            return True
        self.limiter.failed(client)
        self._note(f"failed login from {client}")
        return False

    def _note(self, message: str) -> None:
        held = self._log_throttle.allow()
        if held is None:
            return
        if held:
            message += f" ({held} more refused or failed login(s) not logged)"
        log.warning(message)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()

"""Who may use the dashboard: open on loopback, a token everywhere else.

The token is checked with a constant-time comparison; a browser proves it once on the login
page and then carries a signed cookie, scripts (Prometheus, curl) send
``Authorization: Bearer TOKEN``.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InsecureBindError, WebError

__all__ = ["TOKEN_ENV", "AuthPolicy", "is_loopback", "read_token"]

TOKEN_ENV = "CIRCUSHTTPD_TOKEN"
"""Environment variable holding the dashboard's token."""

COOKIE = "circushttpd_auth"


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


def read_token(token_file: str | None = None, environ: dict[str, str] | None = None) -> str | None:
    """Return the token from ``token_file`` (first line) or ``$CIRCUSHTTPD_TOKEN``, else None.

    Raises:
        WebError: the file cannot be read or is empty.
    """
    if token_file:
        try:
            lines = Path(token_file).read_text().splitlines()
        except OSError as exc:
            raise WebError(f"cannot read the token file {token_file}: {exc.strerror}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise WebError(f"the token file {token_file} is empty")
        return token
    env = os.environ if environ is None else environ
    return env.get(TOKEN_ENV) or None


@dataclass
class AuthPolicy:
    """Whether a login is needed, and how to check one.

    ``token`` None means no login (only allowed on loopback: see :meth:`check_bind`).
    ``cookie_secret`` signs the session cookie; a fresh one per process by default, so a
    restart logs everybody out.
    """

    token: str | None = None
    cookie_secret: str = field(default_factory=lambda: secrets.token_hex(32))

    @property
    def required(self) -> bool:
        """True when requests must prove the token."""
        return self.token is not None

    def check_bind(self, host: str) -> None:
        """Refuse to serve on ``host`` without a token unless it is loopback.

        Raises:
            InsecureBindError: ``host`` is reachable from elsewhere and there is no token.
        """
        if self.token is None and not is_loopback(host):
            raise InsecureBindError(host)

    def accepts(self, candidate: str | None) -> bool:
        """True if ``candidate`` is the token (always True when no login is needed)."""
        if self.token is None:
            return True
        if not candidate:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())

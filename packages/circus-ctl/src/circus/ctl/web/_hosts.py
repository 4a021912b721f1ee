"""Which ``Host`` a request may name, and which requests count as same-origin.

A page on ``evil.example`` whose name the attacker re-points at 127.0.0.1 (DNS rebinding) is
same-origin with itself in the browser, so neither the Origin check nor cookies stop it;
only its ``Host: evil.example`` header gives it away. The dashboard therefore answers only
requests naming a host it knows: the address and port the connection arrived on,
``localhost``, ``127.0.0.1`` and ``[::1]`` with that port, and the names an operator lists
(``--allowed-host``) for a reverse proxy. Pure functions, no tornado.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import WebError

__all__ = [
    "ALLOWED_HOSTS_ENV",
    "LOOPBACK_NAMES",
    "HostGuard",
    "allowed_hosts_from_env",
    "cross_site",
    "split_host",
]

ALLOWED_HOSTS_ENV = "CIRCUSHTTPD_ALLOWED_HOSTS"
"""Environment variable with more allowed host names (comma or space separated)."""

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
"""Names always allowed, with the port the dashboard listens on."""

_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")


def split_host(value: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of a ``Host`` header value (lowercased; an IP literal in its
    canonical form, IPv6 without brackets; port None when absent), or None when the value
    is not a plain ``name[:port]``, ``IPv4[:port]`` or ``[IPv6][:port]``."""
    text = value.strip().lower()
    digits: str | None
    if text.startswith("["):
        address, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        digits = rest[1:] if rest else None
        try:
            host = _canonical(ipaddress.IPv6Address(address))
        except ValueError:
            return None
    else:
        name, sep, digits = text.rpartition(":")
        if not sep:
            name, digits = digits, None
        try:
            host = _canonical(ipaddress.IPv4Address(name))
        except ValueError:
            if not _NAME.fullmatch(name):
                return None
            host = name
    if digits is None:
        return host, None
    if not _PORT.fullmatch(digits) or not 0 < int(digits) <= 65535:
        return None
    return host, int(digits)


def _canonical(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def allowed_hosts_from_env(environ: Mapping[str, str]) -> list[str]:
    """The names listed in ``$CIRCUSHTTPD_ALLOWED_HOSTS`` (comma or space separated)."""
    return [name for name in re.split(r"[\s,]+", environ.get(ALLOWED_HOSTS_ENV, "")) if name]


@dataclass(frozen=True)
class HostGuard:
    """Decides whether a request's ``Host`` header names this dashboard.

    ``extra``: ``name`` (any port) or ``name:port`` entries, e.g. the public name of a
    reverse proxy in front of the dashboard.

    Raises:
        WebError: an ``extra`` entry is not a plain host name, address or ``host:port``.
    """

    extra: tuple[tuple[str, int | None], ...] = ()

    @classmethod
    def allowing(cls, names: Iterable[str]) -> HostGuard:
        """A guard that also allows ``names`` (see the class docstring)."""
        extra = []
        for name in names:
            parsed = split_host(name)
            if parsed is None or not name.strip():
                raise WebError(
                    f"not an allowed host: {name!r} (give a host name or address, "
                    "optionally with :PORT, without a scheme or path)"
                )
            extra.append(parsed)
        return cls(tuple(extra))

    def allows(self, header: str | None, local: tuple[str, int] | None) -> bool:
        """True when ``header`` (the request's ``Host``) names this dashboard.

        ``local``: the address and port the connection arrived on (None when unknown, e.g.
        a unix socket: then the loopback names are allowed on any port). A missing port
        means 80, as the browser would have used.
        """
        if not header:
            return False
        parsed = split_host(header)
        if parsed is None:
            return False
        host, port = parsed
        for name, wanted in self.extra:
            if host == name and (wanted is None or wanted == (port or 80)):
                return True
        if local is None:
            return host in LOOPBACK_NAMES
        local_host, local_port = local
        if (port or 80) != local_port:
            return False
        return host in LOOPBACK_NAMES or host == _local_name(local_host)


def _local_name(address: str) -> str:
    try:
        return _canonical(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return address.lower()


def cross_site(headers: Mapping[str, str], host: str) -> str | None:
    """Why a request with these headers did not come from the dashboard's own page (None:
    it may have).

    A browser that sends ``Sec-Fetch-Site`` (a header pages cannot set) is believed: only
    ``same-origin`` and ``none`` (typed by the user) pass. Without it, the ``Origin`` must
    be ``http(s)://`` + ``host`` (the request's ``Host``); ``null`` never passes. Our own
    pages say ``Referrer-Policy: no-referrer``, under which browsers send ``Origin: null`` on
    form posts, hence ``Sec-Fetch-Site`` first. A request with neither header is not from
    a browser page (curl, Prometheus) and passes.
    """
    site = headers.get("Sec-Fetch-Site")
    if site is not None:
        return (
            None if site.strip().lower() in ("same-origin", "none") else f"Sec-Fetch-Site: {site}"
        )
    origin = headers.get("Origin")
    if origin is None:
        return None
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.strip().lower():
        return f"Origin {origin!r}"
    return None

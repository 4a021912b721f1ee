"""``[unix_http_server]`` and ``[inet_http_server]``: where Supervisor's control API listens
and with which credentials (``[supervisorctl]`` only configures the client: nothing to read).

Each parser takes the section (``%(here)s`` and ``%(ENV_X)s`` already expanded); a bad value
raises the section's ``ConfigError`` naming file, line, option and value.
"""

from __future__ import annotations

import grp
import os
import pwd
from typing import Any, Protocol

from ._http import HttpServerSpec

__all__ = ["Section", "parse_inet_http_server", "parse_unix_http_server"]


class Section(Protocol):
    """What the parsers read of a section (the loader's ``SupSection``)."""

    filename: str
    lineno: int

    def get(self, key: str, default: str | None = None) -> str | None: ...

    def error(self, key: str | None, expected: str) -> Exception: ...

    def warn(self, key: str | None, message: str) -> None: ...


_UNIX_OPTIONS = frozenset({"file", "chmod", "chown", "username", "password"})
_INET_OPTIONS = frozenset({"port", "username", "password"})


def _warn_unknown(section: Any, known: frozenset[str]) -> None:
    options = getattr(section, "options", None) or {}
    for key in options:
        if key not in known:
            section.warn(key, "unknown option (Supervisor ignores it); ignored")


def _where(section: Any) -> str:
    return f"{section.filename}:{section.lineno}"


def _credentials(section: Section) -> tuple[str | None, str | None]:
    username = (section.get("username") or "").strip() or None
    password = section.get("password") or None
    if password is not None and username is None:
        raise section.error("password", "a password needs a username")
    if username is not None and password is None:
        password = ""
    return username, password


def parse_unix_http_server(section: Section) -> HttpServerSpec:
    """``[unix_http_server]``: ``file`` (required), ``chmod`` (octal, default 0700),
    ``chown`` (``user`` or ``user:group``), ``username``, ``password``.

    Raises:
        ConfigError: a missing ``file``, a bad mode, an unknown user or group.
    """
    _warn_unknown(section, _UNIX_OPTIONS)
    path = (section.get("file") or "").strip()
    if not path:
        raise section.error("file", "the socket's path is required")
    path = os.path.abspath(os.path.expanduser(path))
    if len(path.encode()) > 107:
        raise section.error("file", "a unix socket path of at most 107 bytes")
    mode_text = (section.get("chmod") or "0700").strip()
    try:
        mode = int(mode_text, 8)
    except ValueError:
        raise section.error("chmod", "an octal mode such as 0700") from None
    if not 0 <= mode <= 0o7777:
        raise section.error("chmod", "an octal mode such as 0700")
    chown = None
    owner_text = (section.get("chown") or "").strip()
    if owner_text:
        user, _, group = owner_text.partition(":")
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise section.error("chown", "an existing user (user or user:group)") from None
        gid = entry.pw_gid
        if group:
            try:
                gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
            except KeyError:
                raise section.error("chown", "an existing group (user:group)") from None
        chown = (entry.pw_uid, gid)
    username, password = _credentials(section)
    return HttpServerSpec(
        kind="unix",
        path=path,
        chmod=mode,
        chown=chown,
        username=username,
        password=password,
        where=_where(section),
    )


def parse_inet_http_server(section: Section) -> HttpServerSpec:
    """``[inet_http_server]``: ``port`` (``host:port``, ``*:port`` or ``port``; required),
    ``username``, ``password``.

    Raises:
        ConfigError: a missing or bad ``port``.
    """
    _warn_unknown(section, _INET_OPTIONS)
    text = (section.get("port") or "").strip()
    if not text:
        raise section.error("port", "host:port")
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.strip("[]")
    if host == "*":
        host = ""
    try:
        port = int(port_text)
    except ValueError:
        raise section.error("port", "host:port with a numeric port") from None
    if not 0 <= port <= 65535:
        raise section.error("port", "a port between 0 and 65535")
    username, password = _credentials(section)
    return HttpServerSpec(
        kind="inet",
        host=host,
        port=port,
        username=username,
        password=password,
        where=_where(section),
    )

"""Probe addresses: what ``readiness`` and ``liveness`` accept, parsed (standard library only,
so the option table and the daemon's config loader read them without asyncio).

Forms: ``notify``, ``tcp://HOST:PORT``, ``http://HOST:PORT/PATH``, ``exec:COMMAND``. A
value holding ``$(circus.X)`` tokens is checked for its form only (its host and port are
known once the tokens are substituted, per process, at spawn).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ProbeKind", "ProbeSpec", "is_template", "parse_probe", "to_probe"]

ProbeKind = Literal["notify", "tcp", "http", "exec"]

_MAX_TEXT = 4096  # a probe address or command longer than this is a mistake
_TEMPLATE = re.compile(r"\$\(\s*circus\.|\(\(\s*circus\.", re.IGNORECASE)
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]{2,45}$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-]{0,252})$")
_FORMS = "notify, tcp://HOST:PORT, http://HOST:PORT/PATH or exec:COMMAND"


@dataclass(frozen=True)
class ProbeSpec:
    """One parsed probe.

    Attributes:
        kind: ``"notify"``, ``"tcp"``, ``"http"`` or ``"exec"``.
        text: the probe as written (after template substitution).
        host: the host of a tcp/http probe ("" otherwise).
        port: the port of a tcp/http probe (0 otherwise).
        path: the request path of an http probe, with its query ("/" by default).
        command: the shell command of an exec probe ("" otherwise).
    """

    kind: ProbeKind
    text: str
    host: str = ""
    port: int = 0
    path: str = "/"
    command: str = ""


def is_template(text: str) -> bool:
    """Whether ``text`` holds a ``$(circus.X)`` token (substituted per process at spawn)."""
    return bool(_TEMPLATE.search(text))


def parse_probe(text: str) -> ProbeSpec:
    """Parse one probe address.

    Raises:
        ValueError: not one of the forms, with a message saying which part is wrong.
    """
    if not isinstance(text, str):
        raise ValueError(f"a probe must be a string ({_FORMS})")
    value = text.strip()
    if not value:
        raise ValueError(f"a probe cannot be empty ({_FORMS})")
    if len(value) > _MAX_TEXT:
        raise ValueError(f"a probe is at most {_MAX_TEXT} characters")
    if "\x00" in value:
        raise ValueError("a probe cannot hold a NUL character")
    lower = value.lower()
    if lower == "notify":
        return ProbeSpec("notify", value)
    if lower.startswith("exec:"):
        command = value[5:].strip()
        if not command:
            raise ValueError("exec: needs a command (exec:COMMAND)")
        return ProbeSpec("exec", value, command=command)
    for scheme in ("tcp", "http"):
        prefix = scheme + "://"
        if lower.startswith(prefix):
            rest = value[len(prefix) :]
            hostport, slash, tail = rest.partition("/")
            if scheme == "tcp" and slash and tail:
                raise ValueError(f"tcp:// takes no path: {value!r} (tcp://HOST:PORT)")
            host, port = _host_port(hostport, scheme)
            path = "/" + tail if scheme == "http" else "/"
            if any(ch.isspace() or ord(ch) < 32 for ch in path):
                raise ValueError(f"an http probe path cannot hold spaces or controls: {value!r}")
            return ProbeSpec(scheme, value, host=host, port=port, path=path)
    raise ValueError(f"unknown probe {value!r}: expected {_FORMS}")


def _host_port(text: str, scheme: str) -> tuple[str, int]:
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"{scheme}:// needs [IPV6]:PORT, got {text!r}")
        port_text = rest[1:]
        if not host or not _IPV6.match(host):
            raise ValueError(f"{host!r} is not an IPv6 address")
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon or not host:
            raise ValueError(f"{scheme}:// needs HOST:PORT, got {text!r}")
        if not _HOSTNAME.match(host):
            raise ValueError(f"{host!r} is not a host name or address")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{port_text!r} is not a port (1 to 65535)")
    return host, int(port_text)


def to_probe(value: Any) -> str | None:
    """The option value of ``readiness``/``liveness``: None (or empty) for none, else the
    probe text, checked (its form only when it holds template tokens).

    Raises:
        ValueError: not a probe (an ``Explained`` one, whose message says why).
    """
    from ._convert import Explained

    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(value)
    text = value.strip()
    if not text or text.lower() == "none":
        return None
    try:
        if is_template(text):
            lower = text.lower()
            if not lower.startswith(("tcp://", "http://", "exec:")):
                parse_probe(text)  # says which form is wrong
        else:
            parse_probe(text)
    except ValueError as exc:
        raise Explained(str(exc)) from None
    return text

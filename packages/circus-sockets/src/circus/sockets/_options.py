"""Parsing of ``[socket:NAME]`` option values, from Python values or INI strings.

Every parser returns the normalised value or raises ValueError with a message saying what was
expected; CircusSocket turns that into a SocketError naming the socket.
"""

from __future__ import annotations

import socket
from typing import Any

FAMILIES: dict[str, int] = {
    "AF_INET": socket.AF_INET,
    "AF_INET6": socket.AF_INET6,
    "AF_UNIX": socket.AF_UNIX,
}

TYPES: dict[str, int] = {
    name: getattr(socket, name)
    for name in ("SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "SOCK_RDM", "SOCK_SEQPACKET")
    if hasattr(socket, name)
}

#: Types that accept connections, hence get ``listen()``.
LISTENING_TYPES = frozenset(
    t for t in (socket.SOCK_STREAM, getattr(socket, "SOCK_SEQPACKET", None)) if t is not None
)

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def _lookup(value: Any, table: dict[str, int], prefix: str, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected one of {', '.join(table)} or its number, got {value!r}")
    if isinstance(value, int):
        if value in table.values():
            return int(value)
        raise ValueError(f"unsupported {what} number {value}; expected one of {', '.join(table)}")
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return _lookup(int(text), table, prefix, what)
        key = text.upper()
        if not key.startswith(prefix):
            key = prefix + key
        if key in table:
            return table[key]
    raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(table)}")


def parse_family(value: Any) -> int:
    """AF_INET / AF_INET6 / AF_UNIX as a name ('AF_INET', 'inet6', case-insensitive) or int."""
    return _lookup(value, FAMILIES, "AF_", "family")


def parse_type(value: Any) -> int:
    """SOCK_STREAM, SOCK_DGRAM, ... as a name ('SOCK_DGRAM', 'dgram') or int."""
    return _lookup(value, TYPES, "SOCK_", "type")


def parse_proto(value: Any) -> int:
    """A protocol number: an int, a digit string, a name known to getprotobyname ('tcp') or
    an ``IPPROTO_*`` constant name ('IPPROTO_UDP', 'udp' when /etc/protocols is missing)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a protocol name or number, got {value!r}")
    if value is None:
        return 0
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"protocol number must be >= 0, got {value}")
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0
        if text.isdigit():
            return int(text)
        try:
            return socket.getprotobyname(text)
        except OSError:
            pass
        # /etc/protocols is often absent in containers: fall back to the module constants.
        key = text.upper()
        if not key.startswith("IPPROTO_"):
            key = "IPPROTO_" + key
        number = getattr(socket, key, None)
        if isinstance(number, int):
            return number
    raise ValueError(f"unknown protocol {value!r}; expected a name like 'tcp' or a number")


def parse_bool(value: Any) -> bool:
    """A boolean, or one of yes/true/on/1 and no/false/off/0 (any case), as circus accepts."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(f"expected a boolean (yes/no, true/false, on/off, 1/0), got {value!r}")


def parse_int(value: Any, what: str, *, low: int = 0, high: int | None = None) -> int:
    """An int within [low, high], from an int or a decimal string."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text, 10)
        except ValueError:
            raise ValueError(f"{what} must be an integer, got {text!r}") from None
    if not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{what} must be {bounds}, got {value}")
    return value


def parse_port(value: Any) -> int:
    """A TCP/UDP port, 0 (ephemeral) to 65535."""
    return parse_int(value, "port", low=0, high=65535)


def parse_umask(value: Any) -> int:
    """A umask: an int is taken as the mode bits themselves (``0o022``); a string is read as
    **octal** like the shell's ``umask`` ("022", "0o22", "22" all mean 0o022).

    Upstream Circus reads the INI string as decimal, so its ``umask = 022`` means 0o026; we do
    what the operator meant instead (documented in the README).
    """
    if isinstance(value, bool):
        raise ValueError(f"umask must be an integer or an octal string, got {value!r}")
    if isinstance(value, str):
        text = value.strip().lower()
        digits = text[2:] if text.startswith("0o") else text
        try:
            value = int(digits, 8)
        except ValueError:
            raise ValueError(f"umask must be octal like '022' or '0o22', got {text!r}") from None
    if not isinstance(value, int) or not 0 <= value <= 0o777:
        raise ValueError(f"umask must be between 0 and 0o777, got {value!r}")
    return value

"""Parsing of ``[socket:NAME]`` option values, from Python values or INI strings.

Every parser returns the normalised value or raises ValueError with a message saying what was
expected; CircusSocket turns that into a SocketError naming the socket. Numbers are held to
:data:`CEILINGS`, and a message echoes at most ~100 characters of the value it was given.
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

#: The largest value each number option takes. ``port``: the TCP/UDP port range.
#: ``backlog``: ``listen()`` takes a C int and the kernel silently lowers any value to
#: net.core.somaxconn anyway; a million is above every sysctl seen in practice.
#: ``proto``: protocol numbers (IPPROTO_MPTCP is 262).
#: The config loader keeps the same numbers (it may not import this package; a test in
#: circus-arbiter checks they agree).
CEILINGS: dict[str, int] = {"port": 65535, "backlog": 1_000_000, "proto": 65535}

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def _shown(value: Any) -> str:
    """``repr(value)`` cut to about 100 characters (integers of any size included)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 300:
        return "<an integer of more than 90 digits>"
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 100 else f"{text[:75]}... ({len(text)} characters)"


def _lookup(value: Any, table: dict[str, int], prefix: str, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected one of {', '.join(table)} or its number, got {_shown(value)}")
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
    raise ValueError(f"unknown {what} {_shown(value)}; expected one of {', '.join(table)}")


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
        raise ValueError(f"expected a protocol name or number, got {_shown(value)}")
    if value is None:
        return 0
    if isinstance(value, int):
        return parse_int(value, "proto")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0
        if text.isdigit():
            return parse_int(text, "proto")
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
    raise ValueError(f"unknown protocol {_shown(value)}; expected a name like 'tcp' or a number")


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
    raise ValueError(f"expected a boolean (yes/no, true/false, on/off, 1/0), got {_shown(value)}")


def parse_int(value: Any, what: str, *, low: int = 0, high: int | None = None) -> int:
    """An int within [low, high], from an int or a decimal string; ``high`` defaults to
    ``CEILINGS[what]`` (no ceiling for a name not in the table)."""
    if high is None:
        high = CEILINGS.get(what)
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, got {_shown(value)}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text, 10)
        except ValueError:
            raise ValueError(f"{what} must be an integer, got {_shown(text)}") from None
    if not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {_shown(value)}")
    if value < low:
        raise ValueError(f"{what} must be >= {low}, got {_shown(value)}")
    if high is not None and value > high:
        raise ValueError(
            f"{what} must be between {low} and {high} (its ceiling), got {_shown(value)}"
        )
    return value


def parse_port(value: Any) -> int:
    """A TCP/UDP port, 0 (ephemeral) to 65535."""
    return parse_int(value, "port", low=0)


def parse_umask(value: Any) -> int:
    """A umask: an int is taken as the mode bits themselves (``0o022``); a string is read as
    **octal** like the shell's ``umask`` ("022", "0o22", "22" all mean 0o022).

    Upstream Circus reads the INI string as decimal, so its ``umask = 022`` means 0o026; we do
    what the operator meant instead (documented in the README).
    """
    if isinstance(value, bool):
        raise ValueError(f"umask must be an integer or an octal string, got {_shown(value)}")
    if isinstance(value, str):
        text = value.strip().lower()
        digits = text[2:] if text.startswith("0o") else text
        try:
            value = int(digits, 8)
        except ValueError:
            raise ValueError(
                f"umask must be octal like '022' or '0o22', got {_shown(text)}"
            ) from None
    if not isinstance(value, int) or not 0 <= value <= 0o777:
        raise ValueError(f"umask must be between 0 and 0o777, got {_shown(value)}")
    return value

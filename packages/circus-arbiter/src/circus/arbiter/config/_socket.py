"""``[socket:NAME]`` → :class:`SocketConfig` (spec/config.md §5)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from ._convert import EXPECTED_BOOL, EXPECTED_OCTAL, to_bool, to_int, to_octal
from ._model import SocketConfig
from ._section import SectionView

__all__ = ["parse_socket", "SOCKET_OPTIONS"]

_FAMILIES = {"AF_INET": socket.AF_INET, "AF_INET6": socket.AF_INET6, "AF_UNIX": socket.AF_UNIX}
_TYPES = {
    name: getattr(socket, name)
    for name in ("SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "SOCK_RDM", "SOCK_SEQPACKET")
    if hasattr(socket, name)
}


def _named(table: dict[str, Any], prefix: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        name = text.strip().upper()
        if not name.startswith(prefix):
            name = prefix + name
        if name not in table:
            raise ValueError(text)
        return table[name]

    return convert


# The socket layer's CEILINGS (circus.sockets._options), which this loader may not import to
# stay light; a test checks the two agree.
SOCKET_CEILINGS = {"port": 65535, "backlog": 1_000_000, "proto": 65535}


def _at_most(option: str, value: int, text: str) -> int:
    if value > SOCKET_CEILINGS[option]:
        raise ValueError(text)
    return value


def _proto(text: str) -> int:
    value = text.strip()
    if not value:
        return 0
    if value.isdigit():
        return _at_most("proto", int(value), text)
    try:
        return socket.getprotobyname(value)
    except OSError:
        raise ValueError(text) from None


def _port(text: str) -> int:
    return _at_most("port", to_int(text, 0), text)


SOCKET_OPTIONS: dict[str, tuple[Callable[[str], Any], Any, str]] = {
    "host": (str.strip, "localhost", ""),
    "port": (_port, 8080, "expected a port number between 0 and 65535"),
    "family": (_named(_FAMILIES, "AF_"), socket.AF_INET, "expected one of " + ", ".join(_FAMILIES)),
    "type": (_named(_TYPES, "SOCK_"), socket.SOCK_STREAM, "expected one of " + ", ".join(_TYPES)),
    "proto": (
        _proto,
        0,
        f"expected a protocol name (tcp, udp...) or a number <= {SOCKET_CEILINGS['proto']}",
    ),
    "backlog": (
        lambda t: _at_most("backlog", to_int(t, 0), t),
        2048,
        f"expected an integer >= 0 and <= {SOCKET_CEILINGS['backlog']} (its ceiling)",
    ),
    "path": (str.strip, None, ""),
    "umask": (to_octal, 8, EXPECTED_OCTAL),
    "replace": (to_bool, False, EXPECTED_BOOL),
    "interface": (str.strip, None, ""),
    "so_reuseport": (to_bool, False, EXPECTED_BOOL),
    "blocking": (to_bool, False, EXPECTED_BOOL),
}


def parse_socket(view: SectionView, name: str) -> SocketConfig:
    """Validate one socket section; ``name`` must already be lowercased.

    ``umask`` is read as octal (upstream reads it as decimal, so ``022`` meant 0o026); a
    ``path`` forces ``family = AF_UNIX``. Unknown keys are ignored (warning when close to a
    known one).

    Raises:
        ConfigError: an empty name or a badly typed value.
    """
    if not name:
        raise view.error(None, "expected a socket name after 'socket:'")
    kwargs: dict[str, Any] = {"name": name}
    for option, (convert, default, expected) in SOCKET_OPTIONS.items():
        kwargs[option] = view.get(option, convert, default, expected)
    if kwargs["path"]:
        kwargs["family"] = socket.AF_UNIX
    elif kwargs["family"] == socket.AF_UNIX:
        raise view.error("family", "AF_UNIX needs a path")
    for key in view.names():
        if key not in SOCKET_OPTIONS:
            view.check_unknown(key, SOCKET_OPTIONS, "socket option")
    return SocketConfig(name=name, options=kwargs, filename=view.filename, lineno=view.lineno)

"""The rights of the control channel: what a request needs.

Each right includes those below it; :func:`needed_right` classifies a command of the
protocol table (read-only commands need READ; operating, changing what runs, and everything
else, ADMIN). Who is granted what is :mod:`._policy`'s business.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from circus.ctl.protocol import COMMANDS

from ._errors import MessageError

__all__ = [
    "ACCESS_CHOICES",
    "GRANTED_TO_OTHERS",
    "OPERATE_COMMANDS",
    "Refused",
    "Right",
    "needed_right",
    "parse_access",
]

ACCESS_CHOICES = ("read", "operate", "full")


class Right(enum.IntEnum):
    """What a request needs, and what a peer is granted (each includes those below it)."""

    READ = 1
    OPERATE = 2
    CHANGE = 3  # add/set, checked option by option for an owner
    ADMIN = 4

    def words(self) -> str:
        """How answers and logs name it."""
        return _WORDS[self]


_WORDS = {
    Right.READ: "read",
    Right.OPERATE: "operate",
    Right.CHANGE: "change what runs",
    Right.ADMIN: "admin",
}

#: Commands that act on what is configured without changing it.
OPERATE_COMMANDS = frozenset(
    {"start", "stop", "restart", "reload", "signal", "kill", "incr", "decr", "rm", "quit"}
)
_CHANGE_COMMANDS = frozenset({"add", "set"})

#: What ``[circus] unauthenticated_access`` grants a peer that is neither admin nor owner.
GRANTED_TO_OTHERS = {"read": Right.READ, "operate": Right.OPERATE, "full": Right.ADMIN}


class Refused(MessageError):
    """A request the peer has no right to make (errno 3, as upstream's endpoint_owner check)."""


def parse_access(text: object) -> str:
    """``unauthenticated_access``: one of :data:`ACCESS_CHOICES` (any case).

    Raises:
        ValueError: anything else.
    """
    value = str(text).strip().lower()
    if value not in ACCESS_CHOICES:
        raise ValueError(text)
    return value


def needed_right(command: str, props: Mapping[str, Any]) -> Right:
    """The right ``command`` needs: read-only commands of the protocol table need
    :attr:`Right.READ`; ``restart`` without a name (the whole arbiter, config re-read),
    ``reloadconfig``, ``ipython`` and any command not classified need :attr:`Right.ADMIN`."""
    spec = COMMANDS.get(command)
    if spec is not None and spec.read_only:
        return Right.READ
    if command == "restart" and props.get("name") is None:
        return Right.ADMIN
    if command in OPERATE_COMMANDS:
        return Right.OPERATE
    if command in _CHANGE_COMMANDS:
        return Right.CHANGE
    return Right.ADMIN

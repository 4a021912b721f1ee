"""Exceptions of the circus.arbiter layer.

Command handlers raise :class:`CommandError` subclasses; the controller turns each into an error
answer carrying its ``errno`` (spec/protocol.md §1.3), so nothing from a lower layer leaks into
an answer as a traceback. The numbers are :class:`circus.ctl.protocol.Errno`'s, the one table.
"""

from __future__ import annotations

from circus.ctl.protocol import Errno

__all__ = [
    "ArbiterError",
    "CommandError",
    "MessageError",
    "NotFoundError",
    "ConflictError",
    "UpstreamCircusInstalled",
]


class ArbiterError(Exception):
    """Base class of every error raised by circus.arbiter."""


class CommandError(ArbiterError):
    """A control command failed; ``errno`` says how (spec/protocol.md §1.3)."""

    errno: Errno = Errno.COMMAND_ERROR

    def __init__(self, reason: str, errno: Errno | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if errno is not None:
            self.errno = errno


class MessageError(CommandError):
    """The request is malformed: missing or wrongly typed property, bad value (errno 3)."""

    errno = Errno.MESSAGE_ERROR


class NotFoundError(MessageError):
    """The named watcher, process, option or socket does not exist (errno 3)."""


class ConflictError(CommandError):
    """The command cannot run in the daemon's current state (errno 5)."""

    errno = Errno.COMMAND_ERROR


class UpstreamCircusInstalled(ArbiterError):
    """Upstream Circus shares the ``circus`` import name in this environment."""

"""Exceptions raised by circus.ctl: protocol violations, error answers, unreachable daemons.

This module imports nothing but the standard library so the daemon side can use it together
with :mod:`circus.ctl.protocol` without pulling in ZeroMQ.
"""

from __future__ import annotations

from typing import Any

from ._errno import Errno

__all__ = [
    "CallError",
    "CallTimeout",
    "CtlError",
    "DaemonUnreachable",
    "ProtocolError",
]


class CtlError(Exception):
    """Base class of every error raised by circus.ctl."""


class ProtocolError(CtlError):
    """A message does not follow the Circus wire protocol.

    ``errno`` is the protocol error number (see :class:`circus.ctl.protocol.Errno`) a daemon
    should answer with, so a server can turn this exception straight into an error answer.
    """

    def __init__(self, reason: str, errno: int = Errno.MESSAGE_ERROR) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errno = errno
        self.request_id: Any = None  # the request's id, when decode_request could read it
        self.cast = False  # the sender asked for no answer


class CallError(CtlError):
    """The daemon answered a command with ``status: error``.

    ``reason``, ``errno`` and ``tb`` are copied from the answer; ``answer`` is the whole
    decoded answer object.
    """

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.reason = str(answer.get("reason", "unknown error"))
        errno = answer.get("errno", Errno.NOT_SPECIFIED)
        self.errno = errno if isinstance(errno, int) else Errno.NOT_SPECIFIED
        self.tb = answer.get("tb")
        super().__init__(self.reason)


class DaemonUnreachable(CtlError, ConnectionError):
    """No daemon accepted a connection on the endpoint within the timeout.

    ``endpoint`` names the address that was tried.
    """

    def __init__(self, endpoint: str, timeout: float, detail: str = "") -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        message = f"no circusd answering on {endpoint} (waited {timeout:g}s)"
        if detail:
            message += f": {detail}"
        super().__init__(message)


class CallTimeout(CtlError, TimeoutError):
    """A daemon is connected but did not answer within the timeout.

    ``endpoint`` names the address, ``command`` the command that got no answer.
    """

    def __init__(self, endpoint: str, timeout: float, command: str = "") -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.command = command
        what = f"{command!r} " if command else ""
        super().__init__(f"timed out: no answer to {what}from {endpoint} within {timeout:g}s")

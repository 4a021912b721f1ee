"""Which error answer an exception raised by a command gets: one table, by exception class.

The controller is the one seam where exceptions become answers (``spec/protocol.md`` §1.3);
it asks :func:`answer_for`. The ``errno`` is a :class:`circus.ctl.protocol.Errno`, the one
table of numbers. Classes are tried most specific first, the first match wins:

* our ``CommandError`` (``MessageError``, ``NotFoundError``, ``Refused``, ``ConflictError``):
  its own ``errno`` and ``reason``;
* ``circus.watcher``'s bad input: ``OptionError`` (``CeilingError``, ``HookError``),
  ``UnknownOptionError``, ``ProcessNotFoundError``: errno 3;
* the rest of the lower layers' errors: ``circus.watcher.WatcherError`` (``SpawnFailedError``,
  ``ResourceShortage``), ``circus.process.ProcessError`` (``SpawnError``, ``StreamError``,
  ``ProcessStateError``, ``ProcessGoneError``), ``circus.sockets.SocketError``
  (``SocketOptionError``): errno 5;
* ``OSError``: errno 4.

These answers carry the exception's message (its class name if it has none; an ``OSError``'s
message as it is) and no traceback: the message already names the option, process or socket.
Anything else is a bug: errno 5, reason ``command b'<request>': <message>``, the traceback in
``tb``, and the caller logs it. The lower layers' errors come before ``OSError`` so that a
socket that cannot be bound stays errno 5 whatever its bases.
"""

from __future__ import annotations

import functools
import traceback

from circus.ctl.protocol import Errno

from ._errors import CommandError

__all__ = ["Answer", "answer_for", "errno_for", "errno_table"]

Answer = tuple[Errno, str, str | None]
"""``(errno, reason, traceback or None)`` of an error answer."""


@functools.cache
def errno_table() -> tuple[tuple[type[BaseException], Errno], ...]:
    """``(exception class, errno)`` pairs, most specific first, for what is not a
    ``CommandError`` (those carry their own errno)."""
    # Imported on first use: a daemon without sockets never loads circus.sockets
    # (7 modules, ~140 KiB of RSS, measured), and only a failed command needs the table.
    from circus.process import ProcessError
    from circus.sockets import SocketError
    from circus.watcher import (
        OptionError,
        ProcessNotFoundError,
        UnknownOptionError,
        WatcherError,
    )

    return (
        (OptionError, Errno.MESSAGE_ERROR),
        (UnknownOptionError, Errno.MESSAGE_ERROR),
        (ProcessNotFoundError, Errno.MESSAGE_ERROR),
        (WatcherError, Errno.COMMAND_ERROR),
        (ProcessError, Errno.COMMAND_ERROR),
        (SocketError, Errno.COMMAND_ERROR),
        (OSError, Errno.OS_ERROR),
    )


def errno_for(exc: BaseException) -> Errno | None:
    """The errno the table gives ``exc``; ``None``: not in the table (an unexpected error)."""
    if isinstance(exc, CommandError):
        return exc.errno
    for cls, errno in errno_table():
        if isinstance(exc, cls):
            return errno
    return None


def answer_for(exc: BaseException, payload: bytes) -> tuple[Answer, bool]:
    """The error answer for ``exc``, raised while running the request ``payload``, and
    whether it was unexpected (then the caller logs it; the answer carries the traceback)."""
    if isinstance(exc, CommandError):
        return (exc.errno, exc.reason, None), False
    errno = errno_for(exc)
    if errno is Errno.OS_ERROR:
        return (errno, str(exc), None), False
    if errno is not None:
        return (errno, str(exc) or type(exc).__name__, None), False
    tb = "".join(traceback.format_exception(exc))
    return (Errno.COMMAND_ERROR, f"command {payload!r}: {exc}", tb), True

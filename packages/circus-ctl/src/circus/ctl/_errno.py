"""The protocol's error numbers: the one table, published as :class:`circus.ctl.protocol.Errno`.

A leaf module (standard library only, no import of its own package) so that
:mod:`circus.ctl.errors` and the command table can name the numbers without an import cycle
through :mod:`circus.ctl.protocol`.
"""

from __future__ import annotations

import enum

__all__ = ["Errno"]


class Errno(enum.IntEnum):
    """The ``errno`` of an error answer (``spec/protocol.md`` §1.3); Circus 0.19's numbers.

    Every error answer carries one of these; no other definition of the numbers exists in
    circus.ctl or circus.arbiter, which name them (``Errno.MESSAGE_ERROR``), never write them.

    ======  ====================  ==========================================================
    errno   name                  answered for
    ======  ====================  ==========================================================
    0       NOT_SPECIFIED         nothing the daemon sends; a client's value for an answer
                                  without an ``errno``
    1       INVALID_JSON          a frame that is not UTF-8 JSON (``json invalid``)
    2       UNKNOWN_COMMAND       ``unknown command: 'name'``
    3       MESSAGE_ERROR         a malformed request, a missing or wrongly typed property, a
                                  bad option value, an unknown watcher, process, option or
                                  socket, a refusal (the peer lacks the right)
    4       OS_ERROR              an ``OSError`` raised while the command ran
    5       COMMAND_ERROR         the command failed: a state conflict, a spawn that failed
                                  every retry, a socket that cannot be bound; and any
                                  unexpected exception, then with ``tb`` (its traceback) and
                                  ``reason`` ``command b'<request>': <message>``
    6       BAD_MSG_DATA_ERROR    ``server error``: a handler returned something not an object
    ======  ====================  ==========================================================

    Which exception gets which number in circusd: ``circus.arbiter``'s controller (its
    ``_errmap`` table, by exception class).
    """

    NOT_SPECIFIED = 0
    INVALID_JSON = 1
    UNKNOWN_COMMAND = 2
    MESSAGE_ERROR = 3
    OS_ERROR = 4
    COMMAND_ERROR = 5
    BAD_MSG_DATA_ERROR = 6

"""circus.arbiter: the Circus daemon — many watchers and sockets, an INI config, a control
channel, a pub/sub channel, stats and plugins, and the ``circusd`` command.

See the package README for composing a manager in Python and for the operator's view.
"""

from __future__ import annotations

from ._arbiter import Arbiter, ThreadedArbiter
from ._embed import get_arbiter
from ._errors import (
    ArbiterError,
    CommandError,
    ConflictError,
    MessageError,
    NotFoundError,
    UpstreamCircusInstalled,
)

__all__ = [
    "Arbiter",
    "ArbiterError",
    "CommandError",
    "ConflictError",
    "MessageError",
    "NotFoundError",
    "ThreadedArbiter",
    "UpstreamCircusInstalled",
    "get_arbiter",
]

"""circus.sockets: sockets bound once by the daemon and inherited by its children.

The pre-fork model: :class:`SocketManager` binds each :class:`CircusSocket` before any
process starts, hands the fds to every child (``$(circus.sockets.NAME)``) and keeps them open
while children come and go, so restarting workers never refuses a connection. See the
package README for a runnable example and ``python -m circus.sockets.serve``.
"""

from __future__ import annotations

from ._errors import SocketError, SocketOptionError
from ._manager import ChildSockets, SocketManager
from ._socket import CircusSocket
from ._systemd import LISTEN_FDS_START, listen_fds
from ._unix import UnixBinder, set_parent_opener, set_unix_binder

__all__ = [
    "LISTEN_FDS_START",
    "ChildSockets",
    "CircusSocket",
    "SocketError",
    "SocketOptionError",
    "UnixBinder",
    "SocketManager",
    "listen_fds",
    "set_parent_opener",
    "set_unix_binder",
]

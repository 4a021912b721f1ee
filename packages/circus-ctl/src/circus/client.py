"""Compatibility module: ``from circus.client import CircusClient`` as with Circus 0.19.

This is a plain module inside the ``circus`` namespace portion shipped by circus-ctl (there is
no ``circus/__init__.py``). It keeps 0.19's calling conventions: ``context`` is the first
constructor argument, error answers are returned rather than raised, and ``stop()`` closes
the client. New code should use :mod:`circus.ctl` directly.
"""

from __future__ import annotations

from typing import Any

import zmq
from circus.ctl import AsyncCircusClient as _AsyncCircusClient
from circus.ctl import CircusClient as _CircusClient
from circus.ctl import protocol
from circus.ctl.errors import CallError, CallTimeout, DaemonUnreachable

__all__ = [
    "AsyncCircusClient",
    "CallError",
    "CallTimeout",
    "CircusClient",
    "DaemonUnreachable",
    "make_message",
]


def make_message(command: str, **props: Any) -> dict[str, Any]:
    """Build ``{"command": ..., "properties": {...}}`` as 0.19's helper of the same name."""
    return {"command": command, "properties": props}


class CircusClient(_CircusClient):
    """0.19-style blocking client: ``CircusClient(context=None, endpoint=..., timeout=5.0)``.

    ``call()`` returns error answers instead of raising; transport failures raise
    :class:`~circus.ctl.errors.DaemonUnreachable` / :class:`~circus.ctl.errors.CallTimeout`.
    """

    def __init__(
        self,
        context: zmq.Context[Any] | None = None,
        endpoint: str = protocol.DEFAULT_ENDPOINT,
        timeout: float = protocol.DEFAULT_TIMEOUT,
        ssh_server: str | None = None,
        ssh_keyfile: str | None = None,
    ) -> None:
        super().__init__(endpoint, timeout, context, ssh_server, ssh_keyfile, check=False)

    def stop(self) -> None:
        """Close the client (0.19's name for :meth:`close`)."""
        self.close()


class AsyncCircusClient(_AsyncCircusClient):
    """0.19-style asyncio client (``context`` first); error answers are returned, not raised.

    0.19's version was built on tornado coroutines; this one is awaited from asyncio (tornado
    6 runs on asyncio, so ``await client.call(...)`` works from tornado coroutines too).
    """

    def __init__(
        self,
        context: Any = None,
        endpoint: str = protocol.DEFAULT_ENDPOINT,
        timeout: float = protocol.DEFAULT_TIMEOUT,
        ssh_server: str | None = None,
        ssh_keyfile: str | None = None,
    ) -> None:
        super().__init__(endpoint, timeout, context, ssh_server, ssh_keyfile, check=False)

    def stop(self) -> None:
        """Close the client (0.19's name for :meth:`close`)."""
        self.close()

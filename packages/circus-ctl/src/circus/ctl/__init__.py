"""circus.ctl: talk to a Circus daemon — the wire protocol, clients and command-line tools.

``circus.ctl.protocol`` and ``circus.ctl.errors`` only need the standard library; the clients
(which need pyzmq) are imported lazily on first access so the daemon can use the protocol
module without loading the client code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import protocol
from .errors import CallError, CallTimeout, CtlError, DaemonUnreachable, ProtocolError

if TYPE_CHECKING:
    from ._aclient import AsyncCircusClient
    from ._client import CircusClient
    from ._consumer import AsyncCircusConsumer, CircusConsumer

__version__ = "0.1.0"

__all__ = [
    "AsyncCircusClient",
    "AsyncCircusConsumer",
    "CallError",
    "CallTimeout",
    "CircusClient",
    "CircusConsumer",
    "CtlError",
    "DaemonUnreachable",
    "ProtocolError",
    "__version__",
    "protocol",
]

_LAZY = {
    "CircusClient": "._client",
    "AsyncCircusClient": "._aclient",
    "CircusConsumer": "._consumer",
    "AsyncCircusConsumer": "._consumer",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'circus.ctl' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value

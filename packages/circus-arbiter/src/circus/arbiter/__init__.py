"""circus.arbiter: the Circus daemon — many watchers and sockets, an INI config, a control
channel, a pub/sub channel, stats and plugins, and the ``circusd`` command.

See the package README for composing a manager in Python and for the operator's view.
Names are imported lazily, so ``circusd`` can check its environment (upstream Circus
shadowing the ``circus`` namespace) before anything else is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._arbiter import Arbiter
    from ._curve import CurveSettings
    from ._embed import get_arbiter
    from ._errors import (
        ArbiterError,
        CommandError,
        ConflictError,
        MessageError,
        NotFoundError,
        UpstreamCircusInstalled,
    )
    from ._settings import ArbiterSettings
    from ._threaded import ThreadedArbiter

__all__ = [
    "Arbiter",
    "ArbiterError",
    "ArbiterSettings",
    "CommandError",
    "ConflictError",
    "CurveSettings",
    "MessageError",
    "NotFoundError",
    "ThreadedArbiter",
    "UpstreamCircusInstalled",
    "get_arbiter",
]

_LAZY = {
    "Arbiter": "._arbiter",
    "ThreadedArbiter": "._threaded",
    "get_arbiter": "._embed",
    "ArbiterSettings": "._settings",
    "CurveSettings": "._curve",
    "ArbiterError": "._errors",
    "CommandError": "._errors",
    "ConflictError": "._errors",
    "MessageError": "._errors",
    "NotFoundError": "._errors",
    "UpstreamCircusInstalled": "._errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'circus.arbiter' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

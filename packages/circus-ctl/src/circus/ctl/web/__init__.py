"""circus.ctl.web: circushttpd, the live web dashboard (``pip install 'circus-ctl[web]'``).

One page shows every watcher of one or more daemons with its state, process count and live
CPU/memory charts, the event stream and the processes' output, and drives start, stop,
restart, reload, incr, decr and signals (with a login token; without one it is read-only).
``/metrics`` serves Prometheus text. It talks to daemons only through their control and
pub/sub channels, like any client.

Needs tornado and prometheus-client (the ``web`` extra); :func:`main` says so plainly when
they are missing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import DaemonDisconnected, InsecureBindError, TooManyFailures, WebError

if TYPE_CHECKING:
    from ._app import Dashboard
    from ._auth import AuthPolicy, is_loopback, read_token
    from ._link import DaemonLink
    from ._metrics import SnapshotCollector
    from ._state import DaemonState

__all__ = [
    "AuthPolicy",
    "DaemonDisconnected",
    "DaemonLink",
    "DaemonState",
    "Dashboard",
    "InsecureBindError",
    "SnapshotCollector",
    "TooManyFailures",
    "WebError",
    "is_loopback",
    "main",
    "read_token",
]

_LAZY = {
    "Dashboard": "._app",
    "AuthPolicy": "._auth",
    "is_loopback": "._auth",
    "read_token": "._auth",
    "DaemonLink": "._link",
    "SnapshotCollector": "._metrics",
    "DaemonState": "._state",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'circus.ctl.web' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """The ``circushttpd`` command: run the dashboard; return the exit code."""
    try:
        from ._cli import main as run
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in ("tornado", "prometheus_client"):
            raise
        print(
            f"circushttpd needs {missing}, part of the web extra: pip install 'circus-ctl[web]'",
            file=sys.stderr,
        )
        return 1
    return run(argv)

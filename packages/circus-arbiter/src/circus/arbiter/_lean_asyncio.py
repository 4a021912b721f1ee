"""Import asyncio without loading ``ssl``, and so without OpenSSL, into the daemon.

asyncio imports ``ssl`` for TLS transports that circusd never opens, and loading ``ssl``
maps and initialises OpenSSL's libcrypto: about 4.5 MiB of every daemon's resident size
(bench/README.md, "Daemon RSS, session 4"). Imported before anything else imports asyncio
(``circusd`` imports it first), this module imports asyncio with ``ssl`` hidden and gives
asyncio's modules a stand-in instead. TLS through asyncio still works, it only loads OpenSSL
when first used: the stand-in imports the real module on its first attribute lookup, and the
first ``import ssl`` anywhere (a hook, a library a hook uses) gives asyncio the real module.

Nothing happens when asyncio or ``ssl`` is already loaded (an application embedding the
arbiter, a test run), or on a Python whose asyncio this was not checked against.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["ssl_deferred"]

# The asyncio modules that import ``ssl`` at import time (CPython 3.11 to 3.14).
_USERS = ("asyncio.base_events", "asyncio.selector_events", "asyncio.sslproto")


class _NoSSLSocket:
    """No object is an instance of this: no ``ssl.SSLSocket`` exists before ``ssl`` loads."""


class _StandIn(types.ModuleType):
    """What asyncio holds as ``ssl`` until the real module is loaded."""

    def __getattr__(self, name: str) -> Any:
        # asyncio checks every socket given to loop.sock_*() against ssl.SSLSocket (the
        # health probes use them): answered without loading OpenSSL while none can exist.
        if name == "SSLSocket" and "ssl" not in sys.modules:
            return _NoSSLSocket
        real = importlib.import_module("ssl")
        _give_asyncio(real)
        return getattr(real, name)


def _give_asyncio(ssl: types.ModuleType) -> None:
    """Put the real ``ssl`` where asyncio's modules hold the stand-in (idempotent)."""
    for name in _USERS:
        module = sys.modules.get(name)
        if module is not None and isinstance(getattr(module, "ssl", None), _StandIn):
            module.ssl = ssl  # type: ignore[attr-defined]
    sslproto = sys.modules.get("asyncio.sslproto")
    if sslproto is not None and not hasattr(sslproto, "SSLAgainErrors"):
        # computed by sslproto at import time when ssl is there (used by its except clauses)
        sslproto.SSLAgainErrors = (ssl.SSLWantReadError, ssl.SSLSyscallError)  # type: ignore[attr-defined]


class _Loader:
    """The real loader of ``ssl``, then asyncio is given the module it made."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create_module(self, spec: Any) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._inner.exec_module(module)
        _give_asyncio(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... for tracebacks
        return getattr(self._inner, name)


class _Finder:
    """On the first ``import ssl``: found as usual, loaded by :class:`_Loader`; then gone."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "ssl":
            return None
        _drop_finder()
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


_FINDER = _Finder()


def _drop_finder() -> None:
    try:
        sys.meta_path.remove(_FINDER)
    except ValueError:
        pass


def _import_asyncio_without_ssl() -> bool:
    if "asyncio" in sys.modules or "ssl" in sys.modules or sys.version_info >= (3, 15):
        return False
    sys.modules["ssl"] = None  # type: ignore[assignment]  # makes ``import ssl`` fail
    try:
        import asyncio  # noqa: F401
    finally:
        if sys.modules.get("ssl", False) is None:
            del sys.modules["ssl"]
    stand_in = _StandIn("ssl", "stand-in for ssl until TLS is used (circus.arbiter)")
    hidden = False
    for name in _USERS:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "ssl", False) is None:
            module.ssl = stand_in  # type: ignore[attr-defined]
            hidden = True
    if hidden:
        sys.meta_path.insert(0, _FINDER)
    return hidden


#: True when this import loaded asyncio with ``ssl`` deferred (see the module docstring).
ssl_deferred = _import_asyncio_without_ssl()

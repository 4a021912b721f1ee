"""One adapter per measured thing, all implementing :class:`Backend` (see ``base``)."""

from __future__ import annotations

from .base import Backend, NotApplicable, ProgramSpec, Session
from .circus import OursBackend, UpstreamBackend
from .raw import RawBackend
from .supervisor import SupervisorBackend

_FACTORIES = {
    "raw": RawBackend,
    "ours": OursBackend,
    "circus": UpstreamBackend,
    "supervisor": SupervisorBackend,
}


def make_backend(name: str) -> Backend:
    """The backend called ``name`` in --peers (raw, ours, circus, supervisor)."""
    return _FACTORIES[name]()


__all__ = ["Backend", "NotApplicable", "ProgramSpec", "Session", "make_backend"]

"""Test helpers for code that talks to a Circus daemon.

- :class:`FakeDaemon`: a real ROUTER socket answering canned replies (no daemon needed).
- :class:`Publisher`: a real PUB socket for events, output and stats messages.
- :mod:`circus.ctl.testing.upstream`: builds a separate venv holding upstream Circus 0.19
  and runs its ``circusd`` / ``circusctl`` (for interop tests; never imported here so this
  module stays cheap). It lives in the source tree only: the wheel leaves it out.
"""

from __future__ import annotations

from ._canned import CANNED_REPLIES
from ._fake import FakeDaemon, Handler, Publisher

__all__ = ["CANNED_REPLIES", "FakeDaemon", "Handler", "Publisher"]

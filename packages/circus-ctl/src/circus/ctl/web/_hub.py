"""Hub: fan every message from the daemon links out to the open websockets."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["Hub"]

Sender = Callable[[str], None]


class Hub:
    """Hold the page connections and send each published message to all of them.

    A message is serialised once; a sender that raises (a socket closing under us) is dropped
    so one dead page never stops the others.
    """

    def __init__(self) -> None:
        self._senders: set[Sender] = set()

    def add(self, sender: Sender) -> None:
        """Start sending messages to ``sender`` (a function taking the JSON text)."""
        self._senders.add(sender)

    def discard(self, sender: Sender) -> None:
        """Stop sending to ``sender``."""
        self._senders.discard(sender)

    def __len__(self) -> int:
        return len(self._senders)

    def publish(self, message: dict[str, Any]) -> None:
        """Send ``message`` (JSON-able) to every connected page."""
        if not self._senders:
            return
        text = json.dumps(message, default=str)
        for sender in list(self._senders):
            try:
                sender(text)
            except Exception:
                self._senders.discard(sender)

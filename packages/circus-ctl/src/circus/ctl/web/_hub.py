"""Hub: fan every message from the daemon links out to the open websockets."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["OUTPUT_TYPES", "Hub"]

Sender = Callable[[str], None]

OUTPUT_TYPES = frozenset({"outputs"})
"""Message types carrying the processes' output: sent only to senders added with
``output=True``."""


class Hub:
    """Hold the page connections and send each published message to all of them.

    A message is serialised once; a sender that raises (a socket closing under us) is dropped
    so one dead page never stops the others. Output messages (:data:`OUTPUT_TYPES`) go only
    to the senders that may see the processes' output.
    """

    def __init__(self) -> None:
        self._senders: set[Sender] = set()
        self._blind: set[Sender] = set()  # senders that must not get output lines

    def add(self, sender: Sender, *, output: bool = True) -> None:
        """Start sending messages to ``sender`` (a function taking the JSON text); output
        lines too only if ``output``."""
        self._senders.add(sender)
        if not output:
            self._blind.add(sender)

    def discard(self, sender: Sender) -> None:
        """Stop sending to ``sender``."""
        self._senders.discard(sender)
        self._blind.discard(sender)

    def __len__(self) -> int:
        return len(self._senders)

    def publish(self, message: dict[str, Any]) -> None:
        """Send ``message`` (JSON-able) to every connected page."""
        if not self._senders:
            return
        private = message.get("type") in OUTPUT_TYPES
        text = json.dumps(message, default=str)
        for sender in list(self._senders):
            if private and sender in self._blind:
                continue
            try:
                sender(text)
            except Exception:
                self.discard(sender)

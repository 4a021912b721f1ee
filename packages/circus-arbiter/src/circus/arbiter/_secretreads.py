"""What read-only peers are not shown: watchers' environment values and output lines."""

from __future__ import annotations

from typing import Any

from ._peers import IN_PROCESS, MessagePeer, PeerIdentity
from ._policy import Policy
from ._rights import Right

__all__ = ["HIDDEN", "SECRET_READS", "hide_secrets", "may_read_secrets"]

#: Read commands whose answer holds what the kernel keeps from other users: a watcher's
#: environment (``options``, ``get``: its values are hidden) and its output (``logs``:
#: refused). Shown to peers with the operate right or more.
SECRET_READS = frozenset({"options", "get", "logs"})

HIDDEN = "<hidden>"
"""What ``options``/``get`` show for each environment value to a read-only peer."""


def may_read_secrets(arbiter: Any, peer: MessagePeer | PeerIdentity | None) -> bool:
    """Whether ``peer`` may see watchers' environment values and output lines."""
    if peer is None:
        return True
    who = peer if isinstance(peer, PeerIdentity) else peer.identity()
    if who is IN_PROCESS or who.key is not None:
        return True
    return Policy.of(arbiter).granted(who) >= Right.OPERATE


def hide_secrets(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` of ``options``/``get`` with every environment value replaced by
    :data:`HIDDEN` (the names stay: they say what is configured, not its value)."""
    options = result.get("options")
    if isinstance(options, dict):
        env = options.get("env")
        if isinstance(env, dict):
            options = {**options, "env": dict.fromkeys(env, HIDDEN)}
            result = {**result, "options": options}
    return result

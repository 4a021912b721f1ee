"""What a command handler works on: ``handler(ctx, props)`` gets a :class:`CommandContext`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._arbiter import Arbiter
    from ._watcher_set import WatcherSet

__all__ = ["CommandContext"]


@dataclass(frozen=True)
class CommandContext:
    """The parts of one daemon a command may act on.

    Attributes:
        watchers: the watcher set: what every command about watchers uses.
        daemon: the whole daemon, for the commands that act on all of it (``quit``,
            ``restart`` and ``reload`` without a name, ``reloadconfig``, ``globaloptions``,
            ``dstats``) and for the access policy (``endpoint_owner``,
            ``unauthenticated_access``).
    """

    watchers: WatcherSet
    daemon: Arbiter

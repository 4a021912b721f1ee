"""``on_demand``: a stopped watcher waits for one of its sockets to become readable, then starts."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ._child_sockets import is_reuseport, socket_fd
from ._errors import WatcherError

if TYPE_CHECKING:
    from ._watcher import Watcher

__all__ = ["OnDemand"]


class OnDemand:
    """The loop readers that start an ``on_demand`` watcher when a socket becomes readable."""

    def __init__(self, watcher: Watcher) -> None:
        self._w = watcher
        self._fds: list[int] = []

    def arm(self) -> None:
        """Wait on the watcher's sockets (again).

        Raises:
            WatcherError: the watcher has no socket that can wake it.
        """
        # A so_reuseport socket only reserves its address (bound, never listening): the
        # kernel reports it as hung up, i.e. always "readable", so it cannot wake us.
        fds = [socket_fd(s) for s in self._w.sockets.values() if not is_reuseport(s)]
        if not fds:
            raise WatcherError(
                f"watcher {self._w.name!r} is on_demand but has no socket to wait on "
                "(so_reuseport sockets cannot start a watcher on demand)"
            )
        self.disarm()
        loop = asyncio.get_running_loop()
        for fd in fds:
            loop.add_reader(fd, self._ready)
        self._fds = fds

    def disarm(self) -> None:
        """Stop waiting on the sockets."""
        if self._fds:
            loop = asyncio.get_running_loop()
            for fd in self._fds:
                loop.remove_reader(fd)
            self._fds = []

    def _ready(self) -> None:
        self.disarm()
        self._w._tasks.run(self._w._start_locked())

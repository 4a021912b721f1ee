"""``ThreadedArbiter``: an :class:`~._arbiter.Arbiter` serving from its own thread.

For programs that are not asyncio themselves (upstream's ``get_arbiter(background=True)``):
the arbiter runs its loop in a daemon thread; :meth:`ThreadedArbiter.start` returns once it
serves, :meth:`ThreadedArbiter.stop` stops it from any thread and joins the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Any

from ._arbiter import Arbiter
from ._errors import ArbiterError

__all__ = ["ThreadedArbiter"]


class ThreadedArbiter:
    """Runs an :class:`Arbiter` on a loop of its own in a daemon thread.

    ``ThreadedArbiter(watchers, **options)`` makes the arbiter as ``Arbiter(watchers,
    **options)`` would; ``ThreadedArbiter(arbiter)`` runs an existing one. Every other
    attribute (``get_watcher``, ``table``, ``endpoint``, ``loop``...) is the arbiter's
    (:attr:`arbiter`); from another thread, change it on its own loop
    (``arbiter.loop.add_callback``) or through its control channel.
    """

    def __init__(self, watchers: Iterable[Any] | Arbiter = (), **options: Any) -> None:
        if isinstance(watchers, Arbiter):
            if options:
                raise TypeError("ThreadedArbiter(arbiter) takes no other argument")
            self.arbiter = watchers
        else:
            self.arbiter = Arbiter(watchers, **options)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._serving = threading.Event()
        self._error: BaseException | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "arbiter":  # not set yet: no recursion through ourselves
            raise AttributeError(name)
        return getattr(self.arbiter, name)

    def start(self, timeout: float = 60.0) -> None:
        """Start the arbiter's thread and wait until it serves (control bound, autostart
        watchers started).

        Raises:
            ArbiterError: it failed to start (the cause chained), or did not serve within
                ``timeout`` seconds.
        """
        self._thread = threading.Thread(target=self._main, name="circus-arbiter", daemon=True)
        self._thread.start()
        if not self._serving.wait(timeout) and self._error is None:
            raise ArbiterError("the arbiter did not start in time")
        if self._error is not None:
            raise ArbiterError(f"the arbiter failed to start: {self._error}") from self._error

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await self.arbiter.run(started=self._serving.set)

        try:
            asyncio.run(main())
        except BaseException as exc:
            self._error = exc
            self._serving.set()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the arbiter from another thread and wait (up to ``timeout`` seconds) for its
        thread to end: every child stopped, every socket closed."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            try:
                loop.call_soon_threadsafe(self.arbiter.request_quit)
            except RuntimeError:  # the loop closed meanwhile: the thread is ending
                pass
        thread.join(timeout)

"""Tornado's ``IOLoop`` for the arbiter's asyncio loop, made on demand (``Arbiter.loop``).

Tornado is imported only when somebody asks, so a daemon nobody asks never loads it.
"""

from __future__ import annotations

import asyncio
from concurrent import futures
from typing import Any

from ._errors import ArbiterError

__all__ = ["ioloop_for"]


def ioloop_for(aio_loop: asyncio.AbstractEventLoop) -> Any:
    """Tornado's IOLoop for ``aio_loop`` (created there by ``IOLoop.current()`` if needed);
    ``None`` once that loop is closed.

    Raises:
        ArbiterError: asked from another thread while ``aio_loop`` does not answer within
            10 seconds (blocked, or stopping).
    """

    def current() -> Any:
        from tornado.ioloop import IOLoop

        return IOLoop.current()

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is aio_loop:
        return current()
    if aio_loop.is_closed():
        return None
    # Off the loop, IOLoop.current() would wrap this thread's loop: ask the arbiter's loop.
    result: futures.Future[Any] = futures.Future()

    def make() -> None:
        try:
            result.set_result(current())
        except BaseException as exc:  # pragma: no cover - handed to the waiting thread
            result.set_exception(exc)

    try:
        aio_loop.call_soon_threadsafe(make)
    except RuntimeError:  # closed meanwhile
        return None
    try:
        return result.result(timeout=10.0)
    except futures.TimeoutError as exc:
        raise ArbiterError("the arbiter's loop did not answer (blocked or stopping)") from exc

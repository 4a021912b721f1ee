"""The curses screen of circus-top (the data side lives in top.py)."""

from __future__ import annotations

import curses
import time
from typing import Any

from ._client import CircusClient
from ._consumer import CircusConsumer
from .errors import CtlError

__all__ = ["run_curses"]


def run_curses(
    consumer: CircusConsumer, client: CircusClient | None, snapshot: Any, ttl: float
) -> int:
    """Show ``snapshot`` and keep it fresh (stats channel, or polling ``client``) until q."""
    from .top import render_table

    snapshot.ttl = ttl

    def screen(window: Any) -> int:
        curses.curs_set(0)
        window.timeout(200)
        next_poll = 0.0
        status = ""
        while True:
            if client is None:
                while (message := consumer.recv(0)) is not None:
                    snapshot.add_stat_message(*message)
                snapshot.expire()
                source = f"stats channel {consumer.endpoint}"
            elif time.monotonic() >= next_poll:
                try:
                    fresh = snapshot.__class__(ttl)
                    fresh.add_stats_answer(client.call("stats", {}))
                    snapshot.rows = fresh.rows
                    status = ""
                except CtlError as exc:
                    status = f" ({exc})"
                next_poll = time.monotonic() + 1.0
                source = f"polling {client.endpoint}"
            else:
                source = f"polling {client.endpoint}"
            window.erase()
            height, width = window.getmaxyx()
            lines = [f"circus-top (q: quit) - {source}{status}", ""]
            lines += render_table(snapshot).splitlines()
            for y, line in enumerate(lines[: height - 1]):
                window.addnstr(y, 0, line, width - 1, curses.A_BOLD if y in (0, 2) else 0)
            window.refresh()
            if window.getch() in (ord("q"), ord("Q"), 27):
                return 0

    return int(curses.wrapper(screen))

"""CommandReloader: restart a watcher when its executable file changes.

Every ``loop_rate`` seconds (1) the executable of each watcher's ``cmd`` (resolved on
``PATH`` like a shell would, then through symlinks) is checked; a different real path or
modification time than last round restarts that watcher.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from typing import Any

from .statsd import BaseObserver

__all__ = ["CommandReloader"]

log = logging.getLogger("circus.plugins")


def _executable(cmd: str, working_dir: str | None) -> str | None:
    try:
        first = shlex.split(cmd)[0]
    except (ValueError, IndexError):
        return None
    if os.sep in first:
        path = first if os.path.isabs(first) else os.path.join(working_dir or os.getcwd(), first)
    else:
        path = shutil.which(first) or ""
    return os.path.realpath(path) if path else None


class CommandReloader(BaseObserver):
    """Upstream-compatible executable watcher."""

    name = "command_reloader"

    def __init__(
        self,
        endpoint: str,
        pubsub_endpoint: str,
        check_delay: float = 1.0,
        ssh_server: str | None = None,
        **config: Any,
    ) -> None:
        config.setdefault("loop_rate", "1")
        super().__init__(endpoint, pubsub_endpoint, check_delay, ssh_server, **config)
        self.infos: dict[str, tuple[str, float]] = {}

    def look_after(self) -> None:
        for watcher in self.call("list").get("watchers", []):
            options = self.call("options", name=watcher).get("options") or {}
            path = _executable(str(options.get("cmd", "")), options.get("working_dir"))
            if path is None:
                continue
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            previous = self.infos.get(watcher)
            self.infos[watcher] = (path, mtime)
            if previous is not None and previous != (path, mtime):
                log.info("command_reloader: %s changed, restarting %s", path, watcher)
                self.cast("restart", name=watcher)

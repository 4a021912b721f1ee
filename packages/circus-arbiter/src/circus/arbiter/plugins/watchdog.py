"""WatchDog: kill workers that stop sending UDP heartbeats.

Workers of the watchers matching ``watchers_regex`` (``.*``) send datagrams
``<pid>;<timestamp>`` (``msg_regex``) to ``ip:port`` (127.0.0.1:1664). Every ``loop_rate``
seconds (60) each known pid without a heartbeat since the previous round gets a strike; at
``max_count`` strikes (3) it is killed with ``watchers_stop_signal`` (the watcher's stop
signal by default) and ``watchers_graceful_timeout``, and the watcher respawns it.
Pids are learnt from ``list`` at start and from spawn/reap events.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from typing import Any

from ._base import CircusPlugin

__all__ = ["WatchDog"]

log = logging.getLogger("circus.plugins")


class WatchDog(CircusPlugin):
    """Upstream-compatible heartbeat watchdog."""

    name = "watchdog"

    def __init__(
        self,
        endpoint: str,
        pubsub_endpoint: str,
        check_delay: float = 1.0,
        ssh_server: str | None = None,
        **config: Any,
    ) -> None:
        super().__init__(endpoint, pubsub_endpoint, check_delay, ssh_server, **config)
        self.loop_rate = float(config.get("loop_rate", 60))
        self.watchers_regex = re.compile(config.get("watchers_regex", ".*"))
        self.msg_regex = re.compile(config.get("msg_regex", r"^(?P<pid>.*);(?P<timestamp>.*)$"))
        self.max_count = int(config.get("max_count", 3))
        self.ip = config.get("ip", "127.0.0.1")
        self.port = int(config.get("port", 1664))
        self.stop_signal = config.get("watchers_stop_signal")
        self.graceful_timeout = config.get("watchers_graceful_timeout")
        self.pids: dict[int, dict[str, Any]] = {}
        self.sock: socket.socket | None = None

    def handle_init(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.ip, self.port))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def initialize(self) -> None:
        super().initialize()
        assert self.loop is not None and self.sock is not None
        self.loop.add_handler(self.sock.fileno(), self._on_datagram, self.loop.READ)
        for watcher in self.call("list").get("watchers", []):
            if self.watchers_regex.match(watcher):
                for pid in self.call("list", name=watcher).get("pids", []):
                    self._track(watcher, pid)
        self.periodic(self.look_after, self.loop_rate)

    def handle_stop(self) -> None:
        if self.sock is not None:
            if self.loop is not None:
                self.loop.remove_handler(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def _track(self, watcher: str, pid: int) -> None:
        self.pids[pid] = {"watcher": watcher, "last": time.time(), "strikes": 0}

    def handle_recv(self, data: list[bytes]) -> None:
        watcher, event, msg = self.split_data(data)
        if not self.watchers_regex.match(watcher):
            return
        pid = self.load_message(msg).get("process_pid")
        if not isinstance(pid, int):
            return
        if event == "spawn":
            self._track(watcher, pid)
        elif event in ("reap", "kill"):
            self.pids.pop(pid, None)

    def _on_datagram(self, fd: int, events: int) -> None:
        assert self.sock is not None
        while True:
            try:
                data = self.sock.recv(1024)
            except BlockingIOError:
                return
            match = self.msg_regex.match(data.decode("utf-8", "replace").strip())
            if match is None:
                continue
            try:
                pid = int(match.group("pid"))
            except ValueError:
                continue
            entry = self.pids.get(pid)
            if entry is not None:
                entry["last"] = time.time()
                entry["strikes"] = 0

    def look_after(self) -> None:
        """One round: strike silent pids, kill those with ``max_count`` strikes."""
        now = time.time()
        for pid, entry in list(self.pids.items()):
            if now - entry["last"] < self.loop_rate:
                continue
            entry["strikes"] += 1
            if entry["strikes"] < self.max_count:
                continue
            log.info("watchdog: %s pid %d is silent, killing it", entry["watcher"], pid)
            props: dict[str, Any] = {"name": entry["watcher"], "pid": pid}
            if self.stop_signal:
                props["signum"] = self.stop_signal
            if self.graceful_timeout:
                props["graceful_timeout"] = float(self.graceful_timeout)
            self.pids.pop(pid, None)
            self.cast("kill", **props)

"""statsd plugins: ``StatsdEmitter`` counts every event, ``FullStats`` sends cpu/mem gauges.

Options: ``host`` (localhost), ``port`` (8125), ``sample_rate`` (1.0), ``application_name``
(``app``): buckets are ``circus.<app>.watcher.<watcher>.<event>``. ``FullStats`` adds
``loop_rate`` (60 s) and sends ``_stats.<watcher>.cpu_sum|cpu_max|mem_sum|mem_max`` gauges.
"""

from __future__ import annotations

from typing import Any

from ._base import CircusPlugin
from ._statsd_client import StatsdClient

__all__ = ["StatsdEmitter", "FullStats", "BaseObserver"]


class StatsdEmitter(CircusPlugin):
    """Sends a statsd counter increment for every watcher event."""

    name = "statsd"

    def __init__(
        self,
        endpoint: str,
        pubsub_endpoint: str,
        check_delay: float = 1.0,
        ssh_server: str | None = None,
        **config: Any,
    ) -> None:
        super().__init__(endpoint, pubsub_endpoint, check_delay, ssh_server, **config)
        self.app = config.get("application_name", "app")
        self.prefix = f"circus.{self.app}.watcher"
        self.statsd = StatsdClient(
            host=config.get("host", "localhost"),
            port=int(config.get("port", 8125)),
            prefix=self.prefix,
            sample_rate=float(config.get("sample_rate", 1.0)),
        )

    def handle_recv(self, data: list[bytes]) -> None:
        watcher, event, _ = self.split_data(data)
        self.statsd.increment(f"{watcher}.{event}")

    def handle_stop(self) -> None:
        self.statsd.stop()


class BaseObserver(StatsdEmitter):
    """A statsd emitter that also runs :meth:`look_after` every ``loop_rate`` seconds."""

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

    def initialize(self) -> None:
        super().initialize()
        self.periodic(self.look_after, self.loop_rate)

    def handle_recv(self, data: list[bytes]) -> None:
        """Observers ignore events."""

    def look_after(self) -> None:
        """One periodic round; subclasses implement it."""
        raise NotImplementedError


class FullStats(BaseObserver):
    """Periodic per-watcher cpu/mem gauges from the ``stats`` command."""

    name = "full_stats"

    def look_after(self) -> None:
        infos = self.call("stats").get("infos") or {}
        for watcher, per_pid in infos.items():
            cpus: list[float] = []
            mems: list[float] = []
            for info in (per_pid or {}).values():
                if not isinstance(info, dict):
                    continue
                if isinstance(info.get("cpu"), int | float):
                    cpus.append(float(info["cpu"]))
                if isinstance(info.get("mem"), int | float):
                    mems.append(float(info["mem"]))
            base = f"_stats.{watcher}"
            self.statsd.gauge(f"{base}.watchers_num", len(cpus))
            self.statsd.gauge(f"{base}.cpu_sum", sum(cpus))
            self.statsd.gauge(f"{base}.cpu_max", max(cpus, default=0.0))
            self.statsd.gauge(f"{base}.mem_sum", sum(mems))
            self.statsd.gauge(f"{base}.mem_max", max(mems, default=0.0))

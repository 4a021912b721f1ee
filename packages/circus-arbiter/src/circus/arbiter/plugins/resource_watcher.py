"""ResourceWatcher: restart a watcher (or signal its children) that uses too much cpu/memory.

Options: ``watcher`` (required; ``service`` is the deprecated alias), ``loop_rate`` (60 s),
``max_cpu`` (90 %), ``min_cpu``, ``max_mem`` (90 %, or an absolute size with a unit:
``250M``), ``min_mem``, ``health_threshold`` (75), ``max_count`` (3), ``process_children``
(false), ``child_signal`` (SIGTERM), plus the statsd options. Every round the watcher's
processes are measured with the ``stats`` command; after ``max_count`` consecutive unhealthy
rounds the watcher is restarted (or, with ``process_children``, the offending processes'
children get ``child_signal``).
"""

from __future__ import annotations

import logging
import re
import signal
from typing import Any

from .statsd import BaseObserver

__all__ = ["ResourceWatcher"]

log = logging.getLogger("circus.plugins")

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _size(text: str) -> float:
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)B?\s*", text.upper())
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


class ResourceWatcher(BaseObserver):
    """Upstream-compatible resource limits."""

    name = "resource_watcher"

    def __init__(
        self,
        endpoint: str,
        pubsub_endpoint: str,
        check_delay: float = 1.0,
        ssh_server: str | None = None,
        **config: Any,
    ) -> None:
        super().__init__(endpoint, pubsub_endpoint, check_delay, ssh_server, **config)
        self.watcher = config.get("watcher") or config.get("service")
        if not self.watcher:
            raise ValueError("resource_watcher needs a 'watcher' option")
        self.max_cpu = float(config.get("max_cpu", 90))
        self.min_cpu = float(config["min_cpu"]) if config.get("min_cpu") else None
        self.max_mem, self.max_mem_abs = self._mem(config.get("max_mem", "90"))
        self.min_mem, self.min_mem_abs = self._mem(config.get("min_mem"))
        self.health_threshold = float(config.get("health_threshold", 75))
        self.max_count = int(config.get("max_count", 3))
        self.process_children = str(config.get("process_children", "0")).lower() in (
            "1",
            "true",
            "yes",
            "on",
        )
        self.child_signal = config.get("child_signal", "SIGTERM")
        self.count = 0

    @staticmethod
    def _mem(value: Any) -> tuple[float | None, bool]:
        if value in (None, ""):
            return None, False
        text = str(value).strip()
        if text[-1:].upper() in "KMGTB" and not text[-1:].isdigit():
            return _size(text), True
        return float(text), False

    def _unhealthy(self, info: dict[str, Any]) -> bool:
        cpu = info.get("cpu")
        mem = info.get("mem")
        rss = _size(info["mem_info1"]) if isinstance(info.get("mem_info1"), str) else None
        if isinstance(cpu, int | float):
            if self.max_cpu is not None and cpu > self.max_cpu:
                return True
            if self.min_cpu is not None and cpu < self.min_cpu:
                return True
        used = rss if self.max_mem_abs else mem
        if isinstance(used, int | float) and self.max_mem is not None and used > self.max_mem:
            return True
        used = rss if self.min_mem_abs else mem
        return isinstance(used, int | float) and self.min_mem is not None and used < self.min_mem

    def look_after(self) -> None:
        answer = self.call("stats", name=self.watcher)
        if answer.get("status") == "error":
            return
        infos = [i for i in (answer.get("info") or {}).values() if isinstance(i, dict)]
        offenders = [i for i in infos if self._unhealthy(i)]
        if not offenders:
            self.count = 0
            return
        self.count += 1
        self.statsd.increment(f"_resource_watcher.{self.watcher}.over_limit")
        if self.count < self.max_count:
            return
        self.count = 0
        if self.process_children:
            signum = self.child_signal
            if str(signum).isdigit():
                signum = int(signum)
            for info in offenders:
                log.info("resource_watcher: signalling children of %s", info.get("pid"))
                self.cast(
                    "signal", name=self.watcher, pid=info["pid"], signum=signum, children=True
                )
        else:
            log.info("resource_watcher: restarting %s", self.watcher)
            self.cast("restart", name=self.watcher)


# kept for configs naming the signal module's constants
_ = signal

"""``/metrics``: a prometheus_client collector reading the dashboard's cached snapshots.

One :class:`CollectorRegistry` per dashboard holds one :class:`SnapshotCollector`; a scrape
only formats what the pollers already fetched, so scraping never talks to a daemon.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from ._state import DaemonState

__all__ = ["SnapshotCollector", "make_registry"]


class SnapshotCollector(Collector):
    """Yield the metric families of every daemon's latest snapshot.

    ``states`` is called at each scrape and returns the current :class:`DaemonState`
    objects. Families (label ``endpoint`` on all, ``watcher`` and ``pid`` where they apply):
    ``circus_daemon_up``, ``circus_watcher_up`` (1 when active), ``circus_watcher_processes``,
    ``circus_watcher_cpu_percent``, ``circus_watcher_memory_bytes``,
    ``circus_watcher_restarts_total`` (processes that exited on their own, counted since
    circushttpd started), ``circus_process_up``, ``circus_process_cpu_percent``,
    ``circus_process_memory_bytes``, ``circus_process_memory_percent``,
    ``circus_process_age_seconds``.
    """

    def __init__(self, states: Callable[[], Iterable[DaemonState]]) -> None:
        self._states = states

    def describe(self) -> list[Metric]:
        """No up-front description: the families are only known at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Build the families from the cached snapshots (never blocks on a daemon)."""
        daemon_up = GaugeMetricFamily(
            "circus_daemon_up", "1 when the daemon answers its control channel", labels=["endpoint"]
        )
        wl = ["endpoint", "watcher"]
        w_up = GaugeMetricFamily("circus_watcher_up", "1 when the watcher is active", labels=wl)
        w_procs = GaugeMetricFamily(
            "circus_watcher_processes", "Processes the watcher runs", labels=wl
        )
        w_cpu = GaugeMetricFamily(
            "circus_watcher_cpu_percent", "CPU of all the watcher's processes", labels=wl
        )
        w_mem = GaugeMetricFamily(
            "circus_watcher_memory_bytes", "Resident memory of the watcher's processes", labels=wl
        )
        w_restarts = CounterMetricFamily(
            "circus_watcher_restarts",
            "Processes that exited without being asked to (respawned by circus)",
            labels=wl,
        )
        pl = ["endpoint", "watcher", "pid", "wid"]
        p_up = GaugeMetricFamily("circus_process_up", "1 for each running process", labels=pl)
        p_cpu = GaugeMetricFamily("circus_process_cpu_percent", "CPU of the process", labels=pl)
        p_mem = GaugeMetricFamily(
            "circus_process_memory_bytes", "Resident memory of the process", labels=pl
        )
        p_memp = GaugeMetricFamily(
            "circus_process_memory_percent", "Memory of the process, % of RAM", labels=pl
        )
        p_age = GaugeMetricFamily(
            "circus_process_age_seconds", "Seconds since circus started the process", labels=pl
        )
        for state in self._states():
            daemon_up.add_metric([state.endpoint], 1.0 if state.connected else 0.0)
            if not state.connected:
                continue
            for name, watcher in sorted(state.watchers.items()):
                labels = [state.endpoint, name]
                w_up.add_metric(labels, 1.0 if watcher.status == "active" else 0.0)
                w_procs.add_metric(labels, float(len(watcher.processes)))
                w_restarts.add_metric(labels, float(watcher.restarts))
                if watcher.cpu is not None:
                    w_cpu.add_metric(labels, watcher.cpu)
                if watcher.rss is not None:
                    w_mem.add_metric(labels, watcher.rss)
                for pid, proc in sorted(watcher.processes.items()):
                    plabels = [*labels, str(pid), "" if proc.wid is None else str(proc.wid)]
                    p_up.add_metric(plabels, 1.0)
                    for family, value in (
                        (p_cpu, proc.cpu),
                        (p_mem, proc.rss),
                        (p_memp, proc.mem_percent),
                        (p_age, proc.age),
                    ):
                        if value is not None:
                            family.add_metric(plabels, value)
        yield from (daemon_up, w_up, w_procs, w_cpu, w_mem, w_restarts)
        yield from (p_up, p_cpu, p_mem, p_memp, p_age)


def make_registry(states: Callable[[], Iterable[DaemonState]]) -> CollectorRegistry:
    """Return a private registry (not the global one) holding one :class:`SnapshotCollector`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(states))
    return registry

"""The dashboard's snapshot folding and the Prometheus collector, without any socket."""

from __future__ import annotations

import pytest

pytest.importorskip("prometheus_client", reason="the dashboard needs the web extra")

from circus.ctl.web._metrics import make_registry  # noqa: E402
from circus.ctl.web._state import DaemonState, parse_bytes  # noqa: E402
from prometheus_client import generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

INFO = {"cpu": 12.5, "mem": 0.5, "mem_info1": "2.00M", "age": 3.0, "wid": 1, "cmdline": "py"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8.23M", round(8.23 * 1024**2)),
        ("512K", 512 * 1024),
        ("1.5G", 1.5 * 1024**3),
        ("900B", 900),
        ("17", 17),
        (4096, 4096),
        ("N/A", None),
        ("", None),
        ("lots", None),
        (None, None),
        (True, None),
    ],
)
def test_parse_bytes_reads_the_daemons_human_sizes(text: object, expected: float | None) -> None:
    assert parse_bytes(text) == expected


def _state() -> DaemonState:
    state = DaemonState(0, "ipc:///x")
    state.fold(
        {"statuses": {"web": "active", "idle": "stopped"}},
        {
            "infos": {
                "web": {
                    "101": INFO,
                    "102": {**INFO, "cpu": "N/A", "wid": 2},
                    "103": "No such process (stopped?)",
                }
            }
        },
        {"info": {**INFO, "pid": 42}},
    )
    return state


def test_fold_builds_watchers_processes_and_totals() -> None:
    state = _state()
    assert state.connected and state.error is None
    web, idle = state.watchers["web"], state.watchers["idle"]
    assert web.status == "active" and sorted(web.processes) == [101, 102]
    assert web.cpu == 12.5  # the N/A process is left out, not counted as 0
    assert web.rss == 2 * 2 * 1024**2
    assert idle.status == "stopped" and idle.processes == {}
    assert state.circusd is not None and state.circusd.pid == 42
    page = state.to_json()
    assert [w["name"] for w in page["watchers"]] == ["idle", "web"]
    assert page["watchers"][1]["numprocesses"] == 2


def test_fold_keeps_restart_counts_and_forgets_removed_watchers() -> None:
    state = _state()
    state.count_restart("web")
    state.fold({"statuses": {"web": "active"}}, {"infos": {}})
    assert state.watchers["web"].restarts == 1
    assert "idle" not in state.watchers


def test_metrics_come_from_the_snapshot_in_prometheus_text() -> None:
    state = _state()
    state.count_restart("web")
    gone = DaemonState(1, "ipc:///gone")
    registry = make_registry(lambda: [state, gone])
    text = generate_latest(registry).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    web = (("endpoint", "ipc:///x"), ("watcher", "web"))
    assert samples[("circus_daemon_up", (("endpoint", "ipc:///x"),))] == 1
    assert samples[("circus_daemon_up", (("endpoint", "ipc:///gone"),))] == 0
    assert samples[("circus_watcher_up", web)] == 1
    assert samples[("circus_watcher_up", (("endpoint", "ipc:///x"), ("watcher", "idle")))] == 0
    assert samples[("circus_watcher_processes", web)] == 2
    assert samples[("circus_watcher_cpu_percent", web)] == 12.5
    assert samples[("circus_watcher_restarts_total", web)] == 1
    proc = (("endpoint", "ipc:///x"), ("pid", "101"), ("watcher", "web"), ("wid", "1"))
    assert samples[("circus_process_cpu_percent", proc)] == 12.5
    assert samples[("circus_process_memory_bytes", proc)] == 2 * 1024**2
    assert samples[("circus_process_up", proc)] == 1
    assert "# TYPE circus_watcher_restarts_total counter" in text


def test_one_registry_serves_every_scrape_with_fresh_values() -> None:
    state = _state()
    registry = make_registry(lambda: [state])
    first = generate_latest(registry).decode()
    state.fold({"statuses": {"web": "stopped"}}, {"infos": {}})
    second = generate_latest(registry).decode()
    assert 'circus_watcher_up{endpoint="ipc:///x",watcher="web"} 1.0' in first
    assert 'circus_watcher_up{endpoint="ipc:///x",watcher="web"} 0.0' in second

"""The dashboard shows each process's readiness and its sd_notify STATUS= text."""

from __future__ import annotations

import pytest

pytest.importorskip("tornado", reason="the dashboard needs the web extra")

from circus.ctl.web._state import DaemonState  # noqa: E402

INFO = {"wid": 1, "cpu": 0.0, "mem": 0.1, "mem_info1": "1M", "age": 3.0, "cmdline": "app"}


def test_fold_takes_health_from_status_and_stats() -> None:
    state = DaemonState(0, "ipc:///x")
    status = {
        "statuses": {"web": "active", "plain": "active"},
        "health": {"web": {"11": {"health": "starting", "status_text": "warming", "since": 1.0}}},
    }
    stats = {
        "infos": {
            "web": {
                "11": {**INFO, "health": "ready", "status_text": "old"},
                "12": {**INFO, "health": "ready", "status_text": "serving v1"},
            },
            "plain": {"13": INFO},
        }
    }
    state.fold(status, stats)
    web = {p["pid"]: p for p in state.watchers["web"].to_json()["processes"]}
    # the status answer is fresher than the stats sample: it wins where it says something
    assert (web[11]["health"], web[11]["status_text"]) == ("starting", "warming")
    assert (web[12]["health"], web[12]["status_text"]) == ("ready", "serving v1")
    (plain,) = state.watchers["plain"].to_json()["processes"]
    assert (plain["health"], plain["status_text"]) == (None, "")


def test_fold_ignores_garbage_in_the_health_table() -> None:
    state = DaemonState(0, "ipc:///x")
    status = {"statuses": {"web": "active"}, "health": {"web": {"x": 1, "11": "ready", "12": {}}}}
    state.fold(status, {"infos": {"web": {"11": INFO, "12": INFO}}})
    assert [p["health"] for p in state.watchers["web"].to_json()["processes"]] == [None, None]

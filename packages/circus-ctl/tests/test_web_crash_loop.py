"""The dashboard shows a crash-looping watcher: the daemon's status word and its details."""

from __future__ import annotations

import pytest

pytest.importorskip("tornado", reason="the dashboard needs the web extra")

from circus.ctl.cli._color import Palette  # noqa: E402
from circus.ctl.web._state import DaemonState  # noqa: E402

LOOP = {"exits": 4, "exit_code": 3, "since": 1.0, "last_exit": 2.0, "next_retry": 2.4}


def test_fold_keeps_the_crash_loop_details_until_it_ends() -> None:
    state = DaemonState(0, "ipc:///x")
    state.fold(
        {"statuses": {"web": "crash-looping", "db": "active"}, "crash_loops": {"web": LOOP}}, {}
    )
    web = state.watchers["web"].to_json()
    assert web["status"] == "crash-looping" and web["crash_loop"] == LOOP
    assert state.watchers["db"].to_json()["crash_loop"] is None
    state.fold({"statuses": {"web": "active", "db": "active"}}, {})
    assert state.watchers["web"].to_json()["crash_loop"] is None


def test_the_page_styles_the_crash_looping_state() -> None:
    from importlib import resources

    static = resources.files("circus.ctl.web") / "static"
    assert ".pill.crash-looping" in (static / "app.css").read_text()
    assert "watcher.crash_loop" in (static / "app.js").read_text()


def test_circusctl_colours_the_crash_looping_state_red() -> None:
    palette = Palette(True)
    assert palette.state("crash-looping") == palette.state("stopped").replace(
        "stopped", "crash-looping"
    )

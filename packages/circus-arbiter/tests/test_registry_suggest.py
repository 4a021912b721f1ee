"""A mistyped watcher name gets ``(did you mean <watcher>?)`` after upstream's own words.

The reason still starts ``program <name> not found`` with errno 3, so upstream circusctl
(which prints the reason) and scripts matching the prefix keep working.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from circus.arbiter import Arbiter
from circus.arbiter._errors import NotFoundError
from circus.arbiter._registry import WatcherTable


def _table(*names: str) -> WatcherTable:
    table = WatcherTable()
    for name in names:
        table.add(SimpleNamespace(name=name, priority=0))
    return table


def test_close_name_is_suggested_with_its_own_case() -> None:
    table = _table("Worker", "web")
    with pytest.raises(NotFoundError) as caught:
        table.get("wroker")
    assert str(caught.value) == "program wroker not found (did you mean Worker?)"
    with pytest.raises(NotFoundError, match=r"^program wroker not found \(did you mean Worker"):
        table.match("wroker")  # a glob without wildcards is a name
    with pytest.raises(NotFoundError, match=r"^program wroker not found \(did you"):
        table.match("wroker", how="simple")


def test_nothing_close_or_a_real_pattern_keeps_upstream_words() -> None:
    table = _table("worker", "web")
    for call in (
        lambda: table.get("nosuch"),
        lambda: table.match("wrok*"),
        lambda: table.match("wroker", how="regex"),
        lambda: _table().get("worker"),
        lambda: _table(*(f"pool{i}" for i in range(1000)), "worker").get("wroker"),  # too many
    ):
        with pytest.raises(NotFoundError) as caught:
            call()
        assert "did you mean" not in str(caught.value)
        assert str(caught.value).startswith("program ")


def test_the_control_answer_and_circusctl(run_arbiter, make_sleeper, endpoints) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        answer = await c.call("stop", name="wroker")
        assert answer["errno"] == 3
        assert answer["reason"] == "program wroker not found (did you mean worker?)"
        ctl = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "circus.ctl.cli",
            "--endpoint",
            endpoints["endpoint"],
            "stop",
            "wroker",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(ctl.communicate(), 60)
        assert ctl.returncode == 3, (out, err)
        assert b"program wroker not found (did you mean worker?)" in err, (out, err)
        assert arbiter.get_watcher("worker").pids  # nothing was stopped

    run_arbiter([make_sleeper("worker")], body)

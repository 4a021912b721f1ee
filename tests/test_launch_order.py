"""What ``circusd my.ini`` does before the autostart watchers' first spawn, and what it leaves
for later: the cgroup subtree and the sweep of dead daemons' cgroups (about 10 ms) wait
until the watchers are started, and so does the cyclic garbage collector (bench/README.md,
"Daemon launch")."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from circus.process.testing import wait_until


def test_tree_tracking_is_set_up_once_the_autostart_watchers_are_started(
    circusd: Callable[..., Any],
) -> None:
    daemon = circusd("[watcher:sleeper]\ncmd = sleep 300\nnumprocesses = 2\n")
    wait_until(lambda: "process trees tracked by" in daemon.output(), 30, "the tracking line")
    out = daemon.output()
    assert out.index("sleeper started") < out.index("process trees tracked by"), out
    assert len(daemon.pids("sleeper")) == 2


def test_a_stop_children_watcher_still_gets_its_tree_tracked_from_its_first_spawn(
    circusd: Callable[..., Any],
) -> None:
    daemon = circusd("[watcher:tree]\ncmd = sleep 300\nnumprocesses = 1\nstop_children = true\n")
    wait_until(lambda: "process trees tracked by" in daemon.output(), 30, "the tracking line")
    (pid,) = daemon.pids("tree")
    with open(f"/proc/{pid}/cgroup") as fh:
        cgroup = next(line[3:].strip() for line in fh if line.startswith("0::"))
    if "cgroup2:" in daemon.output():  # cgroup2 usable here: the worker is in a leaf of ours
        assert f"/circus.{daemon.proc.pid}/" in cgroup, cgroup


GC_HOOK = """
import gc


def record(watcher, arbiter, hook_name, **kwargs):
    with open(watcher.env["GC_LOG"], "a") as log:
        log.write(f"{hook_name} {gc.isenabled()}\\n")
    return True
"""


def test_the_collector_is_off_while_autostart_watchers_spawn_and_on_once_they_run(
    circusd: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gchook.py").write_text(GC_HOOK)
    # circusd imports the hook from there
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    )
    log = tmp_path / "gc.log"
    daemon = circusd(
        "[watcher:sleeper]\ncmd = sleep 300\nnumprocesses = 2\n"
        "hooks.before_spawn = gchook.record\nhooks.before_signal = gchook.record\n"
        f"[env:sleeper]\nGC_LOG = {log}\n"
    )
    wait_until(lambda: len(daemon.pids("sleeper")) == 2, 30, "2 sleepers")
    wait_until(lambda: "process trees tracked by" in daemon.output(), 30, "the daemon serving")
    assert daemon.call("signal", name="sleeper", signum="CONT")["status"] == "ok"
    wait_until(lambda: "before_signal" in log.read_text(), 30, "the signal hook")
    lines = log.read_text().split("\n")
    spawns = [line for line in lines if line.startswith("before_spawn")]
    assert spawns[:2] == ["before_spawn False", "before_spawn False"], lines
    assert all(line.endswith("True") for line in lines if line.startswith("before_signal"))

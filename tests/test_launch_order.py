"""What ``circusd my.ini`` does before the autostart watchers' first spawn, and what it leaves
for later: the cgroup subtree and the sweep of dead daemons' cgroups (about 10 ms) wait
until the watchers are started (bench/README.md, "Daemon launch")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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

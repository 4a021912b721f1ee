"""``[plugin:NAME]`` sections run as upstream runs them: a supervised ``plugin:NAME`` watcher."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import psutil

SLEEP = f"{sys.executable} -c 'import time; time.sleep(300)'"
WATCHER = f"\n[watcher:w]\ncmd = {SLEEP}\ngraceful_timeout = 5\n"
FLAPPING = "\n[plugin:flapping]\nuse = circus.plugins.flapping.Flapping\nwindow = 30\n"


def _plugin_pid(daemon: Any, e2e: Any, before: int | None = None) -> int:
    pids = e2e.wait(
        lambda: (p := daemon.pids("plugin:flapping")) and p != [before] and p,
        20,
        "a plugin:flapping process",
    )
    assert len(pids) == 1
    return int(pids[0])


def test_plugin_is_a_supervised_watcher(circusd: Any, e2e: Any) -> None:
    daemon = circusd(WATCHER + FLAPPING)
    assert daemon.call("list")["watchers"] == ["plugin:flapping", "w"]
    statuses = daemon.call("status")["statuses"]
    assert statuses == {"plugin:flapping": "active", "w": "active"}
    options = daemon.call("options", name="plugin:flapping")["options"]
    assert options["singleton"] and options["copy_env"] and options["copy_path"]
    assert options["priority"] == 1 and options["numprocesses"] == 1

    pid = _plugin_pid(daemon, e2e)
    proc = psutil.Process(pid)
    assert daemon.proc is not None and proc.ppid() == daemon.proc.pid
    expected = [sys.executable, "-P", "-m", "circus.arbiter.circus_plugin"]
    # on a loaded machine the new process may still be between fork and exec when listed
    cmdline = e2e.wait(lambda: (c := proc.cmdline())[:4] == expected and c, 20, "the exec")
    assert "window=30" in cmdline and cmdline[-1] == "circus.plugins.flapping.Flapping"
    assert "--endpoint" in cmdline and daemon.endpoint in cmdline
    # the plugin in that process does its work: w got its flapping detection
    e2e.wait(
        lambda: (
            daemon.call("get", name="w", keys=["flapping.window"])["options"]
            == {"flapping.window": 30.0}
        ),
        20,
        "the plugin to configure w",
    )

    # a dead plugin process is respawned
    os.kill(pid, signal.SIGKILL)
    pid = _plugin_pid(daemon, e2e, before=pid)
    assert psutil.Process(pid).ppid() == daemon.proc.pid

    # stop/start like any watcher
    assert daemon.call("stop", name="plugin:flapping", waiting=True)["status"] == "ok"
    e2e.wait(lambda: not e2e.alive(pid), 10, "the plugin process to end")
    assert daemon.call("status", name="plugin:flapping")["status"] == "stopped"
    assert daemon.pids("plugin:flapping") == []
    assert daemon.call("start", name="plugin:flapping", waiting=True)["status"] == "ok"
    pid = _plugin_pid(daemon, e2e, before=pid)

    # a removed section removes its watcher (and ends its process) on reloadconfig
    daemon.write(WATCHER)
    assert daemon.call("reloadconfig", waiting=True)["status"] == "ok"
    assert daemon.call("list")["watchers"] == ["w"]
    e2e.wait(lambda: not e2e.alive(pid), 10, "the removed plugin's process to end")


def test_reloadconfig_adds_and_changes_plugins(circusd: Any, e2e: Any) -> None:
    daemon = circusd(WATCHER)
    assert daemon.call("list")["watchers"] == ["w"]
    w_pids = daemon.pids("w")
    daemon.write(WATCHER + FLAPPING)
    assert daemon.call("reloadconfig", waiting=True)["status"] == "ok"
    assert daemon.call("list")["watchers"] == ["plugin:flapping", "w"]
    pid = _plugin_pid(daemon, e2e)
    # an unchanged reload keeps the plugin's process
    assert daemon.call("reloadconfig", waiting=True)["status"] == "ok"
    assert daemon.pids("plugin:flapping") == [pid]
    # a changed section re-creates it with the new options; other watchers are untouched
    daemon.write(WATCHER + FLAPPING.replace("window = 30", "window = 40"))
    assert daemon.call("reloadconfig", waiting=True)["status"] == "ok"
    _plugin_pid(daemon, e2e, before=pid)

    def runs_with_new_options() -> bool:
        # the plugin process may still be exec'ing (or, on a loaded machine, respawning)
        for p in daemon.pids("plugin:flapping"):
            try:
                if "window=40" in psutil.Process(p).cmdline():
                    return True
            except psutil.Error:
                pass
        return False

    e2e.wait(runs_with_new_options, 20, "the plugin to run with window=40")
    assert daemon.pids("w") == w_pids


def test_quit_stops_the_plugin_process(circusd: Any, e2e: Any) -> None:
    daemon = circusd(WATCHER + FLAPPING)
    pid = _plugin_pid(daemon, e2e)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    assert not e2e.alive(pid)

"""``depends_on`` changed by ``set`` at run time: what the new image of a daemon-reexec uses,
and what a ``reloadconfig`` keeps (not replaced by the config file's unless that changed)."""

from __future__ import annotations

import pytest
from circus.process.testing import wait_until

CONFIG = """
[watcher:db]
cmd = sleep 600
graceful_timeout = 5

[watcher:cache]
cmd = sleep 600
graceful_timeout = 5

[watcher:web]
cmd = sleep 600
graceful_timeout = 5
depends_on = db
"""


@pytest.mark.slow
def test_depends_on_set_at_run_time_carries_over(circusd) -> None:
    daemon = circusd(CONFIG)
    wait_until(lambda: daemon.pids("web") and daemon.pids("cache"), 30, "up")

    def deps(name: str) -> object:
        return daemon.call("get", name=name, keys=["depends_on"])["options"]["depends_on"]

    assert deps("web") == ["db"]
    for name, value in (("web", []), ("cache", ["web"])):
        answer = daemon.call("set", name=name, options={"depends_on": value}, waiting=True)
        assert answer["status"] == "ok", answer
    answer = daemon.call("daemon-reexec", timeout=60)
    assert answer["status"] == "ok", answer
    wait_until(lambda: "generation 1 serving" in daemon.output(), 60, "the new image serving")
    assert deps("web") == [] and deps("cache") == ["web"] and deps("db") == []
    assert daemon.call("options", name="cache")["options"]["depends_on"] == ["web"]
    assert "depends_on" not in daemon.call("options", name="web")["options"]


def test_reloadconfig_keeps_a_set_depends_on_unless_the_file_changes_it(circusd) -> None:
    """As for the watcher options: a ``set`` value stays until the file's own value for that
    watcher changes (or the watcher is made again)."""
    daemon = circusd(CONFIG)
    wait_until(lambda: daemon.pids("web") and daemon.pids("cache"), 30, "up")

    def deps(name: str) -> object:
        return daemon.call("get", name=name, keys=["depends_on"])["options"]["depends_on"]

    for name, value in (("web", []), ("cache", ["db"])):
        answer = daemon.call("set", name=name, options={"depends_on": value}, waiting=True)
        assert answer["status"] == "ok", answer
    assert daemon.call("reloadconfig", waiting=True)["status"] == "ok"
    assert deps("web") == [] and deps("cache") == ["db"]  # the file did not change them
    daemon.write(CONFIG.replace("depends_on = db", "depends_on = cache"))
    assert daemon.call("reloadconfig", waiting=True)["status"] == "ok"
    assert deps("web") == ["cache"]  # the file's new value
    assert deps("cache") == ["db"]  # its section is as before: the set value stays

"""With cgroup2 tree tracking, the new image takes back the subtree the old one made in
this pid: handed workers keep their leaves (their trees, setsid'd grandchildren included,
are stopped whole), new workers get leaves numbered after them, and the subtree is removed
when circusd exits."""

from __future__ import annotations

import os
import re
import signal

import pytest
from circus.process.testing import wait_until

CONFIG = """
[watcher:tree]
cmd = sh -c 'setsid sleep 600 & exec sleep 600'
numprocesses = 2
stop_children = true
graceful_timeout = 2
"""


def _cgroup(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as fh:
        return next(line[3:].strip() for line in fh if line.startswith("0::"))


@pytest.mark.slow
def test_the_cgroup_subtree_is_taken_back(circusd, e2e) -> None:
    daemon = circusd(CONFIG)
    wait_until(lambda: len(daemon.pids("tree")) == 2, 30, "2 workers")
    tracked = re.search(r"process trees tracked by (\S+)", daemon.output())
    if tracked is None or not tracked.group(1).startswith("cgroup2:"):
        pytest.skip("cgroup2 tree tracking is not available here")
    subtree = tracked.group(1)[len("cgroup2:") :]
    wait_until(lambda: len(daemon.track()) >= 4, 30, "the setsid'd grandchildren")
    tree = set(daemon.track())
    leaves = {pid: _cgroup(pid) for pid in daemon.pids("tree")}

    answer = daemon.call("daemon-reexec", timeout=60)
    assert answer["status"] == "ok", answer
    wait_until(lambda: "generation 1 serving" in daemon.output(), 60, "the new image serving")
    assert daemon.output().count(f"process trees tracked by cgroup2:{subtree}") == 2
    assert {pid: _cgroup(pid) for pid in daemon.pids("tree")} == leaves

    # the second handed worker's tree: itself and its setsid'd grandchild, in its leaf
    first, second = daemon.pids("tree")
    kept = {pid for pid in tree if e2e.alive(pid) and _cgroup(pid) == leaves[second]}
    assert len(kept) == 2, (kept, leaves)

    # a new worker gets a leaf of the same subtree, numbered after the handed ones
    os.kill(first, signal.SIGTERM)
    wait_until(lambda: set(daemon.pids("tree")) - set(leaves), 30, "a replacement")
    (new,) = set(daemon.pids("tree")) - set(leaves)
    numbers = [int(path.rsplit("/", 1)[1]) for path in leaves.values()]
    assert _cgroup(new).rsplit("/", 1)[0] == next(iter(leaves.values())).rsplit("/", 1)[0]
    assert int(_cgroup(new).rsplit("/", 1)[1]) > max(numbers)

    # the handed tree is stopped whole, its setsid'd grandchild included
    assert daemon.call("stop", name="tree", waiting=True)["status"] == "ok"
    assert [pid for pid in kept if e2e.alive(pid)] == []
    assert daemon.stop() == 0
    assert not os.path.exists(subtree), "the subtree outlived circusd"

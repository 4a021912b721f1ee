"""Upstream example10's shape through circusd: a ``before_spawn`` hook named by dotted path in
the config sets ``watcher.env[...]``, and the process spawned next is given that value."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from circus.process.testing import wait_until

HOOKS = """
import itertools

_values = itertools.count(10)


def set_var(watcher, arbiter, hook_name):
    watcher.env["myvar"] = str(next(_values))
    return True
"""


def test_before_spawn_hook_sets_the_spawned_process_env(
    circusd: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ex10hooks.py").write_text(HOOKS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # circusd imports the hook from there
    out = tmp_path / "out"
    writer = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10))"
    daemon = circusd(
        f"""
[watcher:vars]
cmd = {sys.executable} -c "{writer}" {out} $(circus.env.myvar)
hooks.before_spawn = ex10hooks.set_var
respawn = false
graceful_timeout = 2
"""
    )
    wait_until(lambda: out.exists() and out.read_text(), 30, "the first process's line")
    assert out.read_text().split() == ["10"]
    wait_until(lambda: daemon.call("status", name="vars")["status"] == "stopped", 30, "it to end")
    assert daemon.call("start", name="vars")["status"] == "ok"
    wait_until(lambda: len(out.read_text().split()) == 2, 30, "the second process's line")
    assert out.read_text().split() == ["10", "11"]  # each spawn got the hook's new value
    options = daemon.call("options", name="vars")["options"]
    assert options["env"] == {"myvar": "11"}
    assert "hook_failure" not in daemon.output()

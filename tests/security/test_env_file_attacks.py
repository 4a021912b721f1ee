"""``env_file`` of a root circusd turned into something that is not a file.

Environment files often live in the app's own directory, writable by the app's user. That
user may replace one with a FIFO (an ``open()`` that never returns without a writer) or a
link to a device (``/dev/zero``: endless): the next start of the watcher must fail with the
option's error, and circusd must keep answering.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from circus.ctl.errors import CallTimeout
from circus.process.testing import wait_until

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the daemon the attack aims at)"),
]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_env_file_swapped_for_a_fifo_or_device(circusd: Any, tmp_path: Path, kind: str) -> None:
    env = tmp_path / "app.env"
    env.write_text("GREETING=hello\n")
    daemon = circusd(f"[watcher:w]\ncmd = /bin/sleep 300\nenv_file = {env}\n")
    assert len(daemon.pids("w")) == 1
    env.unlink()
    if kind == "fifo":
        os.mkfifo(env, 0o644)
    else:
        env.symlink_to("/dev/zero")
    try:
        answer = daemon.call("restart", name="w", timeout=15)
        # the start may come after the answer: refused, and said so, or circusd is stuck
        wait_until(lambda: "not a regular file" in daemon.output(), 20, "the refusal logged")
        assert daemon.call("numwatchers", timeout=10)["status"] == "ok"
    except CallTimeout:
        pytest.fail(f"circusd stopped answering: restart of a watcher whose env_file is a {kind}")
    assert daemon.pids("w") == [], answer

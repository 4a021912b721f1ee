"""``[circus] spawn_thread``: a child that set a parent-death signal and daemon-reexec.

``PR_SET_PDEATHSIG`` fires when the thread that forked the child ends; ``daemon-reexec`` ends
every thread of circusd but the main one. With ``spawn_thread = off`` every child is forked
by the main thread and keeps running; forked by the spawn thread (here from 0 descriptors:
every spawn), it gets its signal at the switch. The option is applied at start, by
``reloadconfig``, and again by the new image.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

CHILD = """\
import ctypes, signal
ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
while True:
    signal.pause()
"""


@pytest.mark.slow
def test_with_spawn_thread_off_a_pdeathsig_child_survives_daemon_reexec(
    circusd, tmp_path: Path, wait, is_alive
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    early = f"""
[watcher:early]
cmd = {sys.executable} {script}
graceful_timeout = 5
"""
    late = f"""
[watcher:late]
cmd = {sys.executable} {script}
graceful_timeout = 5
"""
    daemon = circusd("[circus]\nspawn_thread = 0\n" + early)
    wait(lambda: len(daemon.pids("early")) == 1, 30, "the early process")
    (early_pid,) = daemon.pids("early")

    daemon.write("[circus]\nspawn_thread = off\n" + early + late)
    answer = daemon.call("reloadconfig", timeout=30)
    assert answer["status"] == "ok", answer
    wait(lambda: len(daemon.pids("late")) == 1, 30, "the late process")
    (late_pid,) = daemon.pids("late")
    assert daemon.pids("early") == [early_pid]  # the reload kept it running
    assert is_alive(early_pid)

    answer = daemon.call("daemon-reexec", timeout=60)
    assert answer["status"] == "ok", answer
    wait(lambda: "generation 1 serving" in daemon.output(), 60, "the new image serving")
    # forked by the spawn thread (spawn_thread = 0 then): killed when the thread ended
    wait(lambda: not is_alive(early_pid), 30, "the early process killed by its signal")
    # forked by the main thread (spawn_thread = off): still the late watcher's process
    assert is_alive(late_pid)
    assert daemon.pids("late") == [late_pid]
    # the new image runs with the option too: a respawned early process survives an exec
    wait(lambda: len(daemon.pids("early")) == 1, 30, "early respawned")
    (respawned,) = daemon.pids("early")
    answer = daemon.call("daemon-reexec", timeout=60)
    assert answer["status"] == "ok", answer
    wait(lambda: "generation 2 serving" in daemon.output(), 60, "the second new image serving")
    assert is_alive(respawned) and is_alive(late_pid)
    assert daemon.pids("early") == [respawned]

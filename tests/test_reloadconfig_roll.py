"""Deploys by config that drop nothing: ``circusctl reloadconfig --waiting`` after editing a watcher
with readiness rolls it instead of stopping it and starting a new one.

The pre-fork app of examples/rolling/ serves on a ``[socket:]`` circusd holds; each release
lives in its own directory (``app.py`` and a ``version`` file) and a deploy edits the watcher's
``cmd`` and ``working_dir`` to point at the new one. A client requests it at a steady rate
throughout (examples/rolling/hammer.py): a request refused, failed or answered after more than
0.5 s counts as failed. Stopping the old watcher before the new one is ready fails every request
due while the new workers load.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from circus.process.testing import wait_until

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "rolling"
CIRCUSCTL = str(Path(sys.executable).with_name("circusctl"))
WORKERS = 3

pytestmark = pytest.mark.slow


def _hammer_class() -> Any:
    spec = importlib.util.spec_from_file_location("rolling_hammer_cfg", EXAMPLE / "hammer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look the module up
    spec.loader.exec_module(module)
    return module.Hammer


Hammer = _hammer_class()


def _release(root: Path, version: str) -> Path:
    where = root / version
    where.mkdir()
    shutil.copy(EXAMPLE / "app.py", where / "app.py")
    (where / "version").write_text(f"{version}\n")
    return where


def _config(release: Path, extra: str = "") -> str:
    return (
        "[socket:web]\nhost = 127.0.0.1\nport = 0\n"
        f"[watcher:web]\ncmd = {sys.executable} {release / 'app.py'} $(circus.sockets.web)\n"
        f"working_dir = {release}\nuse_sockets = true\nnumprocesses = {WORKERS}\n"
        "graceful_timeout = 5\nreadiness = notify\nreadiness_timeout = 4\n"
        "[env:web]\nAPP_WARMUP = 1\n" + extra
    )


def _serving(daemon: Any) -> tuple[set[int], int]:
    answer = daemon.call("start", name="web", waiting=True, timeout=30)
    assert answer["status"] == "ok", answer
    (row,) = daemon.call("listsockets")["sockets"]
    return set(daemon.pids("web")), int(row["port"])


def _reloadconfig(daemon: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CIRCUSCTL, "--endpoint", daemon.endpoint, "--timeout", "60", "reloadconfig", "--waiting"],
        capture_output=True,
        text=True,
        timeout=90,
    )


def _answers(hammer: Any, version: str, count: int) -> None:
    wait_until(
        lambda: hammer.tally.versions[version] >= count,
        30,
        f"{count} answers from {version} ({hammer.tally})",
    )


def _release_of(pid: int) -> str:
    return psutil.Process(pid).cwd()


def test_reloadconfig_with_a_new_cmd_rolls_and_drops_no_request(circusd: Any) -> None:
    daemon = circusd(start=False)
    v1, v2 = _release(daemon.dir, "v1"), _release(daemon.dir, "v2")
    daemon.write(_config(v1))
    daemon.start()
    old, port = _serving(daemon)
    with Hammer(port, rate=100) as hammer:
        _answers(hammer, "v1", 30)
        daemon.write(_config(v2))
        done = _reloadconfig(daemon)
        assert done.returncode == 0, done.stdout + done.stderr
        new = set(daemon.pids("web"))
        assert len(new) == WORKERS and not new & old, (old, new)
        assert {_release_of(pid) for pid in new} == {str(v2)}
        _answers(hammer, "v2", 30)
    tally = hammer.tally
    assert tally.failed == 0, f"{tally}: {tally.samples}"
    assert tally.refused == 0


def test_a_broken_release_keeps_the_old_workers_and_the_answer_names_it(circusd: Any) -> None:
    daemon = circusd(start=False)
    v1, v2 = _release(daemon.dir, "v1"), _release(daemon.dir, "v2")
    broken = _release(daemon.dir, "broken")
    daemon.write(_config(v1))
    daemon.start()
    old, port = _serving(daemon)
    other = f"[watcher:other]\ncmd = {sys.executable} -c 'import time; time.sleep(600)'\n"
    with Hammer(port, rate=100) as hammer:
        _answers(hammer, "v1", 30)
        daemon.write(_config(broken, other))
        done = _reloadconfig(daemon)
        output = done.stdout + done.stderr
        assert done.returncode != 0, output
        assert "watcher 'web'" in output and "not ready after 4 s" in output, output
        # the old workers, still answering; the rest of the config was applied
        assert set(daemon.pids("web")) == old
        assert len(daemon.pids("other")) == 1
        before = hammer.tally.versions["v1"]
        _answers(hammer, "v1", before + 30)
    tally = hammer.tally
    assert tally.failed == 0, f"{tally}: {tally.samples}"
    assert set(tally.versions) == {"v1"}, tally
    # the old options are back: a worker that dies is replaced from the old release
    victim = min(old)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len(set(daemon.pids("web")) - old) == 1, 30, "the killed worker replaced")
    (respawned,) = set(daemon.pids("web")) - old
    assert _release_of(respawned) == str(v1)
    # the failed section is not taken as applied: fixed, the next reloadconfig rolls
    daemon.write(_config(v2, other))
    done = _reloadconfig(daemon)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {_release_of(pid) for pid in daemon.pids("web")} == {str(v2)}
    assert re.search(r"reloadconfig: watcher web not rolled", daemon.output())

"""``Watcher.redeploy``: a whole new set of options, rolled in; a release that never gets
ready puts the old options back (the old processes keep running, and respawn as before)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from circus.process.testing import async_wait_until
from circus.watcher import RolloutError, WatcherError, WatcherOptions

# argv[1]: the release; "broken" never says READY=1
CHILD = r"""
import os, socket, sys, time
if sys.argv[1] != "broken":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
while True:
    time.sleep(1)
"""


def _options(script: Path, release: str, **more: Any) -> dict[str, Any]:
    return {
        "cmd": f"{sys.executable} {script} {release}",
        "numprocesses": 2,
        "readiness": "notify",
        "readiness_timeout": 1.5,
        "graceful_timeout": 5.0,
        **more,
    }


def _release_of(pid: int) -> str:
    return str(psutil.Process(pid).cmdline()[-1])


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "child.py"
    path.write_text(CHILD)
    return path


def test_redeploy_rolls_every_process_to_the_new_options(
    make: Any, run_async: Any, script: Path
) -> None:
    async def main() -> None:
        options = _options(script, "v1")
        w = make(options.pop("cmd"), **options)
        await w.start()
        await w.wait_ready()
        old = set(w.pids)
        info = await w.redeploy(WatcherOptions.build(_options(script, "v2", numprocesses=3)))
        assert set(info["stopped"]) == old and not set(w.pids) & old
        assert len(w.pids) == 3 and {_release_of(pid) for pid in w.pids} == {"v2"}
        assert w.settings.cmd.endswith(" v2")

    run_async(main)


def test_a_release_never_ready_puts_the_old_options_back(
    make: Any, run_async: Any, script: Path
) -> None:
    async def main() -> None:
        options = _options(script, "v1")
        w = make(options.pop("cmd"), **options)
        await w.start()
        await w.wait_ready()
        before, old = w.settings, set(w.pids)
        with pytest.raises(RolloutError, match="not ready after 1.5 s"):
            await w.redeploy(WatcherOptions.build(_options(script, "broken")))
        assert set(w.pids) == old and w.settings == before
        # a process that dies now is replaced from the old release, not the broken one
        os.kill(min(old), signal.SIGKILL)
        await async_wait_until(lambda: len(set(w.pids) - old) == 1, 30, "a respawn")
        (respawned,) = set(w.pids) - old
        assert _release_of(respawned) == "v1"

    run_async(main)


def test_only_an_active_watcher_with_readiness_before_and_after_redeploys(
    make: Any, run_async: Any, script: Path
) -> None:
    async def main() -> None:
        options = _options(script, "v1")
        w = make(options.pop("cmd"), **options)
        before = w.settings
        with pytest.raises(WatcherError, match="only an active watcher"):
            await w.redeploy(WatcherOptions.build(_options(script, "v2")))  # stopped
        await w.start()
        await w.wait_ready()
        plain = _options(script, "v2")
        plain.pop("readiness")
        with pytest.raises(WatcherError, match="only an active watcher"):
            await w.redeploy(WatcherOptions.build(plain))
        streams = _options(script, "v2", stdout_stream={"class": "StdoutStream"})
        with pytest.raises(WatcherError, match="output streams changed"):
            await w.redeploy(WatcherOptions.build(streams))
        assert w.settings == before

    run_async(main)

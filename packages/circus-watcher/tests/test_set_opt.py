"""Run-time ``set``: validation, effects, reloads and ``updated`` events."""

from __future__ import annotations

import signal
import tempfile
from typing import Any

import pytest
from circus.process.testing import async_wait_until
from circus.watcher import OptionError, UnknownOptionError


def test_set_cmd_reloads_gracefully(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sleep 300", numprocesses=2)
        await w.start()
        old = set(w.pids)
        await w.set_opt("cmd", "sleep 301")
        assert recorder.names().count("updated") == 1
        assert "reload" in recorder.names()
        assert len(w.pids) == 2 and not old & set(w.pids)
        assert w.get_opt("cmd") == "sleep 301"
        assert all(p.argv == ["sleep", "301"] for p in w.processes.values())

    run_async(main)


def test_set_numprocesses(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sleep 300")
        await w.start()
        await w.set_opt("numprocesses", "3")
        assert len(w.pids) == 3 and recorder.names()[-1] == "updated"

    run_async(main)


def test_set_without_reload(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sleep 300")
        await w.start()
        pids = w.pids
        await w.set_opt("graceful_timeout", 1.5)
        await w.set_opt("stop_signal", "INT")
        await w.set_opt("respawn", "on-failure")
        await w.set_opt("flapping.attempts", 4)
        await w.set_opt("rlimit_nofile", 200)
        await w.set_opt("stdout_stream.class", "QueueStream")  # a stream change reloads
        assert w.get_opt("graceful_timeout") == 1.5
        assert w.get_opt("stop_signal") == signal.SIGINT
        assert w.get_opt("respawn") == "on-failure"
        assert w.get_opt("flapping.attempts") == 4
        assert w.get_opt("rlimit_nofile") == 200
        assert recorder.names().count("updated") == 6
        assert w.pids != pids  # reloaded by the stream change only
        assert recorder.names().count("reload") == 1
        await w.stop()
        assert recorder.of("reap")[-1]["exit_code"] == -signal.SIGINT

    run_async(main)


def test_set_env_reloads_and_applies(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sleep 300")
        await w.start()
        await w.set_opt("env", {"A": "1"})
        assert next(iter(w.processes.values())).child_env == {"A": "1"}

    run_async(main)


def test_set_rejects(make: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sleep 300")
        with pytest.raises(UnknownOptionError, match="did you mean 'graceful_timeout'"):
            await w.set_opt("graceful_timout", 1)
        with pytest.raises(UnknownOptionError, match="cannot change at run time: 'priority'"):
            await w.set_opt("priority", 3)  # as upstream
        with pytest.raises(OptionError, match="'warmup_delay'"):
            await w.set_opt("warmup_delay", "later")
        await w.set_opt("numprocesses", 2)
        with pytest.raises(OptionError, match="singleton"):
            await w.set_opt("singleton", True)

    run_async(main)


def test_set_stream_on_running_watcher_writes_new_output_there(
    make: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, run_async: Any
) -> None:
    """``set stdout_stream.*`` while active: the reload's new processes write to the new
    stream (it used to keep the streams opened at start, i.e. none)."""

    async def main() -> None:
        # the class alone is a nameless FileStream for a moment: its temp file lands here
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        first, second = tmp_path / "first.log", tmp_path / "second.log"
        script = "echo line-$$; exec sleep 300"
        w = make(f"sh -c '{script}'", numprocesses=1)
        await w.start()
        await w.set_opt("stdout_stream.class", "FileStream")
        await w.set_opt("stdout_stream.filename", str(first))
        (pid,) = w.pids

        async def wait_for_line(path: Any, pid: int) -> None:
            def written() -> bool:
                return f"line-{pid}" in (path.read_text() if path.exists() else "")

            await async_wait_until(written, 10, f"output of {pid} in {path}")

        await wait_for_line(first, pid)
        await w.set_opt("stdout_stream.filename", str(second))
        (new_pid,) = w.pids
        assert new_pid != pid
        await wait_for_line(second, new_pid)
        assert f"line-{new_pid}" not in first.read_text()
        await w.stop()

    run_async(main)

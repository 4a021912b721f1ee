"""Run-time ``set``: validation, effects, reloads and ``updated`` events."""

from __future__ import annotations

import signal
import tempfile
from typing import Any

import pytest
from circus.process.testing import async_wait_until
from circus.watcher import OptionError, UnknownOptionError, WatcherError


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


def test_set_opts_applies_keys_together_with_one_reload(
    make: Any, recorder: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, run_async: Any
) -> None:
    """``set_opts``: a stream's class and file in one call reload once, straight onto the
    file (the class alone is never a nameless stream meanwhile)."""

    async def main() -> None:
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
        (tmp_path / "tmp").mkdir()
        log = tmp_path / "out.log"
        w = make("sh -c 'echo line-$$; exec sleep 300'", numprocesses=2)
        await w.start()
        old = set(w.pids)
        await w.set_opts(
            {
                "stdout_stream.class": "FileStream",
                "stdout_stream.filename": str(log),
                "graceful_timeout": 2.0,
                "numprocesses": 1,
            }
        )
        assert recorder.names().count("reload") == 1
        assert recorder.names().count("updated") == 1
        (pid,) = w.pids
        assert pid not in old and w.get_opt("graceful_timeout") == 2.0

        def written() -> bool:
            return f"line-{pid}" in (log.read_text() if log.exists() else "")

        await async_wait_until(written, 10, "the new process's line in the file")
        assert list((tmp_path / "tmp").iterdir()) == []

    run_async(main)


def test_set_opts_refuses_a_bad_set_whole(
    make: Any, recorder: Any, tmp_path: Any, run_async: Any
) -> None:
    """One bad key, a stream its class refuses, a stream that cannot be opened, a broken
    cross-option rule: nothing of the set is applied, no process replaced."""

    async def main() -> None:
        w = make("sleep 300")
        await w.start()
        pids, settings = w.pids, w.settings
        bad_sets = [
            ({"numprocesses": 3, "graceful_timeout": "soon"}, OptionError),
            ({"numprocesses": 3, "bogus": 1}, UnknownOptionError),
            ({"cmd": "sleep 301", "stdout_stream.class": "NoSuchStream"}, OptionError),
            (
                {"numprocesses": 2, "stdout_stream.filename": str(tmp_path / "x"),
                 "stdout_stream.backup_count": "many"},
                OptionError,
            ),
            (
                {"numprocesses": 2, "cmd": "sleep 302",
                 "stderr_stream.filename": str(tmp_path / "no" / "dir" / "x.log")},
                WatcherError,
            ),
            ({"numprocesses": 2, "singleton": True}, OptionError),
        ]  # fmt: skip
        for options, error in bad_sets:
            if error is not WatcherError:  # what only opening the stream tells
                with pytest.raises(error):
                    w.check_opts(options)
            with pytest.raises(error):
                await w.set_opts(options)
            assert w.settings == settings and w.pids == pids, options
        assert recorder.names().count("updated") == 0
        assert "reload" not in recorder.names()
        # changed together, a pair that one at a time would break the rule on the way
        await w.set_opts({"numprocesses": 2})
        await w.set_opts({"singleton": True, "numprocesses": 1})
        assert w.singleton and len(w.pids) == 1

    run_async(main)

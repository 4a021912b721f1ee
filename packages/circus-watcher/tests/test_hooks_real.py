"""Hooks on a real watcher: when each runs, its kwargs, and what a refusal does."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from circus.watcher import HOOK_NAMES

SLEEP = "sleep 300"


class Calls:
    """Hook implementations that record their calls; ``answer`` sets the return value."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answer: dict[str, Any] = {}

    def hook(self, name: str) -> Any:
        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return self.answer.get(name, True)

        return call

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def kwargs(self, name: str) -> dict[str, Any]:
        return next(kw for n, kw in self.calls if n == name)


ALL = list(HOOK_NAMES)


def test_every_hook_runs_with_its_kwargs(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        calls = Calls()
        w = make(SLEEP, hooks={name: calls.hook(name) for name in ALL})
        await w.start()
        assert calls.names() == ["before_start", "before_spawn", "after_spawn", "after_start"]
        pid = w.pids[0]
        assert calls.kwargs("after_spawn")["pid"] == pid
        stats = await w.stats(extended=True)
        assert calls.kwargs("extended_stats")["stats"] is stats[pid]
        await w.signal("CONT")  # harmless to sleep
        await w.stop()
        names = calls.names()
        assert names[4:] == [
            "extended_stats", "before_signal", "after_signal", "before_stop", "before_signal",
            "after_signal", "before_reap", "after_reap", "after_stop",
        ]  # fmt: skip
        for name, kwargs in calls.calls:
            assert kwargs["watcher"] is w and kwargs["arbiter"] is None
            assert kwargs["hook_name"] == name
        assert set(calls.kwargs("before_signal")) >= {"pid", "signum"}
        assert set(calls.kwargs("before_reap")) == {"watcher", "arbiter", "hook_name",
                                                     "process_pid", "time"}  # fmt: skip
        after_reap = calls.kwargs("after_reap")
        assert set(after_reap) - {"watcher", "arbiter", "hook_name"} == {
            "process_pid", "time", "exit_code", "process_status",
        }  # fmt: skip
        assert after_reap["exit_code"] == -15
        assert recorder.count("hook_success") == len(calls.calls)

    run_async(main)


def test_before_start_refusal_aborts(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        calls = Calls()
        calls.answer["before_start"] = False
        w = make(SLEEP, hooks={"before_start": calls.hook("before_start")})
        info = await w.start()
        assert info["started"] == [] and w.status() == "stopped" and w.pids == []
        assert recorder.count("spawn") == 0

    run_async(main)


def test_after_start_refusal_stops(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        calls = Calls()
        calls.answer["after_start"] = None  # falsy, as upstream
        w = make(SLEEP, hooks={"after_start": calls.hook("after_start")})
        await w.start()
        assert w.status() == "stopped" and recorder.count("reap") == 1

    run_async(main)


@pytest.mark.parametrize("hook", ["before_spawn", "after_spawn"])
def test_spawn_hook_refusal_stops_the_watcher(
    make: Any, recorder: Any, hook: str, run_async: Any
) -> None:
    async def main() -> None:
        calls = Calls()
        calls.answer[hook] = False
        w = make(SLEEP, numprocesses=2, hooks={hook: calls.hook(hook)})
        await w.start()
        await recorder.until(w.is_stopped)
        assert w.pids == []
        assert recorder.count("spawn") == (1 if hook == "after_spawn" else 0)

    run_async(main)


def test_before_signal_refusal_suppresses_the_signal(
    make: Any, recorder: Any, run_async: Any
) -> None:
    async def main() -> None:
        calls = Calls()
        calls.answer["before_signal"] = False
        w = make(SLEEP, hooks={"before_signal": calls.hook("before_signal")}, graceful_timeout=0.2)
        await w.start()
        pid = w.pids[0]
        await w.signal(15)
        await asyncio.sleep(0)  # the refused signal would otherwise be pending right now
        assert w.pids == [pid]
        await w.stop()  # no SIGTERM, so SIGKILL after the graceful timeout
        assert recorder.of("reap")[0]["exit_code"] == -9

    run_async(main)


def test_failing_hook_and_ignore_flag(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        def boom(**kwargs: Any) -> bool:
            raise RuntimeError("boom")

        w = make(SLEEP, hooks={"before_start": boom})
        await w.start()
        assert w.status() == "stopped"
        failure = recorder.of("hook_failure")[0]
        assert failure["name"] == "before_start" and "boom" in failure["error"]
        w2 = make(SLEEP, name="w2", hooks={"before_start": (boom, True)})
        await w2.start()
        assert w2.status() == "active"

    run_async(main)


def test_hanging_hook_does_not_wedge(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        release = threading.Event()

        def hang(**kwargs: Any) -> bool:
            release.wait(30)
            return True

        try:
            w = make(SLEEP, hooks={"before_start": hang}, hook_timeout=0.3)
            loop = asyncio.get_running_loop()
            begin = loop.time()
            await w.start()
            assert loop.time() - begin < 5
            assert w.status() == "stopped"
            assert recorder.of("hook_failure")[0]["error"] == "timed out"
        finally:
            release.set()

    run_async(main)


def test_dotted_path_hooks(make: Any, recorder: Any, tmp_path: Path, run_async: Any) -> None:
    async def main() -> None:
        (tmp_path / "myhooks.py").write_text(
            "seen = []\n"
            "def before_start(**kw):\n    seen.append(kw['hook_name']); return True\n"
            "async def after_start(**kw):\n    seen.append(kw['hook_name']); return True\n"
        )
        sys.path.insert(0, str(tmp_path))
        try:
            w = make(SLEEP, **{"hooks.before_start": "myhooks.before_start",
                               "hooks.after_start": "myhooks:after_start, false"})  # fmt: skip
            await w.start()
            import myhooks  # type: ignore[import-not-found]

            assert myhooks.seen == ["before_start", "after_start"]
        finally:
            sys.path.remove(str(tmp_path))
            sys.modules.pop("myhooks", None)

    run_async(main)


def test_set_hooks_at_run_time(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        calls = Calls()
        w = make(SLEEP)
        await w.start()
        await w.set_opt("hooks.before_stop", calls.hook("before_stop"))
        assert recorder.names()[-1] == "updated"
        await w.stop()
        assert calls.names() == ["before_stop"]
        assert os.getpid()  # the watcher and its hook ran in this process

    run_async(main)

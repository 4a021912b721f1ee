"""Hook resolution and calls, without processes."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from circus.watcher import HookError, OptionError
from circus.watcher._events import EventHub
from circus.watcher._hooks import call_hook, resolve, resolve_callable


def test_resolve_dotted_forms() -> None:
    import os.path

    assert resolve_callable("os.path.join") is os.path.join
    assert resolve_callable("os.path:join") is os.path.join
    assert resolve_callable("os:path.join") is os.path.join


def test_resolve_errors() -> None:
    with pytest.raises(HookError, match="nosuchmodule"):
        resolve_callable("nosuchmodule.fn")
    with pytest.raises(HookError, match="no attribute 'nosuchfn'"):
        resolve_callable("os.path.nosuchfn")
    with pytest.raises(HookError, match="'hooks.before_lunch'.*before_start") as info:
        resolve("before_lunch", "os.getcwd")
    assert info.value.option == "hooks.before_lunch" and info.value.value == "os.getcwd"
    with pytest.raises(HookError, match="ignore_errors"):
        resolve("before_start", "os.getcwd, perhaps")
    with pytest.raises(OptionError, match="'hooks.after_stop'.*importable"):
        resolve("after_stop", "nosuchmodule:fn")


def test_resolve_flags() -> None:
    assert resolve("before_start", "os.getcwd, true").ignore_errors is True
    assert resolve("before_start", "os.getcwd").ignore_errors is False
    assert resolve("before_start", ("os.getcwd", "yes")).ignore_errors is True
    assert resolve("before_start", len).func is len


def run(hook_spec: Any, name: str = "before_start", timeout: float = 5.0) -> tuple[bool, list]:
    hub = EventHub()
    seen: list = []
    hub.add_listener(lambda e, p: seen.append((e, p)))
    hook = resolve(name, hook_spec)

    async def main() -> bool:
        return await call_hook(hook, {"hook_name": name, "watcher": None}, timeout, hub.emit)

    return asyncio.run(main()), seen


def test_sync_hook_runs_in_a_thread_with_kwargs() -> None:
    got: dict[str, Any] = {}

    def hook(**kwargs: Any) -> bool:
        got.update(kwargs, thread=threading.current_thread().name)
        return True

    ok, seen = run(hook)
    assert ok
    assert got["hook_name"] == "before_start"
    assert got["thread"] != threading.main_thread().name
    assert seen[0][0] == "hook_success"
    assert set(seen[0][1]) == {"name", "time"}


def test_falsy_result_refuses_but_is_a_success_event() -> None:
    ok, seen = run(lambda **kw: None)
    assert not ok
    assert seen[0][0] == "hook_success"


def test_exception_refuses_unless_ignored() -> None:
    def boom(**kw: Any) -> bool:
        raise RuntimeError("kaput")

    ok, seen = run(boom)
    assert not ok
    assert seen[0][0] == "hook_failure"
    assert set(seen[0][1]) == {"name", "time", "error"}
    assert "kaput" in seen[0][1]["error"]
    assert run((boom, True))[0] is True
    assert run(boom, name="before_stop")[0] is True  # always ignored


def test_async_hook_is_awaited() -> None:
    async def hook(**kw: Any) -> bool:
        await asyncio.sleep(0)
        return True

    assert run(hook)[0] is True


def test_hanging_hooks_time_out() -> None:
    release = threading.Event()

    def hang(**kw: Any) -> bool:
        release.wait(10)
        return True

    async def ahang(**kw: Any) -> bool:
        await asyncio.sleep(10)
        return True

    try:
        ok, seen = run(hang, timeout=0.2)
        assert not ok
        assert seen[0][1]["error"] == "timed out"
        ok, seen = run(ahang, timeout=0.2)
        assert not ok and seen[0][0] == "hook_failure"
    finally:
        release.set()


def test_listener_errors_are_contained() -> None:
    hub = EventHub()
    seen: list[str] = []

    def bad(event: str, payload: dict) -> None:
        raise RuntimeError("listener bug")

    hub.add_listener(bad)
    hub.add_listener(lambda e, p: seen.append(e))
    hub.emit("start", {"time": 0.0})
    assert seen == ["start"]


def test_async_iterator_gets_events_and_unregisters() -> None:
    hub = EventHub()

    async def main() -> list[str]:
        got: list[str] = []
        iterator = hub.iterate()

        async def consume() -> None:
            async for event, _ in iterator:
                got.append(event)
                if len(got) == 2:
                    break

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0)
        hub.emit("spawn", {})
        hub.emit("start", {})
        await task
        await iterator.aclose()
        return got

    assert asyncio.run(main()) == ["spawn", "start"]
    assert hub.idle

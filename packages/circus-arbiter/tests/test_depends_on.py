"""``depends_on``: the graph, the config checks, and the order real watchers start and stop in."""

from __future__ import annotations

import asyncio
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from circus.arbiter import Arbiter
from circus.arbiter._depgraph import DependencyError, DepGraph, parse_names
from circus.arbiter.config import ConfigError, diff_configs, load_config
from circus.process.testing import async_wait_until

PY = sys.executable
SLEEP = f"{PY} -c 'import time; time.sleep(300)'"


# ---------------------------------------------------------------------- the graph


def test_parse_names_forms() -> None:
    assert parse_names("a, b\n c  d,") == ("a", "b", "c  d")  # a name may hold spaces
    assert parse_names(["a", "B", "b"]) == ("a", "B")
    assert parse_names(None) == ()
    for bad in (1, ["a", 2], {"a": 1}):
        with pytest.raises(TypeError):
            parse_names(bad)
    for bad in (["a", " "], ["a\0"], ",".join(f"n{i}" for i in range(1001)), "x" * 257):
        with pytest.raises(ValueError):
            parse_names(bad)


def test_graph_closures_and_cycles() -> None:
    graph = DepGraph()
    known = {"a", "b", "c", "d"}
    graph.set("b", ["a"])
    graph.set("c", ["B"])
    assert graph.required_closure(["c"]) == {"a", "b", "c"}
    assert graph.dependent_closure(["a"]) == {"a", "b", "c"}
    assert graph.dependents("A") == ["b"]
    assert graph.involves(["a"]) and not graph.involves(["d"])
    with pytest.raises(DependencyError) as info:
        graph.check("a", ["c"], known.__contains__)
    assert info.value.cycle == ("a", "c", "b", "a")
    assert "a -> c -> b -> a" in str(info.value)
    with pytest.raises(DependencyError, match="a -> a"):
        graph.check("a", ["a"], known.__contains__)
    with pytest.raises(DependencyError) as info:
        graph.check("d", ["a", "zz"], known.__contains__)
    assert info.value.missing == ("zz",)
    graph.check("d", ["c", "a"], known.__contains__)  # a diamond is no cycle
    graph.discard("c")
    assert graph.dependents("b") == []


# ---------------------------------------------------------------------- the config


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "circus.ini"
    path.write_text(text)
    return path


def test_config_reads_depends_on_apart_from_watcher_options(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        "[watcher:a]\ncmd = x\n\n[watcher:B]\ncmd = x\n\n"
        "[watcher:c]\ncmd = x\ndepends_on = a,\n  b\n",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "unknown option" warning for depends_on
        config = load_config(path)
    assert config.watcher("c").depends_on == ("a", "b")
    assert "depends_on" not in config.watcher("c").kwargs
    assert config.watcher("a").depends_on == ()


def test_config_unknown_dependency_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        "[watcher:web]\ncmd = x\n\n[watcher:worker]\ncmd = x\n# queue\ndepends_on = web, wbe2\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.filename == str(path) and info.value.lineno == 7
    assert str(info.value).startswith(f"{path}:7: [watcher:worker] depends_on = ")
    assert "'wbe2'" in str(info.value)


def test_config_cycle_is_an_error_naming_every_line(tmp_path: Path) -> None:
    inc = tmp_path / "more.ini"
    inc.write_text("[watcher:c]\ncmd = x\ndepends_on = a\n")
    path = _config(
        tmp_path,
        f"[circus]\ninclude = {inc.name}\n\n"
        "[watcher:a]\ncmd = x\ndepends_on = b\n\n[watcher:b]\ncmd = x\ndepends_on = c\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert info.value.option == "depends_on"
    assert "cycle" in message
    for where in (f"{path}:6", f"{path}:10", f"{inc}:3"):
        assert where in message, message


def test_config_self_dependency_and_garbage(tmp_path: Path) -> None:
    path = _config(tmp_path, "[watcher:a]\ncmd = x\ndepends_on = A\n")
    with pytest.raises(ConfigError, match=r":3: \[watcher:a\] depends_on .*cycle"):
        load_config(path)
    path = _config(tmp_path, "[watcher:a]\ncmd = x\ndepends_on = b\0\n[watcher:b]\ncmd = x\n")
    with pytest.raises(ConfigError, match=r":3: \[watcher:a\] depends_on"):
        load_config(path)


def test_diff_ignores_a_change_of_depends_on_alone(tmp_path: Path) -> None:
    base = "[watcher:a]\ncmd = x\n\n[watcher:b]\ncmd = x\n"
    old = load_config(_config(tmp_path, base))
    new = load_config(_config(tmp_path, base + "depends_on = a\n"))
    diff = diff_configs(old, new)
    assert diff.watchers.changed == () and diff.watchers.unchanged == ("a", "b")
    assert new.watcher("b").depends_on == ("a",)


# ---------------------------------------------------------------------- real watchers


def _watcher(name: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "cmd": SLEEP, "graceful_timeout": 5, **options}


def _run(tmp_path: Path, watchers: list[Any], body: Any, **kwargs: Any) -> Any:
    async def main() -> Any:
        arbiter = Arbiter(
            watchers,
            endpoint=f"ipc://{tmp_path}/ctl",
            pubsub_endpoint=f"ipc://{tmp_path}/pub",
            **kwargs,
        )
        events: list[tuple[str, str]] = []
        try:
            await arbiter.start_async()
            return await body(arbiter, events)
        finally:
            await arbiter.stop()

    return asyncio.run(main())


def _record(arbiter: Arbiter, events: list[tuple[str, str]]) -> None:
    for watcher in arbiter.watcher_set.ordered():
        name = watcher.name
        watcher.add_listener(lambda event, payload, name=name: events.append((name, event)))


def _first(events: list[tuple[str, str]], name: str, event: str) -> int:
    return events.index((name, event))


CHAIN = [
    _watcher("c", depends_on=["b"], priority=10),  # priority alone would start it first
    _watcher("b", depends_on="a", numprocesses=2),
    _watcher("a", autostart=False),  # required: started even without autostart
    _watcher("lone"),
]


def test_chain_starts_in_order_and_stops_in_reverse(tmp_path: Path) -> None:
    async def body(arbiter: Arbiter, events: list[tuple[str, str]]) -> Any:
        ws = arbiter.watcher_set
        assert {w.name: w.status() for w in ws.ordered()} == dict.fromkeys(
            ["c", "b", "a", "lone"], "active"
        )
        _record(arbiter, events)
        await ws.stop_all()
        # c stops before b's processes are even signalled, b before a's
        assert _first(events, "c", "stop") < _first(events, "b", "kill")
        assert _first(events, "b", "stop") < _first(events, "a", "kill")
        events.clear()
        await ws.start_all()
        assert _first(events, "a", "start") < _first(events, "b", "spawn")
        assert _first(events, "b", "start") < _first(events, "c", "spawn")
        assert "lone" in {name for name, _ in events}

    _run(tmp_path, [dict(w) for w in CHAIN], body)


def test_start_stop_restart_cascade(tmp_path: Path) -> None:
    async def body(arbiter: Arbiter, events: list[tuple[str, str]]) -> Any:
        ws = arbiter.watcher_set
        a, b, c = ws.get("a"), ws.get("b"), ws.get("c")
        assert all(w.is_stopped() for w in (a, b, c))
        _record(arbiter, events)
        # start c: a, then b, then c
        info = await ws.start(c)
        assert info is not None and len(info["started"]) == 1
        assert _first(events, "a", "start") < _first(events, "b", "spawn")
        assert _first(events, "b", "start") < _first(events, "c", "spawn")
        # stop a: c and b stop first
        events.clear()
        await ws.stop(a)
        assert all(w.is_stopped() for w in (a, b, c))
        assert _first(events, "c", "stop") < _first(events, "b", "kill")
        assert _first(events, "b", "stop") < _first(events, "a", "kill")
        # stop c alone: nothing else moves
        await ws.start(c)
        events.clear()
        await ws.stop(c)
        assert c.is_stopped() and not a.is_stopped() and not b.is_stopped()
        assert {name for name, _ in events} == {"c"}
        # restart a: b (running) is restarted after a is up; c (stopped) stays stopped
        old_b = set(b.pids)
        events.clear()
        await ws.restart(a)
        assert not a.is_stopped() and not b.is_stopped() and c.is_stopped()
        assert old_b.isdisjoint(b.pids) and len(b.pids) == 2
        assert _first(events, "b", "stop") < _first(events, "a", "kill")
        assert _first(events, "a", "start") < _first(events, "b", "spawn")

    watchers = [dict(w, autostart=False) for w in CHAIN]
    _run(tmp_path, watchers, body)


def test_failed_dependency_leaves_dependents_stopped_with_an_event(tmp_path: Path) -> None:
    async def body(arbiter: Arbiter, events: list[tuple[str, str]]) -> Any:
        ws = arbiter.watcher_set
        broken, b, c = ws.get("broken"), ws.get("b"), ws.get("c")
        # at boot: b and c were never started, and said why
        assert broken.is_stopped() and b.is_stopped() and c.is_stopped()
        topics: list[tuple[str, dict[str, Any]]] = []
        original = ws._publish

        def spy(topic: str, payload: Any) -> None:
            topics.append((topic, dict(payload)))
            original(topic, payload)

        ws._publish = spy
        with pytest.raises(Exception, match="cannot start 'c': its dependency 'broken' did not"):
            await ws.start(c)
        failed = [p for t, p in topics if t == "watcher.c.dependency_failed"]
        assert failed and failed[0]["dependency"] == "broken" and failed[0]["reason"]
        assert [p for t, p in topics if t == "watcher.b.dependency_failed"]
        assert b.is_stopped() and c.is_stopped()
        assert not ws.get("lone").is_stopped()  # the rest of the daemon runs on

    watchers = [
        _watcher("broken", cmd=str(tmp_path / "no-such-program"), max_retry=0),
        _watcher("b", depends_on=["broken"]),
        _watcher("c", depends_on=["b"]),
        _watcher("lone"),
    ]
    _run(tmp_path, watchers, body)


def test_readiness_gates_the_dependent_not_the_independent(tmp_path: Path) -> None:
    flag = tmp_path / "db-ready"

    async def body(arbiter: Arbiter, events: list[tuple[str, str]]) -> Any:
        ws = arbiter.watcher_set
        db, app, other = ws.get("db"), ws.get("app"), ws.get("other")
        start = asyncio.ensure_future(ws.start_all(only_autostart=False))
        await async_wait_until(lambda: db.pids and other.pids, 20, "db and other spawned")
        # db is spawned, not ready: app must wait, other (independent) need not
        await asyncio.sleep(0)  # let any wrongly scheduled start begin
        assert app.is_stopped() and not app.pids
        flag.write_text("ok")
        await asyncio.wait_for(start, 60)
        assert len(app.pids) == 1 and db.health(db.pids[0])["state"] == "ready"

    watchers = [
        _watcher(
            "db",
            autostart=False,
            readiness=f"exec:test -f {flag}",
            readiness_timeout=60,
            priority=5,
        ),
        _watcher("app", depends_on=["db"], autostart=False),
        _watcher("other", autostart=False, priority=1),
    ]
    _run(tmp_path, watchers, body)


def test_arbiter_refuses_an_unknown_or_cyclic_graph(tmp_path: Path) -> None:
    async def main(watchers: list[Any]) -> None:
        arbiter = Arbiter(
            watchers, endpoint=f"ipc://{tmp_path}/ctl", pubsub_endpoint=f"ipc://{tmp_path}/pub"
        )
        try:
            await arbiter.start_async()
        finally:
            await arbiter.stop()

    with pytest.raises(Exception, match="'nope'"):
        asyncio.run(main([_watcher("a", depends_on=["nope"])]))
    with pytest.raises(Exception, match="cycle"):
        asyncio.run(main([_watcher("a", depends_on=["b"]), _watcher("b", depends_on=["a"])]))


def test_add_over_the_protocol_checks_depends_on(tmp_path: Path) -> None:
    from circus.ctl import AsyncCircusClient

    async def body(arbiter: Arbiter, events: list[tuple[str, str]]) -> Any:
        ws = arbiter.watcher_set
        async with AsyncCircusClient(f"ipc://{tmp_path}/ctl", timeout=20, check=False) as c:
            bad = await c.call(
                "add", {"name": "x", "cmd": SLEEP, "options": {"depends_on": ["nope"]}}
            )
            assert bad["status"] == "error" and "nope" in bad["reason"]
            bad = await c.call("add", {"name": "x", "cmd": SLEEP, "options": {"depends_on": 3}})
            assert bad["status"] == "error" and "depends_on" in bad["reason"]
            assert "x" not in ws.table
            ok = await c.call(
                "add",
                {
                    "name": "x",
                    "cmd": SLEEP,
                    "start": True,
                    "waiting": True,
                    "options": {"depends_on": "a", "graceful_timeout": 5},
                },
            )
            assert ok["status"] == "ok", ok
        assert not ws.get("a").is_stopped() and len(ws.get("x").pids) == 1
        assert ws.deps.requires("x") == ("a",)

    _run(tmp_path, [_watcher("a", autostart=False)], body)


def test_rm_of_a_requirement_stops_its_dependents_then_their_start_fails(tmp_path: Path) -> None:
    async def body(arbiter: Arbiter, events: list[tuple[str, str]]) -> Any:
        ws = arbiter.watcher_set
        b = ws.get("b")
        assert len(b.pids) == 1
        await ws.remove("a")
        assert b.is_stopped() and "a" not in ws.table
        with pytest.raises(Exception, match="'a' is not loaded"):
            await ws.start(b)
        # a new 'a' satisfies it again
        ws.create("a", SLEEP, graceful_timeout=5)
        await ws.start(b)
        assert len(b.pids) == 1 and len(ws.get("a").pids) == 1

    _run(tmp_path, [_watcher("a"), _watcher("b", depends_on=["a"])], body)


def test_reload_of_a_stopped_dependent_starts_what_it_requires(tmp_path: Path) -> None:
    async def body(arbiter: Arbiter, events: list[tuple[str, str]]) -> Any:
        ws = arbiter.watcher_set
        info = await ws.reload(ws.get("b"))
        assert info is not None and len(info["started"]) == 1 and info["stopped"] == []
        assert len(ws.get("a").pids) == 1

    _run(
        tmp_path,
        [_watcher("a", autostart=False), _watcher("b", depends_on="a", autostart=False)],
        body,
    )


def test_watchers_registered_without_spec_get_the_configs_depends_on(tmp_path: Path) -> None:
    # what a daemon-reexec does: watcher objects handed over, the config loaded again
    from types import SimpleNamespace

    from circus.arbiter._watcher_set import WatcherSet
    from circus.watcher import Watcher

    config = load_config(
        _config(tmp_path, "[watcher:a]\ncmd = x\n\n[watcher:b]\ncmd = x\ndepends_on = a\n")
    )

    async def main() -> None:
        ws = WatcherSet(
            [], lambda t, p: None, lambda t: False, owner=SimpleNamespace(loaded_config=config)
        )
        for name in ("a", "b"):
            ws.register(Watcher(name, SLEEP))
        ws.check_dependencies()
        assert ws.deps.requires("b") == ("a",)
        ws.close()

    asyncio.run(main())


def test_stop_of_a_requirement_during_a_dependent_start(tmp_path: Path) -> None:
    flag = tmp_path / "never"

    async def body(arbiter: Arbiter, events: list[tuple[str, str]]) -> Any:
        ws = arbiter.watcher_set
        db, app = ws.get("db"), ws.get("app")
        start = asyncio.ensure_future(ws.start(app))
        await async_wait_until(lambda: db.pids, 20, "db spawned")
        await ws.stop(db)  # while app waits for db to be ready
        with pytest.raises(Exception, match="cannot start 'app': its dependency 'db'"):
            await asyncio.wait_for(start, 60)
        assert db.is_stopped() and app.is_stopped() and not app.pids

    watchers = [
        _watcher("db", autostart=False, readiness=f"exec:test -f {flag}", readiness_timeout=300),
        _watcher("app", depends_on=["db"], autostart=False),
    ]
    _run(tmp_path, watchers, body)


def test_warmup_delay_spaces_launches_in_the_graph(tmp_path: Path) -> None:
    async def body(arbiter: Arbiter, events: list[tuple[str, str]]) -> Any:
        ws = arbiter.watcher_set
        loop = asyncio.get_running_loop()
        began = loop.time()
        await ws.start_all(only_autostart=False)
        # three launches, warmup_delay apart: at least two delays (a busy host only adds)
        assert loop.time() - began >= 2 * 0.25
        assert all(len(w.pids) == 1 for w in ws.ordered())

    watchers = [
        _watcher("a", autostart=False),
        _watcher("b", autostart=False, depends_on="a"),
        _watcher("c", autostart=False),
    ]
    _run(tmp_path, watchers, body, warmup_delay=0.25)


def test_restart_with_a_requirement_that_cannot_start(tmp_path: Path) -> None:
    async def body(arbiter: Arbiter, events: list[tuple[str, str]]) -> Any:
        ws = arbiter.watcher_set
        app = ws.get("app")
        # app runs (started alone, before its requirement was known to be broken)
        await ws.start_one(app)
        assert len(app.pids) == 1
        with pytest.raises(Exception, match="cannot start 'app': its dependency 'broken'"):
            await ws.restart(app)
        assert app.is_stopped() and ws.get("broken").is_stopped()

    watchers = [
        _watcher("broken", cmd=str(tmp_path / "no-such-program"), max_retry=0, autostart=False),
        _watcher("app", depends_on=["broken"], autostart=False),
    ]
    _run(tmp_path, watchers, body)

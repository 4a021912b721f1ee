"""``set`` with several keys: applied together, one reload at most, all or nothing; and
``depends_on`` shown by ``options``/``get`` and changed by ``set`` (checked: known
watchers, no cycle)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from circus.arbiter import Arbiter

PY = sys.executable
SLEEP = f"{PY} -c 'import time; time.sleep(300)'"
TALK = f"{PY} -c 'import os, time; print(\"line-%d\" % os.getpid(), flush=True); time.sleep(300)'"


def _events(arbiter: Arbiter) -> list[tuple[str, str]]:
    """Every watcher event from now on, as ``(watcher, event)``."""
    seen: list[tuple[str, str]] = []
    arbiter.watcher_set.observers.append(lambda name, event, *_: seen.append((name, event)))
    return seen


def test_stream_class_and_filename_in_one_set_reload_once(
    run_arbiter, make_sleeper, waiter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a nameless FileStream (the class alone) would make its temp file here
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    log = tmp_path / "out.log"

    async def body(arbiter: Arbiter, c: Any) -> None:
        watcher = arbiter.get_watcher("talker")
        (before,) = watcher.pids
        seen = _events(arbiter)
        options = {"stdout_stream.class": "FileStream", "stdout_stream.filename": str(log)}
        answer = await c.call("set", name="talker", options=options, waiting=True)
        assert answer["status"] == "ok", answer
        assert seen.count(("talker", "reload")) == 1, seen
        assert seen.count(("talker", "updated")) == 1, seen
        assert seen.count(("talker", "spawn")) == 1, seen
        (after,) = watcher.pids
        assert after != before
        await waiter(lambda: f"line-{after}" in (log.read_text() if log.exists() else ""), 20,
                     "the new process's line in the file")  # fmt: skip
        assert list((tmp_path / "tmp").iterdir()) == [], "no nameless stream was made"
        got = await c.call("get", name="talker", keys=["stdout_stream"])
        assert got["options"]["stdout_stream"] == {"class": "FileStream", "filename": str(log)}
        # two reload keys at once, with a resize: still one reload
        seen.clear()
        answer = await c.call(
            "set", name="talker", options={"cmd": SLEEP, "args": "", "numprocesses": 2},
            waiting=True,
        )  # fmt: skip
        assert answer["status"] == "ok", answer
        assert seen.count(("talker", "reload")) == 1, seen
        assert seen.count(("talker", "spawn")) == 2, seen
        assert len(watcher.pids) == 2 and after not in watcher.pids

    run_arbiter([make_sleeper("talker", cmd=TALK)], body)


def test_a_bad_combination_is_refused_whole(run_arbiter, make_sleeper, tmp_path: Path) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        watcher = arbiter.get_watcher("sleeper")
        pids = watcher.pids
        before = (await c.call("options", name="sleeper"))["options"]
        seen = _events(arbiter)
        # good keys first, then a stream whose class refuses its options: answered at once,
        # even without waiting
        bad = {
            "numprocesses": 3,
            "graceful_timeout": 7,
            "stdout_stream.class": "FileStream",
            "stdout_stream.filename": str(tmp_path / "x.log"),
            "stdout_stream.max_bytes": "lots",
        }
        answer = await c.call("set", name="sleeper", options=bad)
        assert answer["status"] == "error" and answer["errno"] == 3, answer
        assert "stdout_stream" in answer["reason"] and "max_bytes" in answer["reason"]
        # a stream that cannot be opened (found when the reload opens it): refused, the
        # other keys not applied, no process replaced
        missing = {
            "numprocesses": 2,
            "cmd": SLEEP + " ",
            "stdout_stream.class": "FileStream",
            "stdout_stream.filename": str(tmp_path / "no" / "such" / "dir" / "x.log"),
        }
        answer = await c.call("set", name="sleeper", options=missing, waiting=True)
        assert answer["status"] == "error", answer
        assert "stream" in answer["reason"], answer
        # a cross-option rule broken by the set as a whole
        answer = await c.call("set", name="sleeper", options={"numprocesses": 2, "singleton": True})
        assert answer["status"] == "error" and "singleton" in answer["reason"], answer
        assert (await c.call("options", name="sleeper"))["options"] == before
        assert watcher.pids == pids
        assert [e for e in seen if e[1] in ("reload", "updated", "spawn")] == []
        assert not (tmp_path / "x.log").exists()

    run_arbiter([make_sleeper()], body)


def test_depends_on_shown_and_set_with_checks(run_arbiter, make_sleeper) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        def options(name: str) -> Any:
            return c.call("options", name=name)

        assert "depends_on" not in (await options("Web"))["options"]
        got = await c.call("get", name="web", keys=["depends_on"])
        assert got["options"] == {"depends_on": []}
        assert (await c.call("set", name="web", options={"depends_on": ["DB"]}))["status"] == "ok"
        assert (await options("web"))["options"]["depends_on"] == ["db"]
        got = await c.call("get", name="web", keys=["depends_on", "numprocesses"])
        assert got["options"] == {"depends_on": ["db"], "numprocesses": 1}
        assert arbiter.watcher_set.deps.requires("web") == ("db",)
        # a string of names, as in the config file
        answer = await c.call("set", name="cache", options={"depends_on": "db, web"})
        assert answer["status"] == "ok", answer
        assert (await options("cache"))["options"]["depends_on"] == ["db", "Web"]
        # refused, nothing changed: a cycle, an unknown watcher, itself, garbage; with a
        # good watcher option beside it, that is not applied either
        for deps, words in (
            (["cache"], "cycle"),
            (["db", "nosuch"], "nosuch"),
            (["web"], "cycle"),
            ([1], "depends_on"),
        ):
            answer = await c.call(
                "set", name="web", options={"depends_on": deps, "graceful_timeout": 9}
            )
            assert answer["status"] == "error" and answer["errno"] == 3, answer
            assert words in answer["reason"] and "depends_on" in answer["reason"], answer
        assert arbiter.watcher_set.deps.requires("web") == ("db",)
        assert (await options("web"))["options"]["graceful_timeout"] == 5
        # a bad watcher option beside a good depends_on: neither applied
        answer = await c.call(
            "set", name="db", options={"depends_on": ["cache"], "numprocesses": "x"}
        )
        assert answer["status"] == "error", answer
        answer = await c.call(
            "set", name="db", options={"depends_on": [], "stdout_stream.max_bytes": -1},
            waiting=True,
        )  # fmt: skip
        assert answer["status"] == "error", answer
        assert "depends_on" not in (await options("db"))["options"]
        # none again
        answer = await c.call("set", name="cache", options={"depends_on": []}, waiting=True)
        assert answer["status"] == "ok" and arbiter.watcher_set.deps.requires("cache") == ()
        assert "depends_on" not in (await options("cache"))["options"]
        # the new order is the one the daemon starts in
        await c.call("stop", waiting=True)
        await c.call("start", name="web", waiting=True)
        assert arbiter.get_watcher("db").status() == "active"
        assert arbiter.get_watcher("cache").status() == "stopped"

    run_arbiter([make_sleeper("db"), make_sleeper("Web"), make_sleeper("cache")], body)


def test_a_set_of_depends_on_alone_publishes_updated(run_arbiter, make_sleeper, endpoints) -> None:
    """The dashboard asks a watcher's depends_on again on its ``updated`` event."""
    from circus.ctl import AsyncCircusConsumer

    async def body(arbiter: Arbiter, c: Any) -> None:
        async with AsyncCircusConsumer(["watcher.web."], endpoints["pubsub_endpoint"]) as sub:
            for _ in range(100):  # set again until the subscription is through (slow joiner)
                answer = await c.call("set", name="web", options={"depends_on": ["db"]})
                assert answer["status"] == "ok", answer
                message = await sub.recv(timeout=0.2)
                if message is not None:
                    break
            assert message is not None and message[0] == "watcher.web.updated", message

    run_arbiter([make_sleeper("db"), make_sleeper("web")], body)


def test_a_depends_on_waiting_for_its_watcher_is_seen_by_the_next_check(
    run_arbiter, make_sleeper
) -> None:
    """A ``set`` of depends_on answered (no ``waiting``) while its watcher is busy (a stop,
    a reload holds it): a later ``set`` closing a cycle with it is refused then and there.
    The old code recorded the first only once the watcher was free: the second was
    accepted, and the first, already answered ok, was then dropped in the background."""

    async def body(arbiter: Arbiter, c: Any) -> None:
        deps = arbiter.watcher_set.deps
        web = arbiter.get_watcher("web")
        async with arbiter.watcher_set.table.locked(web):  # web busy
            answer = await c.call("set", name="web", options={"depends_on": ["db"]})
            assert answer["status"] == "ok", answer
            answer = await c.call("set", name="db", options={"depends_on": ["web"]}, waiting=True)
            assert answer["status"] == "error" and "cycle" in answer["reason"], answer
        got = await c.call("get", name="web", keys=["depends_on"], waiting=True)
        assert got["options"] == {"depends_on": ["db"]}, got
        assert deps.requires("db") == ()

    run_arbiter([make_sleeper("db"), make_sleeper("web")], body)


def test_a_depends_on_whose_options_fail_later_is_taken_back(
    run_arbiter, make_sleeper, tmp_path: Path
) -> None:
    """depends_on beside a stream that cannot be opened (found only when the running
    watcher's streams are made): the set fails as a whole, depends_on included."""

    async def body(arbiter: Arbiter, c: Any) -> None:
        options = {
            "depends_on": ["db"],
            "stdout_stream.class": "FileStream",
            "stdout_stream.filename": str(tmp_path / "no-such-folder" / "out.log"),
        }
        answer = await c.call("set", name="web", options=options, waiting=True)
        assert answer["status"] == "error", answer
        assert arbiter.watcher_set.deps.requires("web") == ()

    run_arbiter([make_sleeper("db"), make_sleeper("web")], body)

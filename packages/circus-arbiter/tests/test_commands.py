"""Every control command against an in-process Arbiter with real processes."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest
from circus.arbiter import Arbiter


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_read_only_commands(run_arbiter, make_sleeper) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        assert (await c.call("list"))["watchers"] == ["alpha", "sleeper"]
        pids = (await c.call("list", name="sleeper"))["pids"]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        assert (await c.call("status"))["statuses"] == {"Alpha": "active", "sleeper": "active"}
        assert (await c.call("status", name="ALPHA"))["status"] == "active"
        assert (await c.call("numwatchers"))["numwatchers"] == 2
        assert (await c.call("numprocesses"))["numprocesses"] == 3
        answer = await c.call("numprocesses", name="sleeper")
        assert answer["numprocesses"] == 2 and answer["watcher_name"] == "sleeper"
        options = (await c.call("options", name="sleeper"))["options"]
        assert options["numprocesses"] == 2 and options["graceful_timeout"] == 5
        assert list(options) == sorted(options), "upstream answers options with sorted keys"
        got = await c.call("get", name="sleeper", keys=["numprocesses", "cmd"])
        assert got["options"]["numprocesses"] == 2
        bad = await c.call("get", name="sleeper", keys=["bogus"])
        assert bad["errno"] == 3 and "'bogus' option not found" in bad["reason"]
        glob = await c.call("globaloptions")
        assert set(glob["options"]) == {
            "endpoint",
            "pubsub_endpoint",
            "stats_endpoint",
            "check_delay",
            "multicast_endpoint",
            "tree_tracking",
        }
        assert glob["options"]["multicast_endpoint"] == ""
        one = await c.call("globaloptions", option="check_delay")
        assert one["options"] == {"check_delay": 1.0}
        assert (await c.call("globaloptions", option="nope"))["errno"] == 3
        stats = await c.call("stats", name="sleeper")
        assert set(stats["info"]) == {str(p) for p in pids}
        assert stats["info"][str(pids[0])]["pid"] == pids[0]
        one = await c.call("stats", name="sleeper", process=pids[0])
        assert one["process"] == pids[0] and one["info"]["pid"] == pids[0]
        assert set((await c.call("stats"))["infos"]) == {"Alpha", "sleeper"}
        assert (await c.call("dstats"))["info"]["pid"] == os.getpid()
        assert (await c.call("listsockets"))["sockets"] == []
        missing = await c.call("status", name="nosuch")
        assert missing["errno"] == 3 and missing["reason"] == "program nosuch not found"

    run_arbiter([make_sleeper(n=2), make_sleeper("Alpha")], body)


def test_start_stop_restart_reload_with_waiting(run_arbiter, make_sleeper) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        before = (await c.call("list", name="sleeper"))["pids"]
        stop = await c.call("stop", name="sleeper", waiting=True)
        assert stop["status"] == "ok" and stop["info"] is None
        assert not any(_alive(p) for p in before)
        assert (await c.call("status", name="sleeper"))["status"] == "stopped"
        start = await c.call("start", name="sleep*", waiting=True)
        assert len(start["info"]["started"]) == 2 and start["info"]["kept"] == []
        restart = await c.call("restart", name="sleeper", waiting=True)
        assert sorted(restart["info"]["stopped"]) == sorted(start["info"]["started"])
        reload = await c.call("reload", name="sleeper", waiting=True)
        assert len(reload["info"]["started"]) == 2
        assert (await c.call("start", name="nothing*"))["errno"] == 3
        # no waiting: a bare ok at once, the work happens afterwards
        bare = await c.call("stop", name="sleeper")
        assert set(bare) == {"status", "time", "id"}

    run_arbiter([make_sleeper(n=2)], body)


def test_incr_decr_set_and_singleton(run_arbiter, make_sleeper, waiter) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        assert (await c.call("incr", name="sleeper", nb=2, waiting=True))["numprocesses"] == 3
        assert (await c.call("decr", name="sleeper", waiting=True))["numprocesses"] == 2
        assert set(await c.call("incr", name="sleeper")) == {"status", "time", "id"}
        await waiter(lambda: len(arbiter.get_watcher("sleeper").pids) == 3)
        answer = await c.call("incr", name="single")
        assert answer["singleton"] is True and answer["numprocesses"] == 1
        ok = await c.call("set", name="sleeper", options={"numprocesses": 1}, waiting=True)
        assert ok["status"] == "ok"
        assert len(arbiter.get_watcher("sleeper").pids) == 1
        bad = await c.call("set", name="sleeper", options={"numprocesses": "3"})
        assert bad["errno"] == 3 and bad["reason"] == "'numprocesses' isn't an integer"
        assert (await c.call("set", name="sleeper", options={"bogus": 1}))["errno"] == 3
        assert (await c.call("set", name="sleeper", options={"graceful_timeout": 2.5}))[
            "status"
        ] == "ok"

    run_arbiter([make_sleeper(), make_sleeper("single", singleton=True)], body)


def test_add_rm_signal_kill(run_arbiter, make_sleeper, waiter, tmp_path) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        spec = make_sleeper("added")
        added = await c.call("add", name="added", cmd=spec["cmd"], start=True, waiting=True)
        assert added["status"] == "ok"
        pids = (await c.call("list", name="added"))["pids"]
        assert len(pids) == 1
        dup = await c.call("add", name="ADDED", cmd="true")
        assert dup["errno"] == 5 and "already exist" in dup["reason"]
        assert (await c.call("signal", name="added", signum="SIGWINCH"))["status"] == "ok"
        assert (await c.call("signal", name="added", signum="NOPE"))["errno"] == 3
        assert (await c.call("signal", name="added", pid=1, signum="HUP"))["errno"] == 3
        # the CLI sends pid and graceful_timeout as strings
        killed = await c.call(
            "kill", name="added", pid=str(pids[0]), signum="KILL", graceful_timeout="1",
            waiting=True,
        )  # fmt: skip
        assert killed["status"] == "ok"
        assert not _alive(pids[0])
        await waiter(lambda: arbiter.get_watcher("added").pids not in ([], pids))
        rm = await c.call("rm", name="added", waiting=True)
        assert rm["status"] == "ok"
        assert (await c.call("list"))["watchers"] == ["sleeper"]

    run_arbiter([make_sleeper()], body)


@pytest.mark.slow
def test_stopping_one_watcher_never_blocks_another(run_arbiter, make_sleeper, waiter) -> None:
    stubborn = {
        "name": "stubborn",
        "cmd": "python3 -c 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(1, flush=True); time.sleep(300)'",
        "graceful_timeout": 3,
    }
    stubborn["cmd"] = stubborn["cmd"].replace("python3", __import__("sys").executable)

    async def body(arbiter: Arbiter, c: Any) -> None:
        # let the stubborn child install its SIGTERM handler (it prints when ready)
        await waiter(lambda: arbiter.output.lines(["stubborn"], 1))
        stop = asyncio.ensure_future(c.call("stop", name="stubborn", waiting=True))
        # the stop is under way (it waits out the graceful timeout on the ignored SIGTERM)
        await waiter(lambda: arbiter.get_watcher("stubborn").status() == "stopping")
        answer = await c.call("incr", name="sleeper", waiting=True)
        assert answer["numprocesses"] == 2
        # answered while the other watcher's stop still runs (not a timing: a load-proof order)
        assert not stop.done(), "incr waited for the other watcher's stop"
        # a second command on the busy watcher queues instead of failing
        queued = await c.call("status", name="stubborn")
        assert queued["status"] == "stopping"
        assert (await stop)["status"] == "ok"

    stubborn["stdout_stream"] = None
    run_arbiter([make_sleeper(), stubborn], body)


def test_quit_stops_everything(endpoints, make_sleeper) -> None:
    from circus.ctl import AsyncCircusClient

    async def main() -> list[int]:
        arbiter = Arbiter([make_sleeper(n=2)], **endpoints)
        serving = asyncio.ensure_future(arbiter.run())
        async with AsyncCircusClient(endpoints["endpoint"], timeout=10, check=False) as c:
            pids: list[int] = []
            while len(pids) < 2:
                answer = await c.call("list", name="sleeper")
                pids = answer.get("pids", [])
                await asyncio.sleep(0.02)
            assert (await c.call("quit", waiting=True))["status"] == "ok"
        await asyncio.wait_for(serving, 20)
        return pids

    pids = asyncio.run(main())
    assert not any(_alive(p) for p in pids)
    assert not os.path.exists(endpoints["endpoint"][len("ipc://") :])


def test_signal_names(run_arbiter) -> None:
    from circus.arbiter._props import to_signum

    assert to_signum("HUP") == signal.SIGHUP
    assert to_signum("sigterm") == signal.SIGTERM
    assert to_signum(9) == 9
    assert to_signum("15") == 15
    assert to_signum("SIGRTMIN+2") == signal.SIGRTMIN + 2


def test_set_accepts_our_watcher_extras(run_arbiter, make_sleeper) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        ok = await c.call("set", name="sleeper", options={"backoff_max": 3.0}, waiting=True)
        assert ok["status"] == "ok", ok
        got = await c.call("get", name="sleeper", keys=["backoff_max"])
        assert got["options"] == {"backoff_max": 3.0}
        bad = await c.call("set", name="sleeper", options={"backoff_max": "x"}, waiting=True)
        assert bad["status"] == "error" and bad["errno"] == 3

    run_arbiter([make_sleeper()], body)

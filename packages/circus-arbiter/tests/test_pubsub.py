"""Pub/sub: watcher events with upstream's topics and payloads, output lines, ``logs``."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import zmq
import zmq.asyncio
from circus.arbiter import Arbiter
from circus.arbiter._output import OutputHub
from circus.process.testing import wait_until


async def _collect(sub: zmq.asyncio.Socket, until: Any, timeout: float = 10.0) -> list[Any]:  # noqa: ASYNC109
    seen: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not until(seen):
        left = deadline - loop.time()
        assert left > 0, f"not seen in time: {seen}"
        if await sub.poll(int(left * 1000)):
            topic, payload = await sub.recv_multipart()
            seen.append((topic.decode(), json.loads(payload)))
    return seen


def test_watcher_events_are_published(run_arbiter, endpoints, make_sleeper, waiter) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        ctx = zmq.asyncio.Context()
        sub = ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.subscribe(b"watcher.")
        sub.connect(endpoints["pubsub_endpoint"])
        try:
            # slow joiner: wait until the daemon's XPUB has our subscription (a fixed sleep
            # lost the first events under load)
            await waiter(lambda: arbiter.publisher.wanted(b"watcher.my_watch.add"))
            await c.call("add", name="My Watch", cmd=make_sleeper()["cmd"], start=True,
                         waiting=True)  # fmt: skip
            seen = await _collect(sub, lambda s: any(t.endswith(".start") for t, _ in s))
            topics = [t for t, _ in seen]
            assert topics[0] == "watcher.my_watch.add"
            spawn = next(p for t, p in seen if t == "watcher.my_watch.spawn")
            assert set(spawn) == {"process_pid", "time"}
            await c.call("stop", name="My Watch", waiting=True)
            seen = await _collect(sub, lambda s: any(t.endswith(".stop") for t, _ in s))
            kinds = [t.rsplit(".", 1)[1] for t, _ in seen]
            assert kinds.index("kill") < kinds.index("stop")
            reap = next((p for t, p in seen if t.endswith(".reap")), None)
            if reap is not None:
                assert set(reap) == {"process_pid", "time", "exit_code"}
            await c.call("rm", name="My Watch", waiting=True)
            seen = await _collect(sub, lambda s: any(t.endswith(".remove") for t, _ in s))
        finally:
            sub.close()
            ctx.term()

    run_arbiter([], body)


def test_output_lines_published_and_kept(run_arbiter, endpoints, waiter) -> None:
    code = (
        "import sys, time; sys.stdout.write('one\\ntw'); sys.stdout.flush(); time.sleep(0.2); "
        "sys.stdout.write('o\\nthree'); sys.stdout.flush(); sys.stderr.write('oops\\n'); "
        "sys.stderr.flush(); time.sleep(300)"
    )
    talker = {
        "name": "talker",
        "cmd": f'{sys.executable} -c "{code}"',
        "graceful_timeout": 5,
        "autostart": False,
    }

    async def body(arbiter: Arbiter, c: Any) -> None:
        ctx = zmq.asyncio.Context()
        sub = ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.subscribe(b"output.")
        sub.connect(endpoints["pubsub_endpoint"])
        try:
            await waiter(lambda: arbiter.publisher.wanted(b"output.talker.stdout"))
            await c.call("start", name="talker", waiting=True)
            seen = await _collect(sub, lambda s: len(s) >= 3)
        finally:
            sub.close()
            ctx.term()
        stdout = [p for t, p in seen if t == "output.talker.stdout"]
        assert [p["data"] for p in stdout[:2]] == ["one\n", "two\n"]
        assert [p["seq"] for p in stdout[:2]] == [0, 1]  # lines published on the topic before
        err = next(p for t, p in seen if t == "output.talker.stderr")
        assert err["data"] == "oops\n" and err["watcher"] == "talker" and err["stream"] == "stderr"
        assert set(err) == {"watcher", "pid", "stream", "time", "data", "seq"} and err["seq"] == 0
        logs = (await c.call("logs", name="talker", lines=2))["logs"]
        assert [e["data"] for e in logs][-2:] == ["two\n", "oops\n"] or len(logs) == 2
        assert (await c.call("logs", name="nosuch"))["errno"] == 3
        # "three" has no newline yet: it is flushed when the process ends
        await c.call("stop", name="talker", waiting=True)
        everything = (await c.call("logs", lines=100))["logs"]
        assert "three" in [e["data"] for e in everything]

    run_arbiter([talker], body)


def test_output_hub_splits_and_buffers_lines() -> None:
    # One message per chunk: its complete lines together (a line cut between two chunks
    # goes with the chunk that completes it); ``seq`` counts the topic's lines before it.
    published: list[tuple[str, dict[str, Any]]] = []
    hub = OutputHub(lambda topic, payload: published.append((topic, payload)), keep=3)
    hub.feed("w", 1, "stdout", b"a\nb")
    hub.feed("w", 1, "stdout", b"c\n\nd\r\n")
    hub.feed("w", 2, "stderr", b"x")
    assert [(p["data"], p["seq"]) for _, p in published] == [("a\n", 0), ("bc\n\nd\r\n", 1)]
    hub.flush_pid("w", 2)
    assert published[-1][0] == "output.w.stderr" and published[-1][1]["data"] == "x"
    assert published[-1][1]["seq"] == 0  # a topic of its own
    assert [e["data"] for e in hub.lines(["w"], 10)] == ["\n", "d\r\n", "x"]
    assert [e["data"] for e in hub.lines(["w"], 1)] == ["x"]
    hub.forget("w")
    assert hub.lines(["w"], 10) == []


def test_output_seq_counts_published_lines_only() -> None:
    published: list[tuple[str, dict[str, Any]]] = []
    subscribed = {"on": False}
    hub = OutputHub(
        lambda topic, payload: published.append((topic, payload)),
        wanted=lambda topic: subscribed["on"],
    )
    hub.feed("w", 1, "stdout", b"unseen\nunseen\n")  # nobody subscribed: not counted
    subscribed["on"] = True
    hub.feed("w", 1, "stdout", b"1\n2\n")
    hub.feed("w", 2, "stdout", b"3\n")
    hub.feed("w", 2, "stdout", b"x" * (70 * 1024))  # two unterminated pieces: a line each
    hub.feed("w", 1, "stdout", b"4\n")
    assert [p["seq"] for _, p in published] == [0, 2, 3, 4, 5]
    assert [p["pid"] for _, p in published] == [1, 2, 2, 2, 1]
    hub.forget("w")
    hub.feed("w", 1, "stdout", b"again\n")
    assert published[-1][1]["seq"] == 0  # a watcher added again starts afresh


def test_publisher_sends_only_what_is_subscribed(tmp_path) -> None:
    from circus.arbiter._publisher import Publisher

    endpoint = f"ipc://{tmp_path}/xpub"
    ctx = zmq.Context()
    pub = Publisher(ctx, endpoint)
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    try:
        assert not pub.wanted(b"output.w.stdout")
        sub.subscribe(b"output.w.")
        sub.connect(endpoint)
        wait_until(lambda: pub.wanted(b"output.w.stdout"), 5, "the subscription", interval=0.01)
        assert not pub.wanted(b"watcher.w.spawn")
        assert pub.anyone_under(b"output.") and not pub.anyone_under(b"stat.")
        pub.publish("output.w.stdout", {"data": "x\n"})
        assert sub.poll(5000)
        assert sub.recv_multipart() == [b"output.w.stdout", b'{"data": "x\\n"}']
        sub.unsubscribe(b"output.w.")
        unsubscribed = lambda: not pub.wanted(b"output.w.stdout")  # noqa: E731
        wait_until(unsubscribed, 5, "the unsubscription", interval=0.01)
    finally:
        sub.close()
        pub.close()
        ctx.term()

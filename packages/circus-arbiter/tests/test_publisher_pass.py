"""The publisher reads its subscription notices once per loop pass for topics it knows are
wanted (a stop of N processes publishes 2N events in a pass or two), after sending them (off
the path of a respawn's ``spawn``), and afresh whenever the answer would be "nobody wants
it": a subscription that just came in still gets its events."""

from __future__ import annotations

import asyncio
from typing import Any

import zmq
from circus.arbiter._publisher import Publisher
from circus.process.testing import wait_until


def test_one_read_of_the_notices_per_pass_and_a_fresh_one_before_any_no(tmp_path: Any) -> None:
    endpoint = f"ipc://{tmp_path}/xpub"
    ctx = zmq.Context()
    pub = Publisher(ctx, endpoint)
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    late = ctx.socket(zmq.SUB)
    late.linger = 0
    reads = 0
    real_drain = pub._drain_subscriptions

    def counted() -> None:
        nonlocal reads
        reads += 1
        real_drain()

    pub._drain_subscriptions = counted  # type: ignore[method-assign]
    try:
        sub.subscribe(b"watcher.w.")
        sub.connect(endpoint)
        wait_until(lambda: pub.wanted(b"watcher.w.kill"), 5, "the subscription", interval=0.01)

        async def one_pass() -> int:
            before = reads
            for pid in range(100):
                pub.publish("watcher.w.kill", {"process_pid": pid})
            return reads - before

        before_run = reads
        # none before the sends (a known topic), one after them, in the flush
        assert asyncio.run(one_pass()) == 0
        assert reads - before_run == 1
        got = []
        while len(got) < 100 and sub.poll(5000):
            got.append(sub.recv_multipart())
        assert [frames[0] for frames in got] == [b"watcher.w.kill"] * 100

        # a subscriber that arrives while the pass is under way gets the next event of its
        # topic: that "no" is decided on fresh notices
        async def late_pass() -> None:
            pub.publish("watcher.w.kill", {"process_pid": 1})
            late.subscribe(b"watcher.other.")
            late.connect(endpoint)
            # the pass goes on (the loop is blocked here) while the subscription comes in
            assert _notice_within(pub, 5.0), "the late subscription did not come"
            pub.publish("watcher.w.kill", {"process_pid": 2})  # known: no read
            pub.publish("watcher.other.spawn", {"process_pid": 3})  # unknown: read now

        asyncio.run(late_pass())
        assert late.poll(5000)
        assert late.recv_multipart()[0] == b"watcher.other.spawn"
    finally:
        sub.close()
        late.close()
        pub.close()
        ctx.term()


def _notice_within(pub: Publisher, seconds: float) -> bool:
    sock = pub._socket
    assert sock is not None
    return bool(sock.poll(int(seconds * 1000), zmq.POLLIN))


def test_a_spawn_is_sent_before_the_notices_are_read(tmp_path: Any) -> None:
    endpoint = f"ipc://{tmp_path}/xpub"
    ctx = zmq.Context()
    pub = Publisher(ctx, endpoint)
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    calls: list[str] = []
    real_drain, real_send = pub._drain_subscriptions, pub._send

    def drain() -> None:
        calls.append("read")
        real_drain()

    def send(topic: bytes, data: bytes) -> None:
        calls.append(topic.decode())
        real_send(topic, data)

    try:
        sub.subscribe(b"watcher.w.")
        sub.connect(endpoint)
        wait_until(lambda: pub.wanted(b"watcher.w.reap"), 5, "the subscription", interval=0.01)
        pub._drain_subscriptions = drain  # type: ignore[method-assign]
        pub._send = send  # type: ignore[method-assign]

        async def respawn() -> None:
            pub.publish("watcher.w.reap", {"process_pid": 1})
            pub.publish("watcher.w.spawn", {"process_pid": 2})

        asyncio.run(respawn())
        assert calls == ["watcher.w.reap", "watcher.w.spawn", "read"], calls
        got = [sub.recv_multipart()[0] for _ in range(2) if sub.poll(5000)]
        assert got == [b"watcher.w.reap", b"watcher.w.spawn"]
    finally:
        sub.close()
        pub.close()
        ctx.term()

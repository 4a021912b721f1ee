"""Events published in one loop pass go out together at the next pass, in order; a ``spawn``
goes at once with what is held before it (a respawn's ``reap`` is not sent alone while the
replacement is being forked); closing sends what is held."""

from __future__ import annotations

import asyncio
from typing import Any

import zmq
from circus.arbiter._publisher import Publisher
from circus.process.testing import wait_until


def _pair(tmp_path: Any) -> tuple[zmq.Context[Any], Publisher, zmq.Socket[Any]]:
    endpoint = f"ipc://{tmp_path}/xpub"
    ctx = zmq.Context()
    pub = Publisher(ctx, endpoint)
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.subscribe(b"watcher.")
    sub.connect(endpoint)
    wait_until(lambda: pub.wanted(b"watcher.w.reap"), 5, "the subscription", interval=0.01)
    return ctx, pub, sub


def _topics(sub: zmq.Socket[Any], count: int) -> list[bytes]:
    got: list[bytes] = []
    while len(got) < count and sub.poll(5000):
        got.append(sub.recv_multipart()[0])
    return got


def test_a_reap_waits_for_its_spawn_and_both_arrive_in_order(tmp_path: Any) -> None:
    ctx, pub, sub = _pair(tmp_path)
    try:

        async def respawn() -> bool:
            pub.publish("watcher.w.reap", {"process_pid": 1})
            # the loop is held here, as during the replacement's fork: nothing went out
            early = bool(sub.poll(300))
            pub.publish("watcher.w.spawn", {"process_pid": 2})
            return early

        assert asyncio.run(respawn()) is False, "the reap was sent before its spawn"
        assert _topics(sub, 2) == [b"watcher.w.reap", b"watcher.w.spawn"]
    finally:
        sub.close()
        pub.close()
        ctx.term()


def test_a_pass_of_events_is_sent_at_the_next_pass_in_order(tmp_path: Any) -> None:
    ctx, pub, sub = _pair(tmp_path)
    try:

        async def stop_pass() -> None:
            for pid in range(50):
                pub.publish("watcher.w.kill", {"process_pid": pid})
                pub.publish("watcher.w.reap", {"process_pid": pid})
            await asyncio.sleep(0)  # the next pass: sent

        asyncio.run(stop_pass())
        assert _topics(sub, 100) == [b"watcher.w.kill", b"watcher.w.reap"] * 50
    finally:
        sub.close()
        pub.close()
        ctx.term()


def test_close_sends_what_is_held(tmp_path: Any) -> None:
    ctx, pub, sub = _pair(tmp_path)
    try:

        async def last_words() -> None:
            pub.publish("watcher.w.stop", {"time": 1.0})
            pub.close()  # e.g. circusd quitting in the same pass

        asyncio.run(last_words())
        assert _topics(sub, 1) == [b"watcher.w.stop"]
    finally:
        sub.close()
        pub.close()
        ctx.term()

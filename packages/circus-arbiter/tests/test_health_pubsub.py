"""Readiness and liveness events reach pub/sub as watcher.NAME.ready/unready/unhealthy, and
per-process health shows in the stats answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import zmq
import zmq.asyncio
from circus.arbiter import Arbiter


async def _collect(sub: zmq.asyncio.Socket, until: Any, timeout: float = 20.0) -> list[Any]:  # noqa: ASYNC109
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


def test_health_events_are_published(run_arbiter, endpoints, make_sleeper, waiter) -> None:
    watchers = [
        make_sleeper("good", readiness="exec:true", autostart=False),
        make_sleeper("slow", readiness="exec:false", readiness_timeout=0.5,
                     backoff_initial=60, autostart=False),
        make_sleeper("sick", liveness="exec:exit 7", liveness_interval=0.2,
                     liveness_failures=1, backoff_initial=60, autostart=False),
    ]  # fmt: skip

    async def body(arbiter: Arbiter, c: Any) -> None:
        ctx = zmq.asyncio.Context()
        sub = ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.subscribe(b"watcher.")
        sub.connect(endpoints["pubsub_endpoint"])
        try:
            await waiter(lambda: arbiter.publisher.wanted(b"watcher.good.ready"))
            for name in ("good", "slow", "sick"):
                answer = await c.call("start", name=name)
                assert answer["status"] == "ok", answer
            wanted = {"watcher.good.ready", "watcher.slow.unready", "watcher.sick.unhealthy"}
            seen = await _collect(sub, lambda s: wanted <= {t for t, _ in s})
            payloads = {t: p for t, p in seen if t in wanted}
            assert set(payloads["watcher.good.ready"]) == {"process_pid", "process_id"}
            assert "not ready after 0.5 s" in payloads["watcher.slow.unready"]["reason"]
            assert "exited with 7" in payloads["watcher.sick.unhealthy"]["reason"]
            stats = await c.call("stats", name="good")
            assert stats["status"] == "ok", stats
            (info,) = stats["info"].values()
            assert info["health"] == "ready" and info["status_text"] == ""
            status = await c.call("status", name="good")
            assert status["status"] == "active"  # upstream's plain answer, unchanged
        finally:
            sub.close()
            ctx.term()

    run_arbiter(watchers, body)

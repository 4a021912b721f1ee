"""CircusConsumer / AsyncCircusConsumer against a real PUB socket."""

from __future__ import annotations

import asyncio
import time

from circus.ctl import AsyncCircusConsumer, CircusConsumer, protocol
from circus.ctl.testing import Publisher


def _until_received(publisher: Publisher, recv, topic: str, payload: dict, deadline: float = 10):
    """Publish until the subscriber gets it (subscriptions propagate asynchronously)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        publisher.publish(topic, payload)
        message = recv(0.1)
        if message is not None:
            return message
    raise AssertionError(f"nothing received on {topic}")


def test_sync_consumer_filters_by_prefix_and_decodes(publisher: Publisher) -> None:
    with CircusConsumer("watcher.web.", publisher.endpoint) as consumer:
        topic, payload = _until_received(
            publisher, consumer.recv, "watcher.web.spawn", {"process_pid": 1, "time": 1.0}
        )
        assert topic == "watcher.web.spawn"
        assert payload == {"process_pid": 1, "time": 1.0}
        publisher.publish("watcher.other.spawn", {"process_pid": 2, "time": 2.0})
        publisher.publish("watcher.web.reap", {"process_pid": 1, "time": 3.0, "exit_code": 0})
        topics = []
        for topic, _ in consumer:
            topics.append(topic)
            if topic.endswith(".reap"):
                break
        assert "watcher.other.spawn" not in topics
        started = time.monotonic()
        assert consumer.recv(0.1) is None
        assert time.monotonic() - started < 2


def test_sync_consumer_iteration_ends_after_timeout(publisher: Publisher) -> None:
    with CircusConsumer(None, publisher.endpoint, timeout=0.2) as consumer:
        started = time.monotonic()
        assert list(consumer) == []
        assert time.monotonic() - started < 2


def test_async_consumer(publisher: Publisher) -> None:
    async def main() -> tuple[str, dict]:
        async with AsyncCircusConsumer(["output."], publisher.endpoint, timeout=5) as consumer:
            end = time.monotonic() + 10
            while time.monotonic() < end:
                publisher.send(protocol.output_message("web", 3, "stdout", "hi\n", when=1.0))
                message = await consumer.recv(0.1)
                if message is not None:
                    return message
            raise AssertionError("nothing received")

    topic, payload = asyncio.run(main())
    assert topic == "output.web.stdout"
    assert payload["data"] == "hi\n"


def test_compat_consumer_yields_raw_frames(publisher: Publisher) -> None:
    from circus.consumer import CircusConsumer as CompatConsumer

    consumer = CompatConsumer(["watcher."], endpoint=publisher.endpoint)
    try:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            publisher.publish("watcher.a.start", {"time": 1.0})
            frames = consumer.recv_frames(0.1)
            if frames is not None:
                break
        assert frames == [b"watcher.a.start", b'{"time": 1.0}']
    finally:
        consumer.close()

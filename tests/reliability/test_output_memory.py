"""Regression: the daemon's output ring (``logs``) is bounded in bytes, not only in lines.

Before the fix, a child writing one endless line (or binary data with rare newlines) made the
ring keep up to 1000 chunks of up to a megabyte each: circusd's RSS grew with the flood.
"""

from __future__ import annotations

import random

from circus.arbiter._output import MAX_PARTIAL, MAX_RING_BYTES, OutputHub


def _ring_bytes(hub: OutputHub) -> int:
    return sum(len(entry["data"]) for entry in hub.lines(["w"], 10**6))


def test_endless_line_keeps_ring_bounded() -> None:
    hub = OutputHub(lambda topic, payload: None, keep=1000, wanted=lambda topic: False)
    chunk = b"x" * (1024 * 1024)
    for _ in range(40):
        hub.feed("w", 1, "stdout", chunk)
    assert _ring_bytes(hub) <= MAX_RING_BYTES
    # the newest output is what is kept
    assert hub.lines(["w"], 1)[0]["data"] == "x" * MAX_PARTIAL


def test_binary_flood_with_subscriber_keeps_ring_bounded() -> None:
    published: list[int] = []
    hub = OutputHub(lambda topic, payload: published.append(1), keep=1000)
    rng = random.Random(3)
    for _ in range(30):
        hub.feed("w", 1, "stdout", rng.randbytes(1024 * 1024))
    assert _ring_bytes(hub) <= MAX_RING_BYTES * 2  # decoded text may expand the odd byte
    assert published


def test_line_count_limit_still_applies() -> None:
    hub = OutputHub(lambda topic, payload: None, keep=5, wanted=lambda topic: False)
    hub.feed("w", 1, "stdout", b"".join(b"%d\n" % i for i in range(100)))
    assert [e["data"] for e in hub.lines(["w"], 100)] == [f"{i}\n" for i in range(95, 100)]

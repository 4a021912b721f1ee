"""circusd holds a burst of output messages for a follower that is not reading right now.

When 1,000 chatty children exit together, circusd drains what their pipes still hold in one
rush (about 1,000 messages within a second, where the flood itself published ~1,000 a
second, paced): a ``circusctl logs -f`` then off its CPU for that moment lost up to 14 % of
the lines at libzmq's default of 1,000 messages queued per subscriber. The follower here
never reads until the burst is published (its own queue holds one message), so what it gets
is what circusd kept for it.
"""

from __future__ import annotations

from typing import Any

import zmq
from circus.arbiter._output import OutputHub
from circus.arbiter._publisher import QUEUE_DEPTH, Publisher
from circus.ctl.protocol import OutputGaps, output_line_count
from circus.process.testing import wait_until

LINE = b"x" * 99 + b"\n"
BURST = 1_500  # messages: over libzmq's default queue (1,000), within ours
LINES_EACH = 80  # 8 KB a message: the kernel's socket buffer holds a few dozen at most


def test_a_burst_of_output_messages_reaches_a_follower_that_was_not_reading(
    tmp_path: Any,
) -> None:
    assert BURST < QUEUE_DEPTH
    endpoint = f"ipc://{tmp_path}/xpub"
    ctx = zmq.Context()
    pub = Publisher(ctx, endpoint)
    sub = ctx.socket(zmq.SUB)
    try:
        sub.linger = 0
        sub.rcvhwm = 1
        sub.subscribe(b"output.w.")
        sub.connect(endpoint)
        wait_until(lambda: pub.wanted(b"output.w.stdout"), 5, "the subscription", interval=0.01)
        hub = OutputHub(pub.publish, wanted=lambda topic: pub.wanted(topic.encode()))
        for i in range(BURST):  # no loop running: each is sent at once, as fast as it can
            hub.feed("w", 1000 + i, "stdout", LINE * LINES_EACH)
        gaps = OutputGaps()
        messages = lines = 0
        while messages < BURST and sub.poll(5000):
            topic, payload = sub.recv_multipart()
            message = zmq.utils.jsonapi.loads(payload)
            assert gaps.feed(topic.decode(), message) == 0, f"lines dropped before {messages}"
            messages += 1
            lines += output_line_count(message["data"])
        assert (messages, lines) == (BURST, BURST * LINES_EACH)
    finally:
        sub.close()
        pub.close()
        ctx.term()

"""An ``output.*`` message holds at most MAX_PARTIAL bytes of output.

XPUB queues up to ZMQ_SNDHWM (1,000) *messages* for a subscriber that does not read, whatever
their size: with one message per 256 KiB read, a stuck ``circusctl logs -f`` (or any local
subscriber that never reads) made circusd hold ~256 MB, and a child writing binary (six
bytes of JSON per invalid byte) ~1.5 GB. Big reads are published in pieces cut at line
ends, never inside a UTF-8 character; ``seq`` stays consistent with what a reader counts,
and the pieces put back together are the output exactly.
"""

from __future__ import annotations

from typing import Any

import zmq
from circus.arbiter._output import MAX_PARTIAL, OutputHub
from circus.arbiter._publisher import Publisher
from circus.ctl.protocol import OutputGaps, output_line_count, split_output


def _collecting_hub() -> tuple[OutputHub, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []
    return OutputHub(lambda topic, payload: sent.append(payload)), sent


def _check_sequence(sent: list[dict[str, Any]]) -> None:
    gaps = OutputGaps()
    expected = 0
    for payload in sent:
        assert payload["seq"] == expected
        assert gaps.feed("output.w.stdout", payload) == 0
        expected += output_line_count(payload["data"])


def test_a_big_read_of_short_lines_is_published_in_pieces_cut_at_line_ends() -> None:
    hub, sent = _collecting_hub()
    lines = [b"%06d %s\n" % (i, b"x" * (i % 150)) for i in range(4000)]
    chunk = b"".join(lines)
    assert len(chunk) > 4 * MAX_PARTIAL
    hub.feed("w", 7, "stdout", chunk)
    assert len(sent) > 1
    for payload in sent:
        assert len(payload["data"].encode()) <= MAX_PARTIAL
        assert payload["data"].endswith("\n")
    assert "".join(p["data"] for p in sent).encode() == chunk
    got = [entry["data"].encode() for p in sent for entry in split_output(p)]
    assert got == lines
    _check_sequence(sent)


def test_a_line_longer_than_a_message_is_cut_between_utf8_characters() -> None:
    hub, sent = _collecting_hub()
    line = "é€".encode() * (3 * MAX_PARTIAL // 5 + 7) + b"\n"  # 5 bytes a pair, 2 and 3
    hub.feed("w", 7, "stdout", b"before\n" + line + b"after\n")
    for payload in sent:
        assert len(payload["data"].encode()) <= MAX_PARTIAL
        assert "\ufffd" not in payload["data"]
    assert "".join(p["data"] for p in sent).encode() == b"before\n" + line + b"after\n"
    _check_sequence(sent)


def test_a_subscriber_that_never_reads_holds_a_bounded_amount(tmp_path: Any) -> None:
    # Real XPUB/SUB: what the stuck subscriber finally reads is what was queued for it.
    context = zmq.Context()
    publisher = Publisher(context, f"ipc://{tmp_path}/pub.ipc")
    sub = context.socket(zmq.SUB)
    try:
        sub.rcvhwm = 1
        sub.setsockopt(zmq.SUBSCRIBE, b"output.")
        sub.connect(publisher.endpoint)
        hub = OutputHub(publisher.publish, wanted=lambda topic: publisher.wanted(topic.encode()))
        chunk = (b"y" * 255 + b"\n") * 1024  # one 256 KiB read of short lines
        deadline_rounds = 2000
        while not publisher.wanted(b"output.w.stdout") and deadline_rounds:
            sub.poll(5)  # the subscription reaches the publisher
            deadline_rounds -= 1
        assert publisher.wanted(b"output.w.stdout"), "the subscription never arrived"
        for _ in range(1500):  # 375 MiB of output published, none read yet
            hub.feed("w", 7, "stdout", chunk)
        queued = 0
        while sub.poll(1000):
            queued += len(sub.recv_multipart()[1])
        # ZMQ_SNDHWM messages + what the kernel and the subscriber's own queue hold
        assert queued <= 160 * 1024 * 1024, f"{queued >> 20} MiB queued for a stuck subscriber"
    finally:
        sub.close(linger=0)
        publisher.close()
        context.term()

"""On a tcp events endpoint, each connection is judged when it subscribes: a peer that may not
read output gets every topic it asked for except ``output.*``; the count of what is wanted
survives repeated subscriptions, cancellations and connections going away; ipc is unchanged."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from circus.arbiter._peers import PeerIdentity
from circus.arbiter._publisher import Publisher
from circus.arbiter._subfilter import OUTPUT_PREFIX, without_output
from circus.process.testing import wait_until

TOPICS = [b"watcher.w.spawn", b"output.w.stdout", b"outlier.x", b"outputs", b"stats.w"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)


def _sub(ctx: zmq.Context[Any], endpoint: str, *prefixes: bytes) -> zmq.Socket[Any]:
    sock = ctx.socket(zmq.SUB)
    sock.linger = 0
    for prefix in prefixes:
        sock.subscribe(prefix)
    sock.connect(endpoint)
    return sock


def _received(pub: Publisher, sock: zmq.Socket[Any], marker: bytes) -> list[bytes]:
    """Publish every topic, then a marker until it arrives; the topics received before it."""
    got: list[bytes] = []

    def marked() -> bool:
        for topic in TOPICS:
            pub.publish(topic.decode(), {"n": 1})
        pub.publish(marker.decode(), {"n": 0})
        while sock.poll(50):
            topic = sock.recv_multipart()[0]
            if topic == marker:
                return True
            got.append(topic)
        got.clear()
        return False

    wait_until(marked, 10, "the marker", interval=0.05)
    return got


def test_without_output_keeps_every_other_topic() -> None:
    for prefix in (b"", b"o", b"out", b"output"):
        branches = without_output(prefix)
        for topic in TOPICS + [b"outpuT.x", b"\xffw", b"output\xff"]:
            matched = any(topic.startswith(b) for b in branches)
            assert matched == (topic.startswith(prefix) and not topic.startswith(OUTPUT_PREFIX))
    assert without_output(b"output.w") == ()
    assert without_output(b"watcher.") == (b"watcher.",)


def test_read_only_connection_gets_all_but_output(ctx: zmq.Context[Any]) -> None:
    endpoint = f"tcp://127.0.0.1:{_port()}"
    judged: list[PeerIdentity] = []

    def may_read(who: PeerIdentity) -> bool:
        judged.append(who)
        return False

    pub = Publisher(ctx, endpoint, may_read_output=may_read)
    try:
        sub = _sub(ctx, endpoint, b"", b"output.", b"out")
        got = _received(pub, sub, b"marker")
        assert sorted(got) == sorted(t for t in TOPICS if not t.startswith(OUTPUT_PREFIX))
        assert judged and judged[0].via == "tcp" and judged[0].uid == 0
        assert len(judged) == 1  # one judgment per connection
        # the subscriber's "" still counts as wanting output (encoded, sent to nobody)
        assert pub.wanted(b"output.w.stdout")
        sub.close(linger=0)
        wait_until(lambda: not pub.wanted(b"watcher.w.spawn"), 10, "the cancellations")
    finally:
        pub.close()


def test_allowed_connection_gets_output_and_counts_survive_repeats(
    ctx: zmq.Context[Any],
) -> None:
    endpoint = f"tcp://127.0.0.1:{_port()}"
    pub = Publisher(ctx, endpoint, may_read_output=lambda who: who.uid == 0)
    try:
        follower = _sub(ctx, endpoint, b"output.", b"marker")
        assert _received(pub, follower, b"marker") == [b"output.w.stdout"]

        # another connection subscribes twice then cancels, another cancels what it
        # never held, a third comes and goes: the follower's output is still wanted
        def count() -> int:
            pub.wanted(b"watcher.")  # reads the notices
            assert pub._filter is not None
            return pub._filter._counts.get(OUTPUT_PREFIX, 0)

        other = _sub(ctx, endpoint, b"output.", b"output.")
        wait_until(lambda: count() == 2, 10, "the other's subscription")
        other.unsubscribe(b"output.")
        other.unsubscribe(b"output.")  # a SUB socket counts its own: sent on the last one
        wait_until(lambda: count() == 1, 10, "the other's cancellation")
        stranger = _sub(ctx, endpoint, b"watcher.")
        stranger.unsubscribe(b"output.")
        third = _sub(ctx, endpoint, b"output.")
        wait_until(lambda: count() == 2, 10, "the third's subscription")
        for sock in (third, other, stranger):
            sock.close()
        wait_until(lambda: count() == 1 and not pub.wanted(b"watcher."), 10, "the leaving")
        for _ in range(3):
            assert _received(pub, follower, b"marker") == [b"output.w.stdout"]
        follower.close()
        wait_until(lambda: not pub.wanted(b"output.w.stdout"), 10, "the follower's leaving")
    finally:
        pub.close()


def test_ipc_endpoint_is_not_filtered(ctx: zmq.Context[Any], tmp_path: Any) -> None:
    endpoint = f"ipc://{tmp_path}/pub"
    pub = Publisher(ctx, endpoint, may_read_output=lambda who: False)
    try:
        assert pub._filter is None
        sub = _sub(ctx, endpoint, b"")
        assert b"output.w.stdout" in _received(pub, sub, b"marker")
        sub.close(linger=0)
    finally:
        pub.close()


def _accepted_fd(monitor: zmq.Socket[Any], event: int) -> int:
    from zmq.utils.monitor import recv_monitor_message

    while True:
        assert monitor.poll(10_000), "no monitor event"
        message = recv_monitor_message(monitor)
        if message["event"] == event:
            return int(message["value"])


FOLLOWER = r"""
import sys, zmq
ctx = zmq.Context()
sock = ctx.socket(zmq.SUB)
sock.subscribe(b"watcher.")
sock.connect(sys.argv[1])
if sock.poll(20_000):
    print(sock.recv_multipart()[0].decode())
sock.close(linger=0)
ctx.term()
"""


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _gone_then_reused(
    ctx: zmq.Context[Any], pub: Publisher, monitor: zmq.Socket[Any], endpoint: str, out_file: Any
) -> str | None:
    """One try: the follower's output, or None when its connection got another number."""
    assert pub._socket is not None
    fillers: list[int] = []
    first = _sub(ctx, endpoint, b"watcher.")
    try:
        fd = _accepted_fd(monitor, zmq.EVENT_ACCEPTED)
        wait_until(lambda: pub._socket.getsockopt(zmq.EVENTS) & zmq.POLLIN, 10, "the notice")
    finally:
        first.close(linger=0)
    assert _accepted_fd(monitor, zmq.EVENT_DISCONNECTED) == fd
    wait_until(lambda: not _is_open(fd), 10, "the first connection's descriptor closed")
    for _ in range(3):  # libzmq takes the connection's end in (its notices queued, unread)
        pub._socket.getsockopt(zmq.EVENTS)
    try:
        while (filler := os.open(os.devnull, os.O_RDONLY)) < fd:  # lower numbers taken
            fillers.append(filler)
        os.close(filler)
        out_file.seek(0)
        out_file.truncate()
        follower = subprocess.Popen([sys.executable, "-c", FOLLOWER, endpoint], stdout=out_file)
        try:
            accepted = _accepted_fd(monitor, zmq.EVENT_ACCEPTED)
        except BaseException:
            follower.kill()
            follower.wait(10)
            raise
    finally:
        for filler in fillers:
            os.close(filler)
    try:
        if accepted != fd:
            follower.kill()
            follower.wait(10)
            _accepted_fd(monitor, zmq.EVENT_DISCONNECTED)
            return None

        def done() -> bool:
            pub.publish("watcher.w.spawn", {"n": 1})
            return follower.poll() is not None

        wait_until(done, 30, "the second subscriber's events", interval=0.05)
    finally:
        if follower.poll() is None:
            follower.kill()
        follower.wait(10)
    _accepted_fd(monitor, zmq.EVENT_DISCONNECTED)
    out_file.seek(0)
    return str(out_file.read())


def test_connection_gone_before_its_subscription_is_read(
    ctx: zmq.Context[Any], tmp_path: Any
) -> None:
    """A subscriber subscribes and leaves before circusd reads its subscription; the next
    connection gets its descriptor number and subscribes to the same prefix: that one still
    gets its events (its subscription is not taken for the first one's repeat)."""
    with open(tmp_path / "out", "w+") as out_file:  # before the numbers are counted
        for _ in range(5):  # a fresh endpoint each time: nothing left from a try before
            endpoint = f"tcp://127.0.0.1:{_port()}"
            pub = Publisher(ctx, endpoint, may_read_output=lambda who: True)
            assert pub._socket is not None
            monitor = pub._socket.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
            try:
                out = _gone_then_reused(ctx, pub, monitor, endpoint, out_file)
            finally:
                pub._socket.disable_monitor()
                monitor.close(linger=0)
                pub.close()
            if out is not None:
                break
        else:  # pragma: no cover
            pytest.skip("the second connection never got the first one's number")
    assert out.split() == ["watcher.w.spawn"], "the second subscriber got no event"


def test_a_judgment_that_fails_gives_no_output_and_publishing_goes_on(
    ctx: zmq.Context[Any],
) -> None:
    endpoint = f"tcp://127.0.0.1:{_port()}"

    def broken(who: PeerIdentity) -> bool:
        raise KeyError("no passwd entry")

    pub = Publisher(ctx, endpoint, may_read_output=broken)
    try:
        sub = _sub(ctx, endpoint, b"")
        got = _received(pub, sub, b"marker")
        assert sorted(got) == sorted(t for t in TOPICS if not t.startswith(OUTPUT_PREFIX))
        sub.close(linger=0)
    finally:
        pub.close()

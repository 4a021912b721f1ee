"""The control channel of a real circusd: malformed messages answered, logs followed."""

from __future__ import annotations

import json
import sys
import time

import zmq

TALKER = (
    "import sys, time\n"
    "for i in range(1000):\n"
    "    sys.stdout.write(f'line {i}\\n'); sys.stdout.flush(); time.sleep(0.05)\n"
    "time.sleep(300)"
)


def _raw(endpoint: str, frames: list[bytes]) -> dict:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        sock.send_multipart(frames)
        assert sock.poll(5000), f"no answer to {frames}"
        return json.loads(sock.recv_multipart()[-1])
    finally:
        sock.close()
        ctx.term()


def test_malformed_control_messages_are_answered(circusd) -> None:
    daemon = circusd(f"[watcher:w]\ncmd = {sys.executable} -c 'import time; time.sleep(300)'\n")
    cases = [
        ([b"{nope"], 1),
        ([b"42"], 3),
        ([b'{"properties": {}}'], 3),
        ([b'{"command": ["list"]}'], 3),
        ([b'{"command": "frobnicate"}'], 2),
        ([b'{"command": "incr", "properties": {"name": 5}}'], 3),
        ([b'{"command": "incr", "properties": {"name": "w", "nb": "x"}}'], 3),
        ([b'{"command": "set", "properties": {"name": "w"}}'], 3),
        ([b'{"command": "signal", "properties": {"name": "w", "signum": "NOSIG"}}'], 3),
        ([b"one", b"two"], 3),
    ]
    for frames, errno in cases:
        started = time.monotonic()
        answer = _raw(daemon.endpoint, frames)
        assert answer["status"] == "error" and answer["errno"] == errno, (frames, answer)
        # and the next valid request is answered at once (upstream could stall ~9 s; the
        # margin is for a loaded 2-core machine, still well under that stall)
        assert daemon.call("numwatchers", timeout=5)["numwatchers"] == 1
        assert time.monotonic() - started < 5
    assert daemon.stop() == 0


def test_logs_follow_receives_output(circusd, e2e, tmp_path) -> None:
    (tmp_path / "talker.py").write_text(TALKER)
    daemon = circusd(f"[watcher:talker]\ncmd = {sys.executable} {tmp_path}/talker.py\n")
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    try:
        sub.subscribe(b"output.talker.")
        sub.connect(daemon.pubsub)
        seen: list[dict] = []

        def more() -> bool:
            while sub.poll(50):
                topic, payload = sub.recv_multipart()
                assert topic == b"output.talker.stdout"
                seen.append(json.loads(payload))
            return len(seen) >= 3

        e2e.wait(more, 20, "followed output lines")
    finally:
        sub.close()
        ctx.term()
    # a message holds the complete lines one read delivered (one or more)
    lines = [line for entry in seen for line in entry["data"].splitlines(keepends=True)]
    numbers = [int(line.split()[1]) for line in lines]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # complete, in order
    assert all(line.endswith("\n") for line in lines)
    seqs = [entry["seq"] for entry in seen]
    assert seqs == [seqs[0] + numbers.index(int(e["data"].split()[1])) for e in seen]
    assert seen[0]["pid"] == daemon.pids("talker")[0]
    # the ring buffer answers the last lines, like `circusctl logs talker -n 2`
    logs = daemon.call("logs", name="talker", lines=2)["logs"]
    assert len(logs) == 2 and logs[0]["data"].startswith("line ")

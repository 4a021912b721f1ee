"""A control client that sends 1,000 large requests and never reads the answers.

The watcher's environment makes every ``options`` answer about 200 KB, and each request
carries 200 KB of padding. circusd's resident size must stay within a generous bound of its
size before (answers to that client are dropped once 32 wait for it; requests past 128 in
flight wait unread in libzmq's bounded queues), and another client must still be answered
promptly. Before the bounds, libzmq queued up to 1,000 answers for the client: ~200 MB more.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import zmq

CIRCUSD = str(Path(sys.executable).with_name("circusd"))
REQUESTS = 1000
PAD = 200_000
BOUND = 64 * 2**20  # RSS growth allowed (the queued answers alone would be ~200 MB)
WINDOW = 15.0  # seconds the growth is watched for


def _ask(context: zmq.Context[zmq.Socket[bytes]], endpoint: str, timeout: float) -> float:
    """Latency of one ``status`` on a new socket; fails past ``timeout`` seconds."""
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        began = time.monotonic()
        sock.send(json.dumps({"command": "status", "properties": {}, "id": "n"}).encode())
        assert sock.poll(int(timeout * 1000)), f"status not answered within {timeout} s"
        answer = json.loads(sock.recv_multipart()[-1])
        assert answer["status"] == "ok", answer
        return time.monotonic() - began
    finally:
        sock.close()


@pytest.mark.slow
def test_never_reading_client_bounded(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/ctl"
    env = "\n".join(f"VAR_{i:04d} = {'v' * 90}" for i in range(2000))
    config = tmp_path / "circus.ini"
    config.write_text(
        f"[circus]\nendpoint = {endpoint}\npubsub_endpoint = ipc://{tmp_path}/pub\n"
        "loglevel = info\n\n[watcher:w]\n"
        f"cmd = {sys.executable} -c 'import time; time.sleep(600)'\nnumprocesses = 1\n\n"
        f"[env:w]\n{env}\n"
    )
    log = tmp_path / "circusd.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [CIRCUSD, str(config)], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path
        )
    context = zmq.Context()
    hog = context.socket(zmq.DEALER)
    hog.linger = 0
    hog.sndhwm = REQUESTS + 10  # everything queued on our side at once
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                _ask(context, endpoint, 1.0)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        daemon = psutil.Process(proc.pid)
        # warm up: a few big answers read as usual, then the resident size to compare with
        reader = context.socket(zmq.DEALER)
        reader.linger = 0
        reader.connect(endpoint)
        for _ in range(5):
            reader.send(json.dumps({"command": "options", "properties": {"name": "w"}}).encode())
            assert reader.poll(10_000)
            assert len(reader.recv_multipart()[-1]) > 150_000  # the answers are big
        reader.close()
        before = daemon.memory_info().rss

        hog.connect(endpoint)
        request = json.dumps(
            {"command": "options", "properties": {"name": "w", "pad": "p" * PAD}}
        ).encode()
        for _ in range(REQUESTS):
            hog.send(request)
        peak = before
        latencies = []
        began = time.monotonic()
        while time.monotonic() - began < WINDOW:
            peak = max(peak, daemon.memory_info().rss)
            latencies.append(_ask(context, endpoint, 10.0))
            time.sleep(0.1)  # pacing the samples
        grown = peak - before
        print(
            f"RSS {before / 2**20:.1f} MiB -> peak {peak / 2**20:.1f} MiB "
            f"(+{grown / 2**20:.1f}); status latency max {max(latencies) * 1000:.0f} ms "
            f"over {len(latencies)} asks"
        )
        assert grown < BOUND, f"circusd grew by {grown / 2**20:.1f} MiB"
        assert proc.poll() is None, log.read_text()
    finally:
        hog.close()
        context.term()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, log.read_text()

"""daemon-reexec under load: a busy circusd re-executes itself twice and nobody notices.

200 processes (one printing a numbered line every millisecond to a file stream, two HTTP
workers on a [socket:] under a load thread, the rest idle); then ``daemon-reexec``, twice:
the same pids (nothing restarted), every line once and whole, every HTTP request answered
on a connection that was accepted, every control request answered (ours in a loop,
upstream's circusctl in a loop, and one request sent in the middle of the switch).
"""

from __future__ import annotations

import json
import re
import sys
import threading
import uuid
from typing import Any

import pytest
import zmq
from circus.ctl import CircusClient
from circus.ctl.testing.upstream import UpstreamUnavailable, ensure_upstream, run_circusctl
from circus.process.testing import wait_until

PROCESSES = 200


def _all_pids(daemon: Any) -> dict[str, list[int]]:
    return {name: daemon.pids(name) for name in ("printer", "web", "idle")}


def _raw_request(endpoint: str, timeout_ms: int = 5000) -> dict[str, Any] | None:
    """One ``list`` on a fresh DEALER, as upstream's client sends it (with a routing id of
    its own): the answer or None."""
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    sock.setsockopt(zmq.IDENTITY, uuid.uuid4().hex.encode())
    try:
        sock.connect(endpoint)
        sock.send(json.dumps({"id": "mid-switch", "command": "list", "properties": {}}).encode())
        if sock.poll(timeout_ms, zmq.POLLIN):
            return json.loads(sock.recv())
        return None
    finally:
        sock.close()
        context.term()


class UpstreamLoop:
    """upstream circusctl ``list`` in a loop (its own 5 s timeout) until stopped."""

    def __init__(self, endpoint: str) -> None:
        try:
            self.upstream = ensure_upstream()
        except UpstreamUnavailable:
            self.upstream = None
        self.endpoint = endpoint
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        if self.upstream is not None:
            self._thread.start()

    def _run(self) -> None:
        assert self.upstream is not None
        while not self._stop.is_set():
            done = run_circusctl(self.upstream, self.endpoint, ["list"], ctl_timeout=5)
            if done.returncode == 0:
                self.ok += 1
            else:
                self.failures.append(done.stdout + done.stderr)

    def stop(self) -> None:
        self._stop.set()
        if self.upstream is not None:
            self._thread.join(60)


@pytest.mark.slow
def test_reexec_twice_under_load_changes_nothing_visible(circusd, tmp_path, reexec_tools) -> None:
    t = reexec_tools
    daemon = circusd(t.busy_config(tmp_path, sys.executable, PROCESSES))
    wait_until(lambda: sum(map(len, _all_pids(daemon).values())) == PROCESSES, 60, "200 up")
    before = _all_pids(daemon)
    port = daemon.call("listsockets")["sockets"][0]["port"]
    log = tmp_path / "printer.log"

    http = t.HttpLoad(port)
    client = CircusClient(daemon.endpoint, timeout=10, check=False)
    control = t.ControlLoad(lambda: client.call("list", {}))
    upstream = UpstreamLoop(daemon.endpoint)
    try:
        wait_until(lambda: http.ok > 20 and control.ok > 5, 30, "load running")
        takeovers = []
        for generation in (1, 2):
            answer = daemon.call("daemon-reexec", timeout=60)
            assert answer["status"] == "ok", answer
            assert answer["generation"] == generation and answer["processes"] == PROCESSES
            # sent while the old image closes its channels or the new one starts
            mid = _raw_request(daemon.endpoint)
            assert mid is not None and mid["status"] == "ok", "a request mid-switch went unanswered"
            serving = f"daemon-reexec: generation {generation} serving"
            wait_until(lambda g=serving: g in daemon.output(), 60, "the new image serving")
            took = re.findall(rf"{serving}, ([\d.]+) ms", daemon.output())
            takeovers.append(float(took[-1]))
            http_then, lines_then = http.ok, log.stat().st_size
            wait_until(lambda h=http_then: http.ok > h + 20, 30, "HTTP answered after the switch")
            wait_until(lambda s=lines_then: log.stat().st_size > s + 2000, 30, "lines keep coming")
            assert _all_pids(daemon) == before, "a process was restarted"
        if upstream.upstream is not None:
            wait_until(lambda: upstream.ok >= 2, 60, "upstream's circusctl answered")
    finally:
        http.stop()
        control.stop()
        upstream.stop()
        client.close()
    assert http.failures == [], http.failures[:5]
    reexec_log = [line for line in daemon.output().splitlines() if "reexec" in line]
    print("\n".join(reexec_log))
    assert control.failures == [], (control.failures[:5], reexec_log)
    assert upstream.failures == [], upstream.failures[:3]
    count, problems = t.check_lines(log)
    assert problems == [], problems[:10]
    assert count > 500
    pause = control.longest_gap * 1000
    print(f"\ntakeover ms: {takeovers}; control pause {pause:.0f} ms; {http.ok} HTTP requests")

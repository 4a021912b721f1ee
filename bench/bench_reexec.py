"""daemon-reexec under load: what the applications notice when circusd re-executes itself.

For each N (argv, default 200 1000) one circusd runs N processes: one printing a numbered
line every millisecond (each line in two writes) to a FileStream with time stamps, two
pre-fork HTTP workers on a ``[socket:]`` under a load thread (a new connection per request),
the rest idle. A control thread calls ``list`` in a loop (our client), upstream's circusctl
runs ``list`` in a loop when its venv is built (``.cache/upstream-circus``), and one raw
request is sent right after the ``daemon-reexec`` answer (in the middle of the switch).
Then ``daemon-reexec``, ``--reexecs`` times (default 3), and it prints, per N:

* takeover ms   - from the start of the switch in the old image to the new image serving
                  (circusd's log), median and max;
* control pause - the longest time the control loop went without an answer;
* restarts      - processes whose pid changed;
* lost/dup      - numbered lines missing or written twice, malformed lines;
* failed HTTP   - requests that failed or connections refused; failed control requests.

Run: ``python bench/bench_reexec.py 200 1000``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import zmq
from circus.ctl import CircusClient

CIRCUSD = str(Path(sys.executable).with_name("circusd"))
UPSTREAM_CTL = Path(__file__).resolve().parent.parent / ".cache/upstream-circus/bin/circusctl"

PRINTER = """\
import os, time
i = 0
while True:
    os.write(1, b"%08d" % i)
    os.write(1, b"-line\\n")
    i += 1
    time.sleep(0.001)
"""

HTTP_APP = """\
import socket, sys
listener = socket.socket(fileno=int(sys.argv[1]))
listener.setblocking(True)
while True:
    conn, _ = listener.accept()
    try:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
    except OSError:
        pass
    finally:
        conn.close()
"""

LINE = re.compile(rb"^\S+ \[(\d+)\] \| (\d{8})-line$")


def config(d: Path, n: int) -> str:
    (d / "printer.py").write_text(PRINTER)
    (d / "app.py").write_text(HTTP_APP)
    py = sys.executable
    return f"""[circus]
endpoint = ipc://{d}/ctl
pubsub_endpoint = ipc://{d}/pub

[watcher:printer]
cmd = {py} {d}/printer.py
stdout_stream.class = FileStream
stdout_stream.filename = {d}/printer.log
stdout_stream.time_format = %H:%M:%S
graceful_timeout = 5

[watcher:web]
cmd = {py} {d}/app.py $(circus.sockets.web)
use_sockets = True
numprocesses = 2
graceful_timeout = 5

[watcher:idle]
cmd = sleep 3600
numprocesses = {n - 3}
graceful_timeout = 5

[socket:web]
host = 127.0.0.1
port = 0
"""


class Loop:
    """Runs ``step()`` in a thread until stopped; counts successes and failures."""

    def __init__(self, step: Any) -> None:
        self.step = step
        self.ok = 0
        self.failures: list[str] = []
        self.longest_gap = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                problem = self.step()
            except Exception as exc:
                problem = repr(exc)
            if problem:
                self.failures.append(problem)
                continue
            now = time.monotonic()
            self.ok += 1
            self.longest_gap = max(self.longest_gap, now - last)
            last = now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def http_step(port: int) -> Any:
    def step() -> str | None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            reply = b""
            while chunk := conn.recv(4096):
                reply += chunk
        return None if reply.startswith(b"HTTP/1.0 200") else f"bad reply {reply[:30]!r}"

    return step


def raw_list(endpoint: str) -> dict[str, Any] | None:
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    sock.setsockopt(zmq.IDENTITY, uuid.uuid4().hex.encode())
    try:
        sock.connect(endpoint)
        sock.send(json.dumps({"id": "mid", "command": "list", "properties": {}}).encode())
        return json.loads(sock.recv()) if sock.poll(5000, zmq.POLLIN) else None
    finally:
        sock.close()
        context.term()


def check_lines(path: Path) -> tuple[int, int, int, int]:
    """(lines, lost, duplicated, malformed) of the printer's log."""
    lines = path.read_bytes().split(b"\n")[:-1]
    lost = dup = bad = 0
    expected: int | None = None
    for line in lines:
        match = LINE.match(line)
        if match is None:
            bad += 1
            continue
        number = int(match.group(2))
        if expected is not None and number > expected:
            lost += number - expected
        elif expected is not None and number < expected:
            dup += expected - number
        expected = number + 1
    return len(lines), lost, dup, bad


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


def run(n: int, reexecs: int) -> dict[str, Any]:
    d = Path(tempfile.mkdtemp(prefix="rx-"))
    (d / "circus.ini").write_text(config(d, n))
    log = open(d / "circusd.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([CIRCUSD, str(d / "circus.ini")], stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"ipc://{d}/ctl"
    client = CircusClient(endpoint, timeout=20, check=False)
    loops: list[Loop] = []
    try:

        def pids() -> dict[str, list[int]]:
            return {
                w: sorted(client.call("list", name=w)["pids"]) for w in ("printer", "web", "idle")
            }

        def up() -> bool:
            try:
                return sum(map(len, pids().values())) == n
            except Exception:
                return False

        wait_for(up, 120, f"{n} processes up")
        before = pids()
        port = client.call("listsockets")["sockets"][0]["port"]
        http = Loop(http_step(port))
        control_client = CircusClient(endpoint, timeout=10, check=False)

        def control_step() -> str | None:
            answer = control_client.call("list", {})
            return None if answer.get("status") == "ok" else str(answer)

        control = Loop(control_step)
        loops = [http, control]
        upstream = None
        if UPSTREAM_CTL.exists():

            def upstream_step() -> str | None:
                argv = [str(UPSTREAM_CTL), "--endpoint", endpoint, "--timeout", "5", "list"]
                done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
                return None if done.returncode == 0 else (done.stdout + done.stderr)[-200:]

            upstream = Loop(upstream_step)
            loops.append(upstream)
        time.sleep(1.0)  # load running before the first switch
        mid_failures = 0
        text = ""
        for generation in range(1, reexecs + 1):
            answer = client.call("daemon-reexec", {})
            assert answer["status"] == "ok", answer
            mid = raw_list(endpoint)
            mid_failures += mid is None or mid.get("status") != "ok"
            wait_for(
                lambda g=generation: f"generation {g} serving" in (d / "circusd.log").read_text(),
                120,
                "new image serving",
            )
            time.sleep(1.0)  # load on the new image before the next switch
        for loop in loops:
            loop.stop()
        control_client.close()
        after = pids()
        restarts = sum(len(set(before[w]) - set(after[w])) for w in before)
        text = (d / "circusd.log").read_text()
        takeovers = [float(x) for x in re.findall(r"serving, ([\d.]+) ms after", text)]
        lines, lost, dup, bad = check_lines(d / "printer.log")
        return {
            "n": n,
            "takeover_ms_median": statistics.median(takeovers),
            "takeover_ms_max": max(takeovers),
            "control_pause_ms": round(control.longest_gap * 1000),
            "restarts": restarts,
            "lines": lines,
            "lost": lost,
            "duplicated": dup,
            "malformed": bad,
            "http_ok": http.ok,
            "http_failed": len(http.failures),
            "control_ok": control.ok + (upstream.ok if upstream else 0) + reexecs,
            "control_failed": len(control.failures)
            + (len(upstream.failures) if upstream else 0)
            + mid_failures,
            "upstream_ctl": upstream.ok if upstream else "not built",
        }
    finally:
        for loop in loops:
            loop.stop()
        try:
            client.call("quit", {})
        except Exception:
            proc.terminate()
        client.close()
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        subprocess.run(["rm", "-rf", str(d)], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ns", nargs="*", type=int, default=[200, 1000])
    parser.add_argument("--reexecs", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
    keys = ("n", "takeover_ms_median", "takeover_ms_max", "control_pause_ms", "restarts",
            "lines", "lost", "duplicated", "malformed", "http_ok", "http_failed",
            "control_ok", "control_failed", "upstream_ctl")  # fmt: skip
    print(" | ".join(keys))
    for n in args.ns:
        result = run(n, args.reexecs)
        print(" | ".join(str(result[k]) for k in keys), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

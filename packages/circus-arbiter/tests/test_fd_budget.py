"""circusd under a tight descriptor limit: output pipes never starve the processes themselves.

Each process costs circusd its exit descriptor, and two more for the stdout / stderr pipes
that feed ``logs`` and the ``output.*`` events when no stream class is configured. Past half
the table, new processes get no such pipes, so many more of them fit under one limit.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from circus.ctl import CircusClient
from circus.process.testing import wait_until

BIN = Path(sys.executable).parent
LIMIT = 512  # soft = hard: circusd cannot raise it
N = 200  # 3 descriptors each would need 600


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


@pytest.mark.slow
def test_processes_fit_once_pipes_would_fill_the_table(tmp_path: Path) -> None:
    ctl = f"ipc://{tmp_path}/ctl"
    (tmp_path / "circus.ini").write_text(
        f"[circus]\nendpoint = {ctl}\npubsub_endpoint = ipc://{tmp_path}/pub\n"
        "multicast_endpoint =\n"
        f"[watcher:many]\ncmd = sleep\nargs = 300\nnumprocesses = {N}\n"
        "graceful_timeout = 5\n"
    )
    log_path = tmp_path / "circusd.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [BIN / "circusd", "circus.ini"],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_limit,
        )
    client = CircusClient(ctl, timeout=5, check=False)
    try:

        def pids() -> list[int]:
            assert proc.poll() is None, log_path.read_text()
            try:
                answer = client.call("list", {"name": "many"})
            except Exception:
                return []
            return list(answer.get("pids", [])) if answer.get("status") == "ok" else []

        wait_until(lambda: len(pids()) == N, 60, f"{N} processes running under nofile={LIMIT}")
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == N
        fds = len(list(Path(f"/proc/{proc.pid}/fd").iterdir()))
        assert fds < LIMIT - 32, fds  # the spawn reserve is intact
        assert "descriptor table is half full" in log_path.read_text()
        # still answering, and the processes started with pipes still feed `logs`
        assert client.call("logs", {"name": "many"}).get("status") == "ok"
    finally:
        client.close()
        if proc.poll() is None:
            proc.terminate()
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(10)
    assert code == 0, log_path.read_text()

"""``so_reuseport = true`` in circusd: each worker binds its own socket on the same port.

As upstream: the socket is not shared; every spawn of a watcher whose command mentions
``circus.sockets.NAME`` gets a freshly bound SO_REUSEPORT socket, closed in the daemon right
after the spawn. The kernel balances connections between the workers' sockets.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

# Serves on the inherited fd. Writes "INODE PORT" to ready/PID once listening, then answers
# every connection with its pid.
WORKER = """
import os, socket, sys
fd = int(sys.argv[1])
sock = socket.socket(fileno=fd)
sock.setblocking(True)
os.makedirs("ready", exist_ok=True)
with open(f"ready/{os.getpid()}.tmp", "w") as f:
    f.write(f"{os.fstat(fd).st_ino} {sock.getsockname()[1]}")
os.rename(f"ready/{os.getpid()}.tmp", f"ready/{os.getpid()}")
while True:
    conn, _ = sock.accept()
    conn.sendall(f"{os.getpid()}\\n".encode())
    conn.close()
"""


def _ask(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        return int(conn.makefile().readline())


def _ready(folder: Path, pids: list[int]) -> dict[int, tuple[int, int]] | None:
    found = {}
    for pid in pids:
        try:
            inode, port = (folder / "ready" / str(pid)).read_text().split()
        except FileNotFoundError:
            return None
        found[pid] = (int(inode), int(port))
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_each_worker_binds_its_own_socket_and_restarts(circusd: Any, wait: Any) -> None:
    daemon = circusd(start=False)
    (daemon.dir / "worker.py").write_text(WORKER)
    daemon.write(
        "[socket:web]\nhost = 127.0.0.1\nport = 0\nso_reuseport = true\n"
        f"[watcher:web]\ncmd = {sys.executable} worker.py $(circus.sockets.web)\n"
        f"working_dir = {daemon.dir}\nuse_sockets = true\nnumprocesses = 2\n"
        "graceful_timeout = 5\n"
    )
    daemon.start()
    assert daemon.proc is not None
    circusd_pid = daemon.proc.pid
    (row,) = daemon.call("listsockets")["sockets"]
    port = row["port"]
    assert port > 0, row

    def check_round(pids: list[int]) -> None:
        workers = wait(lambda: _ready(daemon.dir, pids), 20, "the workers to listen")
        assert {p for _, p in workers.values()} == {port}  # all on the socket's port
        inodes = {inode for inode, _ in workers.values()}
        assert len(inodes) == len(pids)  # each its own socket
        # The daemon closed its copies: none of the workers' sockets is open in circusd.
        wait(lambda: not inodes & _socket_inodes(circusd_pid), 10, "circusd to close them")
        answered: set[int] = set()
        for _ in range(64):
            answered.add(_ask(port))
            if answered == set(pids):
                break
        assert answered == set(pids)  # the kernel balances between them

    first = daemon.pids("web")
    assert len(first) == 2
    check_round(first)
    baseline = _fd_count(circusd_pid)

    assert daemon.call("restart", name="web")["status"] == "ok"
    second = wait(
        lambda: (p := daemon.pids("web")) and len(p) == 2 and not set(p) & set(first) and p,
        20,
        "new workers",
    )
    check_round(second)
    # No fd leaks in the daemon across a restart (the old workers' pipes drain first).
    wait(lambda: _fd_count(circusd_pid) <= baseline, 10, f"circusd back to {baseline} fds")
    assert daemon.stop() == 0

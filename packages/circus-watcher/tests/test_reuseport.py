"""SO_REUSEPORT sockets: each spawn gets its own freshly bound socket, closed in the watcher.

The socket objects here are a stdlib stand-in for ``circus.sockets.CircusSocket`` (the watcher
duck-types on ``so_reuseport`` and ``bind_for_child``), so this layer's tests need no other.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from circus.watcher import WatcherError
from circus.watcher._child_sockets import SpawnSockets

# Serves on the inherited fd: says which socket (inode) and port it got, then answers every
# connection with its pid.
WORKER = """
import os, socket, sys
fd = int(sys.argv[1])
sock = socket.socket(fileno=fd)
sock.setblocking(True)
print("ready", os.getpid(), os.fstat(fd).st_ino, sock.getsockname()[1], flush=True)
while True:
    conn, _ = sock.accept()
    conn.sendall(f"{os.getpid()}\\n".encode())
    conn.close()
"""


class ReservingSocket(socket.socket):
    """Reserves 127.0.0.1:port (bound, not listening); hands out per-child listeners."""

    so_reuseport = True

    def __init__(self) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_STREAM)
        self.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.bind(("127.0.0.1", 0))
        self.port = self.getsockname()[1]
        self.children: list[socket.socket] = []

    def bind_for_child(self) -> socket.socket:
        child = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        child.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        child.set_inheritable(True)
        child.bind(("127.0.0.1", self.port))
        child.listen(64)
        self.children.append(child)
        return child


@pytest.fixture
def reserving() -> Any:
    sock = ReservingSocket()
    yield sock
    sock.close()


async def _ask(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return int((await asyncio.wait_for(reader.readline(), 10)).decode())
    finally:
        writer.close()
        await writer.wait_closed()


class Ready:
    """Collects the workers' ``ready PID INODE PORT`` lines."""

    def __init__(self) -> None:
        self.lines: dict[int, tuple[int, int]] = {}
        self._buffer = b""
        self.changed = asyncio.Event()

    def __call__(self, pid: int, stream: str, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            word, pid_, inode, port = line.decode().split()
            assert word == "ready"
            self.lines[int(pid_)] = (int(inode), int(port))
        self.changed.set()

    async def until(self, pids: list[int]) -> dict[int, tuple[int, int]]:
        async def wait() -> None:
            while not set(pids) <= set(self.lines):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), 20)
        return {pid: self.lines[pid] for pid in pids}


async def _reached(port: int, pids: list[int], tries: int = 64) -> set[int]:
    answered: set[int] = set()
    for _ in range(tries):
        answered.add(await _ask(port))
        if answered >= set(pids):
            break
    return answered


def test_each_worker_gets_its_own_socket_on_the_same_port(
    make: Any, reserving: ReservingSocket, tmp_path: Path, run_async: Any
) -> None:
    async def main() -> None:
        script = tmp_path / "worker.py"
        script.write_text(WORKER)
        w = make(
            f"{sys.executable} {script} $(circus.sockets.web)",
            numprocesses=2,
            use_sockets=True,
        )
        w.sockets = {"web": reserving}
        ready = Ready()
        w.add_output_observer(ready)
        await w.start()
        first = await ready.until(w.pids)
        inodes = {inode for inode, _ in first.values()}
        assert len(inodes) == 2, first  # two distinct sockets...
        assert {port for _, port in first.values()} == {reserving.port}  # ...on the same port
        assert len(reserving.children) == 2
        assert all(child.fileno() == -1 for child in reserving.children)  # closed after spawn
        assert await _reached(reserving.port, w.pids) == set(w.pids)  # the kernel balances

        before = set(w.pids)
        await w.restart()
        assert not before & set(w.pids)
        again = await ready.until(w.pids)
        assert {port for _, port in again.values()} == {reserving.port}
        assert len(reserving.children) == 4
        assert all(child.fileno() == -1 for child in reserving.children)
        assert await _reached(reserving.port, w.pids) == set(w.pids)

    run_async(main)
    # the conftest runner checks no fd stays open in this process after the test


def test_command_without_the_socket_gets_the_shared_fd(
    make: Any, reserving: ReservingSocket, run_async: Any
) -> None:
    async def main() -> None:
        w = make("sleep 300", numprocesses=1, use_sockets=True)
        w.sockets = {"web": reserving}
        await w.start()
        assert reserving.children == []

    run_async(main)


def test_stdin_socket_gets_a_per_child_listening_socket(
    make: Any, reserving: ReservingSocket, run_async: Any
) -> None:
    async def main() -> None:
        probe = (
            "import socket; s = socket.socket(fileno=0); "
            "print(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN), s.getsockname()[1]); "
            "s.detach()"
        )
        said: list[bytes] = []
        done = asyncio.Event()
        w = make(f"{sys.executable} -c '{probe}'", stdin_socket="web", respawn=False)
        w.sockets = {"web": reserving}
        w.add_output_observer(lambda pid, stream, data: said.append(data))
        w.add_listener(lambda event, payload: event == "stop" and done.set())
        await w.start()
        await asyncio.wait_for(done.wait(), 20)
        assert b"".join(said).split() == [b"1", str(reserving.port).encode()]
        assert len(reserving.children) == 1 and reserving.children[0].fileno() == -1

    run_async(main)


def test_spawn_sockets_closes_what_it_bound_when_one_fails() -> None:
    class Broken:
        so_reuseport = True

        def bind_for_child(self) -> Any:
            raise OSError("no")

    good = ReservingSocket()
    try:
        with pytest.raises(OSError):
            SpawnSockets({"a": good, "b": Broken()}, "x $(circus.sockets.a) $(circus.sockets.b)")
        assert [child.fileno() for child in good.children] == [-1]
        plain = SpawnSockets({"a": good, "fd": 7}, "cmd $(circus.sockets.A)")
        assert plain.fds["fd"] == 7 and plain.fds["a"] != good.fileno()
        plain.close()
        assert good.children[-1].fileno() == -1
    finally:
        good.close()


def test_on_demand_waits_on_listening_sockets_not_reserved_ones(
    make: Any, reserving: ReservingSocket, run_async: Any
) -> None:
    async def main() -> None:
        # A reserved (bound, not listening) socket looks hung up, hence always readable: it
        # must neither start the watcher at once nor count as something to wait on.
        w = make("sleep 300", on_demand=True)
        w.sockets = {"web": reserving}
        with pytest.raises(WatcherError, match="so_reuseport"):
            await w.start()
        assert w.pids == []
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.setblocking(False)
            w2 = make("sleep 300", name="both", on_demand=True)
            w2.sockets = {"web": reserving, "plain": listener}
            await w2.start()
            await asyncio.sleep(0)  # let the loop poll the armed fds once
            await asyncio.sleep(0.05)
            assert w2.status() == "stopped" and w2.pids == []
            await w2.stop()

    run_async(main)

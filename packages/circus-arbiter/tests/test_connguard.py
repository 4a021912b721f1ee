"""The connection guard against a flood on an in-process ROUTER: the excess is shed (idle
connections first), a client that asked something keeps its connection, a flooded endpoint
whose descriptor budget runs low stops accepting for a while and then accepts again on the
same socket file, and nothing is left open afterwards.
"""

from __future__ import annotations

import asyncio
import os
import resource
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio
from circus.arbiter._connguard import ConnectionGuard
from circus.process.testing import async_wait_until

FLOOD = 40
CAP = 10


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def _serve(sock: zmq.asyncio.Socket, guard: ConnectionGuard) -> None:
    while True:
        frames = await sock.recv_multipart(copy=False)
        guard.seen(int(frames[0].get(zmq.SRCFD)))
        await sock.send_multipart([frames[0].bytes, b"ok"])


def _client(context: zmq.Context[Any], endpoint: str, reconnect: bool = True) -> zmq.Socket[Any]:
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    if not reconnect:  # shed, it stays disconnected: it cannot hide having been shed
        sock.reconnect_ivl = -1
    sock.connect(endpoint)
    return sock


def _ask(sock: zmq.Socket[Any]) -> bool:
    if not sock.poll(5000, zmq.POLLOUT):  # a DEALER without a connection cannot send
        return False
    sock.send(b"?")
    return bool(sock.poll(5000)) and sock.recv() == b"ok"


def _run(tmp_path: Path, guard: ConnectionGuard, body: Any) -> None:
    endpoint = f"ipc://{tmp_path}/ctl"
    fds_before = _fds()

    async def main() -> None:
        context = zmq.asyncio.Context()
        clients = zmq.Context()
        clients.set(zmq.MAX_SOCKETS, 4 * FLOOD)
        router = context.socket(zmq.ROUTER)
        router.linger = 0
        guard.watch(router, endpoint, "control", idle_first=True)
        router.bind(endpoint)
        server = asyncio.get_running_loop().create_task(_serve(router, guard))
        try:
            await body(guard, clients, endpoint)
        finally:
            server.cancel()
            guard.unwatch(router)
            router.close()
            context.term()
            clients.destroy(linger=0)

    asyncio.run(main())
    assert _fds() - fds_before == set()  # the guard thread closed its own when it ended


def test_excess_shed_idle_first(tmp_path: Path) -> None:
    async def body(guard: ConnectionGuard, clients: zmq.Context[Any], endpoint: str) -> None:
        active = _client(clients, endpoint, reconnect=False)
        assert await asyncio.to_thread(_ask, active)
        idle = [_client(clients, endpoint) for _ in range(FLOOD)]

        def stats() -> dict[str, int]:
            return guard.stats().get(endpoint, {"connections": -1, "shed": 0, "pauses": 0})

        await async_wait_until(lambda: stats()["shed"] >= FLOOD + 1 - CAP)
        await async_wait_until(lambda: stats()["connections"] <= CAP)
        # the client that asked something was not shed (it would not come back)
        assert await asyncio.to_thread(_ask, active)
        assert stats()["pauses"] == 0
        for sock in [active, *idle]:
            sock.close()
        await async_wait_until(lambda: stats()["connections"] == 0)

    _run(tmp_path, ConnectionGuard(max_connections=CAP), body)


def test_flooded_endpoint_pauses_and_accepts_again(tmp_path: Path) -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    # a budget of 40 descriptors: the flood is half of it at once, shed ones included
    reserve = soft - len(_fds()) - 40

    async def body(guard: ConnectionGuard, clients: zmq.Context[Any], endpoint: str) -> None:
        path = endpoint[len("ipc://") :]
        inode = os.stat(path).st_ino
        flood = [_client(clients, endpoint) for _ in range(FLOOD)]

        def stats() -> dict[str, int]:
            return guard.stats().get(endpoint, {"connections": -1, "shed": 0, "pauses": 0})

        await async_wait_until(lambda: stats()["pauses"] >= 1)
        for sock in flood:
            sock.close()
        # accepting again, on the same socket file
        late = _client(clients, endpoint)
        assert await asyncio.to_thread(_ask, late)
        assert os.stat(path).st_ino == inode
        late.close()

    _run(tmp_path, ConnectionGuard(max_connections=CAP, reserve=reserve), body)

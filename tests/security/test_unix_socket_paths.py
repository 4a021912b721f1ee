"""Unix socket files bound by a root daemon in a folder an app's user owns.

The user who owns ``/srv/app`` can make ``/srv/app/run`` a link to a folder of root's. A
daemon that follows it unlinks a "stale" socket file of root's there (``replace = true``,
Supervisor's stale-socket clean-up) and binds its own in its place. Both the ``[socket:x]``
sockets and ``[unix_http_server]`` must refuse the link and leave root's folder as it was.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a root daemon, a nobody folder)"),
]

NOBODY = 65534


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(root's folder holding a stale socket file ``app.sock``, the app folder owned by
    nobody whose ``run`` is nobody's link to root's folder)."""
    victim = tmp_path / "victim"
    victim.mkdir()
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(victim / "app.sock"))  # closed: nothing listens, a "stale" file
    app = tmp_path / "app"
    app.mkdir()
    (app / "run").symlink_to(victim)
    os.lchown(app / "run", NOBODY, NOBODY)
    os.chown(app, NOBODY, NOBODY)
    yield victim, app


def test_a_socket_section_does_not_follow_the_app_users_link(
    planted: tuple[Path, Path],
) -> None:
    from circus.arbiter._sockets import SocketSet
    from circus.sockets import SocketError

    victim, app = planted
    before = os.lstat(victim / "app.sock").st_ino
    sockets = SocketSet([{"name": "api", "path": str(app / "run" / "app.sock"), "replace": True}])
    try:
        with pytest.raises(SocketError, match="not followed"):
            sockets.bind_all()
    finally:
        sockets.close_all()
    assert os.lstat(victim / "app.sock").st_ino == before, "root's socket file was replaced"


def test_the_unix_http_server_does_not_follow_the_app_users_link(
    planted: tuple[Path, Path],
) -> None:
    from circus.arbiter.supervisor._http import HttpServerSpec, RpcHttpServer

    async def handler(body: bytes, peer: object) -> bytes:
        return b""

    async def start_and_close() -> None:
        server = RpcHttpServer(spec, handler)
        try:
            await server.start()
        finally:
            await server.close()

    victim, app = planted
    before = os.lstat(victim / "app.sock").st_ino
    spec = HttpServerSpec(kind="unix", path=str(app / "run" / "app.sock"))
    with pytest.raises(OSError, match="not followed"):
        asyncio.run(start_and_close())
    assert os.lstat(victim / "app.sock").st_ino == before, "root's socket file was replaced"


def test_a_folder_swapped_during_the_bind_is_caught(tmp_path: Path) -> None:
    """The walk before the bind and the look after it reach two different folders (what a
    swap of a folder on the path for a link does in between): the bind is refused."""
    from circus.sockets import CircusSocket, SocketError, set_parent_opener

    walked = tmp_path / "walked"
    walked.mkdir()
    bound = tmp_path / "bound"
    bound.mkdir()
    calls: list[str] = []

    def opener(path: str) -> tuple[int, str]:
        folder = walked if not calls else bound
        calls.append(path)
        return os.open(folder, os.O_PATH | os.O_DIRECTORY), os.path.basename(path)

    set_parent_opener(opener)
    try:
        with CircusSocket("api", path=str(bound / "new.sock")) as sock:
            with pytest.raises(SocketError, match="replaced while it was being bound"):
                sock.bind_and_listen()
    finally:
        set_parent_opener(None)
    assert len(calls) == 2


def test_a_control_endpoint_does_not_follow_the_app_users_link(
    planted: tuple[Path, Path],
) -> None:
    """``endpoint = ipc://…`` with ``endpoint_owner``: nothing removed, bound or chowned
    in root's folder (the old code unlinked root's "stale" socket there, bound its own in
    its place and gave it to the app's user)."""
    import zmq
    from circus.arbiter._endpoints import bind_endpoint
    from circus.arbiter._errors import ArbiterError

    victim, app = planted
    before = os.lstat(victim / "app.sock")
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    try:
        with pytest.raises(ArbiterError, match="not followed"):
            bind_endpoint(sock, f"ipc://{app / 'run' / 'app.sock'}", owner=str(NOBODY))
    finally:
        sock.close()
        ctx.term()
    after = os.lstat(victim / "app.sock")
    assert (after.st_ino, after.st_uid) == (before.st_ino, 0), "root's socket file was taken"

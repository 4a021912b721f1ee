"""``[socket:x] path = ...`` sockets bound by a root circusd in a folder another user owns.

Until now the socket was bound by its path, and the folder checked after: the folder's owner
could swap it for a link to a folder of root's between circusd's walk and the bind, and root
then made a socket file in root's folder (the check after it only refused to use it). The
swap is made deterministically, right after the walk; root's folder must stay as it was.
The normal bind must still serve at the path, with the section's umask, to real children,
and a daemon-reexec must hand it over unchanged.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from circus.process.testing import wait_until

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a root daemon, a nobody folder)"),
]

NOBODY = 65534

# Answers every connection with its pid and what the inherited socket says its address is.
WORKER = """
import os, socket, sys
sock = socket.socket(fileno=int(sys.argv[1]))
sock.setblocking(True)
while True:
    conn, _ = sock.accept()
    conn.sendall(f"{os.getpid()} {sock.getsockname()}\\n".encode())
    conn.close()
"""


@pytest.fixture(autouse=True)
def plain_socket_layer() -> Iterator[None]:
    """circus.sockets as it is used alone again after each test (the daemon's bind set
    its folder walk and binder process-wide)."""
    yield
    import circus.sockets

    circus.sockets.set_parent_opener(None)
    reset = getattr(circus.sockets, "set_unix_binder", None)
    if reset is not None:
        reset(None)


def _swap_after_walk(monkeypatch: pytest.MonkeyPatch, run: Path, victim: Path) -> None:
    """The daemon's first walk to ``run`` returns its descriptor, then ``run`` is renamed
    away and a link to ``victim`` put in its place (what the folder's owner can do)."""
    import circus.process

    real = circus.process.open_parent
    calls: list[str] = []

    def walk_then_swap(path: str) -> tuple[int, str]:
        found = real(path)
        if not calls:
            os.rename(run, run.with_name("run.old"))
            run.symlink_to(victim)
        calls.append(path)
        return found

    monkeypatch.setattr(circus.process, "open_parent", walk_then_swap)


@pytest.mark.parametrize("kind", ["SOCK_STREAM", "SOCK_DGRAM"])
def test_nothing_is_bound_through_a_folder_swapped_after_the_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The old code bound root's socket file in ``victim``; now nothing is made there, the
    bind is refused with the reason, and the refused bind leaves nothing in the real
    folder either."""
    from circus.arbiter._sockets import SocketSet
    from circus.sockets import SocketError

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "other").write_text("root's file\n")
    run = tmp_path / "app" / "run"
    run.mkdir(parents=True)
    _swap_after_walk(monkeypatch, run, victim)
    sockets = SocketSet([{"name": "api", "path": str(run / "app.sock"), "type": kind}])
    try:
        with pytest.raises(SocketError, match="replaced while it was being bound"):
            sockets.bind_all()
    finally:
        sockets.close_all()
    assert sorted(os.listdir(victim)) == ["other"], "a socket file was made in root's folder"
    assert os.listdir(run.with_name("run.old")) == [], "the refused bind left its file"


def test_a_stale_socket_is_replaced_and_anything_else_refused(tmp_path: Path) -> None:
    """Bound aside, the stale-file rules are unchanged: a socket file at the path is
    replaced with ``replace = true`` only; a regular file is never touched."""
    from circus.arbiter._sockets import SocketSet
    from circus.sockets import SocketError

    os.chown(tmp_path, NOBODY, NOBODY)
    path = tmp_path / "app.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))
    before = os.lstat(path).st_ino
    kept = SocketSet([{"name": "api", "path": str(path)}])
    with pytest.raises(SocketError, match="already exists"):
        kept.bind_all()
    kept.close_all()
    assert os.lstat(path).st_ino == before
    replaced = SocketSet([{"name": "api", "path": str(path), "replace": True}])
    replaced.bind_all()
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))  # the stale file refused connections: it is ours now
    replaced.close_all()
    assert not path.exists()
    path.write_text("not a socket\n")
    refused = SocketSet([{"name": "api", "path": str(path), "replace": True}])
    with pytest.raises(SocketError, match="not a socket file"):
        refused.bind_all()
    refused.close_all()
    assert path.read_text() == "not a socket\n"
    assert sorted(os.listdir(tmp_path)) == ["app.sock"], "a private folder was left"


def _ask(path: Path) -> tuple[int, str]:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(30)
        conn.connect(str(path))
        pid, address = conn.makefile().readline().split(" ", 1)
    return int(pid), address.strip()


def test_children_serve_the_socket_at_its_path_across_a_reexec(circusd: Any) -> None:
    """circusd binds ``[socket:api] path`` in nobody's folder: the file has the section's
    umask, the children accept on it and read the real path back as its address, nothing
    of the bind aside is left; a daemon-reexec hands the same socket file over, and the
    file goes when circusd stops."""
    daemon = circusd(start=False)
    app = daemon.dir / "app"
    app.mkdir()
    os.chown(app, NOBODY, NOBODY)
    path = app / "api.sock"
    (daemon.dir / "worker.py").write_text(WORKER)
    daemon.write(
        f"[socket:api]\npath = {path}\numask = 027\n"
        f"[watcher:api]\ncmd = {sys.executable} worker.py $(circus.sockets.api)\n"
        f"working_dir = {daemon.dir}\nuse_sockets = true\nnumprocesses = 1\n"
        "graceful_timeout = 5\n"
    )
    daemon.start()
    wait_until(lambda: len(daemon.pids("api")) == 1, 30, "the worker")
    (worker,) = daemon.pids("api")
    info = os.lstat(path)
    assert stat.S_ISSOCK(info.st_mode) and info.st_mode & 0o777 == 0o750
    assert os.listdir(app) == ["api.sock"], "the bind aside left its private folder"
    assert _ask(path) == (worker, str(path))
    (row,) = daemon.call("listsockets")["sockets"]
    assert row["path"] == str(path)

    answer = daemon.call("daemon-reexec", timeout=60)
    assert answer["status"] == "ok", answer
    wait_until(lambda: "generation 1 serving" in daemon.output(), 60, "the new image serving")
    assert os.lstat(path).st_ino == info.st_ino, "the socket file was bound again"
    assert daemon.pids("api") == [worker]
    assert _ask(path) == (worker, str(path))
    (row,) = daemon.call("listsockets")["sockets"]
    assert row["path"] == str(path)
    assert daemon.stop() == 0
    assert os.listdir(app) == [], "the socket file outlived circusd"


def test_without_unshare_a_reexec_keeps_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where unshare is refused (a seccomp filter) the socket is bound by names through a
    private folder and reports that folder's path as its address: clients still reach it at
    its path, and a re-exec's new image still knows the path (listsockets, the removal at
    exit) from the hand-over rather than from that address."""
    import errno
    from types import SimpleNamespace

    from circus.arbiter import _unshare
    from circus.arbiter._reexec import _socket_entry
    from circus.arbiter._resume import _adopt_sockets
    from circus.arbiter._sockets import SocketSet

    def refused() -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(_unshare, "unshare_fs", refused)
    os.chown(tmp_path, NOBODY, NOBODY)
    path = tmp_path / "api.sock"
    old = SocketSet([{"name": "api", "path": str(path)}])
    old.bind_all()
    (sock,) = [s for _, s in old.items()]
    assert sock.getsockname().startswith(str(tmp_path / ".circus-bind-"))  # by names
    entry = _socket_entry("api", sock)
    sock.detach()  # the old image execs: the descriptor goes to the new one, nothing removed
    old.close_all()
    assert os.path.exists(path)
    arbiter = SimpleNamespace(watcher_set=SimpleNamespace(sockets=None))
    _adopt_sockets(arbiter, {"sockets": [entry]})
    new = arbiter.watcher_set.sockets
    (adopted,) = [s for _, s in new.items()]
    assert adopted.info()["path"] == str(path)
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
    new.close_all()
    assert os.listdir(tmp_path) == [], "the socket file outlived the new image"

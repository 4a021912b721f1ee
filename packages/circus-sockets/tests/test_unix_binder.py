"""``set_unix_binder``: a unix socket file bound relative to its folder's descriptor.

The binder here binds through ``/proc/self/fd`` (no step by the socket's own path); the
daemon's real one (bind aside) is attacked in tests/security.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from circus.sockets import CircusSocket, SocketError, set_parent_opener, set_unix_binder

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")


class Recorder:
    """A binder that records its calls and binds through the folder's descriptor."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self, sock: socket.socket, dir_fd: int, name: str, path: str, *, mode: int, replace: bool
    ) -> tuple[int, int]:
        self.calls.append({"name": name, "path": path, "mode": mode, "replace": replace})
        if replace:
            os.unlink(name, dir_fd=dir_fd)
        sock.bind(f"/proc/self/fd/{dir_fd}/{name}")
        os.chmod(name, mode, dir_fd=dir_fd)
        info = os.lstat(name, dir_fd=dir_fd)
        return (info.st_dev, info.st_ino)


@pytest.fixture
def binder() -> Iterator[Recorder]:
    recorder = Recorder()
    set_unix_binder(recorder)
    yield recorder
    set_unix_binder(None)
    set_parent_opener(None)


def test_the_binder_makes_the_file_with_the_umask_and_close_removes_it(
    binder: Recorder, tmp_path: Path
) -> None:
    path = tmp_path / "api.sock"
    with CircusSocket("api", path=str(path), umask="027") as sock:
        sock.bind_and_listen()
        assert binder.calls == [
            {"name": "api.sock", "path": str(path), "mode": 0o750, "replace": False}
        ]
        assert os.lstat(path).st_mode & 0o777 == 0o750
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
        assert sock.info()["path"] == str(path)
    assert not path.exists()


def test_the_stale_file_rules_are_kept(binder: Recorder, tmp_path: Path) -> None:
    """A stale socket file is handed to the binder to replace only with ``replace``;
    anything else at the path is refused before the binder is called."""
    path = tmp_path / "api.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))
    with CircusSocket("api", path=str(path)) as sock:
        with pytest.raises(SocketError, match="already exists"):
            sock.bind_and_listen()
    assert binder.calls == []
    with CircusSocket("api", path=str(path), replace=True) as sock:
        sock.bind_and_listen()
        assert binder.calls[-1]["replace"] is True
    path.write_text("a regular file\n")
    with CircusSocket("api", path=str(path), replace=True) as sock:
        with pytest.raises(SocketError, match="not a socket file"):
            sock.bind_and_listen()
    assert len(binder.calls) == 1
    assert path.read_text() == "a regular file\n"


def test_a_folder_swapped_after_the_walk_refuses_and_removes_the_file(
    binder: Recorder, tmp_path: Path
) -> None:
    """The folder reached again after the bind is another: refused, and the binder's file
    removed through the first folder's descriptor."""
    walked = tmp_path / "walked"
    walked.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    calls: list[str] = []

    def opener(path: str) -> tuple[int, str]:
        folder = walked if not calls else elsewhere
        calls.append(path)
        return os.open(folder, os.O_PATH | os.O_DIRECTORY), os.path.basename(path)

    set_parent_opener(opener)
    with CircusSocket("api", path=str(elsewhere / "api.sock")) as sock:
        with pytest.raises(SocketError, match="replaced while it was being bound"):
            sock.bind_and_listen()
    assert len(binder.calls) == 1
    assert os.listdir(walked) == [] and os.listdir(elsewhere) == []

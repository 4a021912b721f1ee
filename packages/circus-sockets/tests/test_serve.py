"""python -m circus.sockets.serve: the pre-fork WSGI worker on an inherited socket."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from circus.sockets import SocketManager
from circus.sockets.serve import load_app

SLOW_APP = """
import os, time

def app(environ, start_response):
    open("started", "w").close()
    while not os.path.exists("release"):
        time.sleep(0.01)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"finished"]
"""


def test_serves_on_a_unix_socket(
    manager: SocketManager,
    tmp_path: Path,
    start_workers: Callable[..., list],
    get: Callable[..., str],
) -> None:
    path = str(tmp_path / "web.sock")
    manager.add("web", path=path)
    manager.bind_all()
    (worker,) = start_workers(manager.fd_map()["web"], 1)
    assert get(path).split() == ["pid", str(worker.pid)]


def test_sigterm_finishes_the_request_in_progress(
    manager: SocketManager,
    tmp_path: Path,
    get: Callable[..., str],
    waiter: Callable[..., None],
) -> None:
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    web = manager.add("web", host="127.0.0.1", port=0)
    manager.bind_all()
    fd = web.fileno()
    command = [sys.executable, "-m", "circus.sockets.serve", "--quiet", "--fd", str(fd)]
    worker = subprocess.Popen([*command, "slowapp:app"], pass_fds=[fd], cwd=tmp_path)
    bodies: list[str] = []
    client = threading.Thread(target=lambda: bodies.append(get(("127.0.0.1", web.port))))
    client.start()
    try:
        waiter(lambda: (tmp_path / "started").exists(), message="the request to start")
        worker.send_signal(signal.SIGTERM)
        (tmp_path / "release").touch()
        assert worker.wait(timeout=30) == 0
    finally:
        client.join(timeout=30)
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert bodies == ["finished"]


def test_idle_worker_on_a_blocking_socket_stops_on_sigterm(
    manager: SocketManager, get: Callable[..., str]
) -> None:
    web = manager.add("web", host="127.0.0.1", port=0, blocking=True)
    manager.bind_all()
    fd = web.fileno()
    command = [
        sys.executable,
        "-m",
        "circus.sockets.serve",
        "--fd",
        str(fd),
        "wsgiref.simple_server:demo_app",
    ]
    worker = subprocess.Popen(command, pass_fds=[fd], stderr=subprocess.DEVNULL)
    try:
        assert "Hello world!" in get(("127.0.0.1", web.port))
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nomodule_xyz:app", "No module named"),
        ("wsgiref.simple_server:nothing", "has no attribute"),
        ("wsgiref", "expected module:app"),
        ("wsgiref.simple_server:__doc__", "not callable"),
    ],
)
def test_bad_app_spec(spec: str, message: str) -> None:
    with pytest.raises((ImportError, AttributeError, ValueError), match=message):
        load_app(spec)


def test_bad_app_spec_on_the_command_line_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "circus.sockets.serve", "--fd", "0", "nomodule_xyz:app"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "cannot load nomodule_xyz:app" in result.stderr


def test_fd_that_is_not_a_socket_exits_1(tmp_path: Path) -> None:
    with open(tmp_path / "f", "w") as not_a_socket:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "circus.sockets.serve",
                "--fd",
                str(not_a_socket.fileno()),
                "wsgiref.simple_server:demo_app",
            ],
            pass_fds=[not_a_socket.fileno()],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1 and "circus.sockets.serve: fd" in result.stderr

"""The shipped examples load cleanly, and the example workers really work."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from circus.arbiter.config import load_config

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.ini")))
def test_every_example_loads_without_warnings(name: str) -> None:
    # filterwarnings = error: any ConfigWarning fails this test.
    config = load_config(EXAMPLES / name)
    assert config.watchers


def test_circus_ini(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    config = load_config("examples/circus.ini")
    assert config.circus.endpoint == "tcp://127.0.0.1:5555"
    assert config.circus.pubsub_endpoint == "tcp://127.0.0.1:5556"
    assert config.circus.multicast_endpoint is None
    assert [w.name for w in config.watchers] == ["ticker", "web"]
    web = config.watcher("web").kwargs
    assert web["use_sockets"] is True
    assert config.watcher("web").sockets == {"web"}
    assert config.socket("web").kwargs["host"] == "127.0.0.1"
    for watcher in config.watchers:
        script = watcher.kwargs["cmd"].split()[-1 if watcher.name == "ticker" else 1]
        assert (ROOT / script).is_file(), script
    assert config.watcher("ticker").kwargs["stdout_stream"]["filename"] == "ticker.log"


def test_upstream_example_loads_unchanged() -> None:
    config = load_config(EXAMPLES / "upstream-0.19.ini", environ={"PATH": "/bin"})
    assert config.circus.statsd is True
    assert config.circus.umask == 0o002
    assert config.circus.multicast_endpoint is None
    assert [w.name for w in config.watchers] == ["logger", "myprogram", "web", "worker"]
    prog = config.watcher("myprogram").kwargs
    assert prog["stop_signal"] == signal.SIGQUIT
    assert prog["graceful_timeout"] == 45.5
    assert prog["args"] == "-u myprogram.py $(circus.wid) value"
    assert prog["hooks"]["after_reap"] == ("my.hooks:notify", True)
    assert prog["rlimits"] == {"nofile": 4096, "core": -1}
    assert prog["stderr_stream"]["utc"] is False
    assert prog["env"]["PATHX"] == "$PATH:/opt/bin"
    worker = config.watcher("worker").kwargs
    assert worker["cmd"] == "/bin/sh -c 'echo hello wid=$(circus.wid) env=hello; sleep 1000'"
    assert worker["stdin_socket"] == "input"
    assert config.socket("input").kwargs["umask"] == 0o022
    assert config.watcher("logger").kwargs["some_custom_option"] == "kept verbatim"
    assert [p.name for p in config.plugins] == ["flapping", "statsd", "watchdog"]


def test_example_web_worker_serves_on_an_inherited_socket() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "web.py"), str(fd), "7"],
        pass_fds=[fd],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        listener.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            body = response.read().decode()
        assert body == f"hello from worker wid=7 pid={proc.pid}\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


def test_example_ticker_ticks_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-u", str(EXAMPLES / "ticker.py")],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), True)
        assert proc.stdout.readline() == b"tick 1\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


def test_kwargs_fit_the_watcher_and_socket_constructors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The contract with the lower layers: Watcher(**kwargs) and CircusSocket(**kwargs)."""
    from circus.sockets import CircusSocket
    from circus.watcher import Watcher

    monkeypatch.chdir(ROOT)
    config = load_config("examples/circus.ini")
    for watcher_config in config.watchers:
        watcher = Watcher(**watcher_config.kwargs)
        assert watcher.name == watcher_config.name
        assert watcher.get_opt("numprocesses") == watcher_config.kwargs["numprocesses"]
    upstream_style = load_config(EXAMPLES / "upstream-0.19.ini", environ={})
    for socket_config in (*config.sockets, *upstream_style.sockets):
        sock = CircusSocket(**socket_config.kwargs)
        try:
            assert sock.name == socket_config.name
        finally:
            sock.close()

"""circusd's resident size: a running daemon imports only what it needs.

Tornado, ``logging.config``, ``ctypes``, ``difflib``, ``zmq.auth``, ``tempfile`` and ``shutil``
each add to every daemon's memory and are only needed by a plugin, ``--logger-config``, CURVE,
a typo message, a nameless file stream or ``--help``; ``ssl`` and ``hashlib`` load OpenSSL,
which only TLS needs. ``Arbiter.loop`` still gives tornado's IOLoop on demand.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq.asyncio
from circus.arbiter import Arbiter, ThreadedArbiter
from circus.ctl import AsyncCircusClient, CircusClient
from circus.process.testing import wait_until

# Modules a plain daemon (no plugin, no CURVE, logging to stdout) must not load.
NOT_LOADED = (
    "tornado",
    "tornado.ioloop",
    "logging.config",
    "ctypes",
    "difflib",
    "zmq.auth",
    "tempfile",
    "uuid",
    "shutil",
    "bz2",
    "lzma",
    # OpenSSL's libcrypto (about 4.5 MiB of RSS): asyncio's ssl is deferred until TLS is used
    # (circus.arbiter._lean_asyncio), hashes come from CPython's own modules
    "ssl",
    "_ssl",
    "hashlib",
    "_hashlib",
    "hmac",
    "secrets",
    # daemon-reexec's machinery: loaded by the request (circusd records its argv in _launch)
    "circus.arbiter._reexec",
    "circus.arbiter._handover",
    "circus.arbiter._resume",
)

# circusd's own main(), plus a thread that writes the daemon's sys.modules and VmRSS to a file
# once the test writes a byte to the pipe (the test knows when the daemon is up and running).
WRAPPER = """
import json, os, sys, threading

trigger, out, config = int(sys.argv[1]), sys.argv[2], sys.argv[3]


def dump():
    os.read(trigger, 1)
    with open("/proc/self/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    with open(out + ".tmp", "w") as fh:
        json.dump({"modules": sorted(sys.modules), "rss_kib": rss}, fh)
    os.replace(out + ".tmp", out)


threading.Thread(target=dump, name="footprint", daemon=True).start()
from circus.arbiter.circusd import main

sys.exit(main([config]))
"""


@pytest.fixture
def daemon_modules(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``{"modules": [...], "rss_kib": N}`` of a real circusd running one ``sleep`` watcher."""
    ctl = f"ipc://{tmp_path}/ctl"
    config = tmp_path / "circus.ini"
    config.write_text(
        f"[circus]\nendpoint = {ctl}\npubsub_endpoint = ipc://{tmp_path}/pub\n"
        "loglevel = info\n"
        "[watcher:sleeper]\ncmd = sleep 300\nnumprocesses = 1\ngraceful_timeout = 5\n"
    )
    out = tmp_path / "modules.json"
    log_path = tmp_path / "circusd.log"
    read_end, write_end = os.pipe()
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", WRAPPER, str(read_end), str(out), str(config)],
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(read_end,),
            )
    finally:
        os.close(read_end)
    client = CircusClient(ctl, timeout=2, check=False)
    try:

        def running() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                answer = client.call("list", name="sleeper")
            except Exception:
                return False
            return answer.get("status") == "ok" and len(answer.get("pids", [])) == 1

        wait_until(running, 30, "circusd to run the sleeper")
        os.write(write_end, b"x")
        wait_until(out.exists, 10, "the daemon to write its modules")
        yield json.loads(out.read_text())
    finally:
        os.close(write_end)
        client.close()
        if proc.poll() is None:
            proc.terminate()
        try:
            status = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise
    assert status == 0, log_path.read_text()


def test_running_daemon_leaves_optional_modules_unloaded(daemon_modules: dict[str, Any]) -> None:
    loaded = set(daemon_modules["modules"])
    assert "circus.arbiter._arbiter" in loaded  # the dump did come from a running daemon
    unexpected = sorted(loaded.intersection(NOT_LOADED))
    assert not unexpected, (
        f"circusd loaded {unexpected} (VmRSS {daemon_modules['rss_kib']} KiB); import them "
        "where they are used"
    )


def test_loop_is_none_before_start(endpoints: dict[str, str]) -> None:
    context = zmq.asyncio.Context()
    try:
        assert Arbiter([], context=context, **endpoints).loop is None
    finally:
        context.term()


def test_loop_on_the_arbiter_loop_is_tornados_current(run_arbiter: Callable[..., Any]) -> None:
    async def body(arbiter: Arbiter, client: AsyncCircusClient) -> None:
        from tornado.ioloop import IOLoop

        ioloop = arbiter.loop
        assert ioloop is IOLoop.current()
        assert arbiter.loop is ioloop
        ran = asyncio.Event()
        ioloop.add_callback(ran.set)
        await ran.wait()

    run_arbiter([], body)


def test_loop_from_another_thread_wraps_the_arbiter_loop(endpoints: dict[str, str]) -> None:
    arbiter = ThreadedArbiter([], **endpoints)
    arbiter.start()
    try:
        ioloop = arbiter.loop  # asked from this (non-arbiter) thread first
        assert ioloop is not None
        assert arbiter.loop is ioloop
        seen: dict[str, Any] = {}
        ran = threading.Event()

        def probe() -> None:
            from tornado.ioloop import IOLoop

            seen["thread"] = threading.current_thread().name
            seen["current"] = IOLoop.current() is ioloop
            ran.set()

        ioloop.add_callback(probe)
        assert ran.wait(10), "add_callback never ran"
        assert seen == {"thread": "circus-arbiter", "current": True}
    finally:
        arbiter.stop()

"""Every ``Arbiter(...)`` option either acts or says why not; settings from a config whole.

``debug_gc``, ``umask``, ``pidfile``, ``debug``, ``httpd_close_outputs`` and ``fqdn_prefix``
act; ``statsd_close_outputs``, ``ssh_server``, ``proc_name``, ``loggerconfig`` and ``loop``
are named in a WARNING at start; a dashboard that would refuse to start is refused once,
when the arbiter is made.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zmq.asyncio
from circus.arbiter import Arbiter, ArbiterError, ThreadedArbiter
from circus.ctl import CircusClient


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_options_nothing_acts_on_are_named_at_start(
    run_arbiter: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        return None

    with caplog.at_level(logging.WARNING, logger="circus.arbiter"):
        run_arbiter(
            [],
            body,
            statsd_close_outputs=True,
            ssh_server="me@host",
            proc_name="other",
            loggerconfig="logging.ini",
            loop=object(),
        )
    ignored = [w for w in _warnings(caplog) if " is ignored: " in w]
    named = sorted(w.split(" is ignored: ")[0] for w in ignored)
    assert named == ["loggerconfig", "loop", "proc_name", "ssh_server", "statsd_close_outputs"]
    assert any("no circusd-stats process" in w for w in ignored)


def test_defaults_warn_about_nothing(run_arbiter: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        return None

    with caplog.at_level(logging.WARNING, logger="circus.arbiter"):
        run_arbiter([], body)
    assert not [w for w in _warnings(caplog) if " is ignored: " in w]


def test_a_config_option_nothing_acts_on_is_named_too(
    endpoints: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from circus.arbiter.config import load_config

    path = tmp_path / "circus.ini"
    path.write_text(
        f"[circus]\nendpoint = {endpoints['endpoint']}\n"
        f"pubsub_endpoint = {endpoints['pubsub_endpoint']}\n"
        "statsd_close_outputs = true\ncheck_delay = 2.5\nwarmup_delay = 0.5\n"
    )

    async def main() -> None:
        arbiter = Arbiter.from_config(load_config(str(path)))
        assert arbiter.settings.check_delay == 2.5
        assert arbiter.settings.warmup_delay == 0.5
        assert arbiter.config_file == str(path) and arbiter.loaded_config is not None
        await arbiter.start_async()
        await arbiter.stop()

    with caplog.at_level(logging.WARNING, logger="circus.arbiter"):
        asyncio.run(main())
    assert [w for w in _warnings(caplog) if w.startswith("statsd_close_outputs is ignored")]


def test_debug_gc_umask_and_pidfile_act(endpoints: dict[str, str], tmp_path: Path) -> None:
    pidfile = tmp_path / "circusd.pid"
    old_umask = os.umask(0o022)
    old_debug = gc.get_debug()

    async def main() -> None:
        arbiter = Arbiter([], debug_gc=True, umask=0o027, pidfile=str(pidfile), **endpoints)
        await arbiter.start_async()
        try:
            assert gc.get_debug() & gc.DEBUG_LEAK == gc.DEBUG_LEAK
            current = os.umask(0o027)
            assert current == 0o027
            assert pidfile.read_text().strip() == str(os.getpid())
        finally:
            await arbiter.stop()
        assert not pidfile.exists()

    try:
        asyncio.run(main())
    finally:
        gc.set_debug(old_debug)
        gc.garbage.clear()
        os.umask(old_umask)


def test_a_pidfile_naming_a_running_daemon_refuses_start(
    endpoints: dict[str, str], tmp_path: Path
) -> None:
    pidfile = tmp_path / "circusd.pid"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pidfile.write_text(f"{holder.pid}\n")  # written after it started: it holds the file

        async def main() -> None:
            arbiter = Arbiter([], pidfile=str(pidfile), **endpoints)
            with pytest.raises(ArbiterError, match=f"names a running process \\(pid {holder.pid}"):
                await arbiter.start_async()
            await arbiter.stop()
            # nothing was bound: another arbiter takes the same endpoints
            other = Arbiter([], **endpoints)
            await other.start_async()
            await other.stop()

        asyncio.run(main())
        assert pidfile.read_text().strip() == str(holder.pid)
    finally:
        holder.kill()
        holder.wait(10)


def test_debug_makes_plugins_log_at_debug_level(run_arbiter: Any) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        args = arbiter.get_watcher("rec").get_opt("args")
        assert "--log-level debug" in args

    plugin = {"name": "rec", "use": "circus.plugins.flapping.Flapping"}
    run_arbiter([], body, plugins=[plugin], debug=True, loglevel="info")


def test_fqdn_prefix(endpoints: dict[str, str]) -> None:
    import socket

    context = zmq.asyncio.Context()
    try:
        assert Arbiter([], context=context, fqdn_prefix="pre").fqdn == f"pre@{socket.getfqdn()}"
        assert Arbiter([], context=context).fqdn == socket.getfqdn()
    finally:
        context.term()


def test_a_dashboard_that_would_refuse_to_start_is_refused_once(
    endpoints: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("circus.ctl.web")
    monkeypatch.delenv("CIRCUSHTTPD_TOKEN", raising=False)
    with pytest.raises(ArbiterError, match="^httpd_host: .*without a login"):
        Arbiter([], httpd=True, httpd_host="0.0.0.0", **endpoints)
    short = tmp_path / "token"
    short.write_text("abc\n")
    with pytest.raises(ArbiterError, match="^httpd_token_file: "):
        Arbiter([], httpd=True, httpd_token_file=str(short), **endpoints)


def test_httpd_close_outputs_closes_the_dashboards_stdio(run_arbiter: Any) -> None:
    pytest.importorskip("tornado")
    pytest.importorskip("prometheus_client")

    async def body(arbiter: Arbiter, c: Any) -> None:
        dashboard = arbiter.get_watcher("circushttpd")
        assert dashboard.get_opt("close_child_stdout") is True
        assert dashboard.get_opt("close_child_stderr") is True

    run_arbiter(
        [], body, httpd=True, httpd_host="127.0.0.1", httpd_port=0, httpd_close_outputs=True
    )


def test_threaded_arbiter_wraps_an_arbiter(endpoints: dict[str, str], make_sleeper: Any) -> None:
    arbiter = Arbiter([make_sleeper()], **endpoints)
    threaded = ThreadedArbiter(arbiter)
    threaded.start()
    try:
        assert threaded.arbiter is arbiter
        with CircusClient(endpoints["endpoint"], timeout=10) as client:
            assert client.call("list")["watchers"] == ["sleeper"]
        assert len(threaded.get_watcher("sleeper").pids) == 1
    finally:
        threaded.stop()
    assert arbiter.get_watcher("sleeper").pids == []
    with pytest.raises(TypeError):
        ThreadedArbiter(arbiter, endpoint="ipc://elsewhere")


def test_from_settings_runs_what_it_is_given(endpoints: dict[str, str], make_sleeper: Any) -> None:
    from circus.arbiter import ArbiterSettings

    settings = ArbiterSettings(**endpoints, unauthenticated_access="OPERATE")
    assert settings.unauthenticated_access == "operate"
    with pytest.raises(ArbiterError, match="unauthenticated_access"):
        ArbiterSettings(unauthenticated_access="everything")
    with pytest.raises(ValueError, match="stats_interval"):
        ArbiterSettings(stats_interval=0.0)

    async def main() -> None:
        arbiter = Arbiter.from_settings(settings, watchers=[make_sleeper()])
        await arbiter.start_async()
        try:
            assert arbiter.unauthenticated_access == "operate"
            assert len(arbiter.get_watcher("sleeper").pids) == 1
        finally:
            await arbiter.stop()

    asyncio.run(main())


def test_upstream_option_attributes_read_the_settings() -> None:
    context = zmq.asyncio.Context()
    try:
        arbiter = Arbiter([], context=context, warmup_delay=2, httpd_port=81, statsd=True)
        assert (arbiter.warmup_delay, arbiter.httpd_port, arbiter.curve) == (2, 81, None)
        assert arbiter.statsd and arbiter.stats_endpoint == "tcp://127.0.0.1:5557"
        with pytest.raises(AttributeError, match="no attribute 'warmup'"):
            arbiter.warmup  # noqa: B018
    finally:
        context.term()

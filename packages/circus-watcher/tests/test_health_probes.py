"""tcp://, http:// and exec: probes: parsed, run against real sockets and processes, and
driving readiness and liveness of real children."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from circus.watcher import NotReady, OptionError, Watcher
from circus.watcher._probes import parse_probe, run_probe

# Serves HTTP on the inherited socket once "listen" exists: 503 until "ok" exists, 500 while
# "sick" exists.
SERVER = r"""
import socket, sys, time
from pathlib import Path

fd, d = int(sys.argv[1]), Path(sys.argv[2])
s = socket.socket(fileno=fd)
while not (d / "listen").exists():
    time.sleep(0.02)
s.listen(16)
while True:
    c, _ = s.accept()
    c.recv(4096)
    code = 500 if (d / "sick").exists() else 200 if (d / "ok").exists() else 503
    c.sendall(f"HTTP/1.0 {code} X\r\nContent-Length: 0\r\n\r\n".encode())
    c.close()
"""


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("tcp://host", "HOST:PORT"),
        ("tcp://h:0", "port"),
        ("tcp://h:70000", "port"),
        ("tcp://h:80/x", "no path"),
        ("http://h:80/a b", "spaces"),
        ("http://[zz]:80/", "IPv6"),
        ("exec:", "command"),
        ("udp://h:1", "unknown probe"),
        ("tcp://bad host:1", "host"),
    ],
)
def test_parse_probe_refuses(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_probe(text)


def test_parse_probe_forms() -> None:
    assert parse_probe(" notify ").kind == "notify"
    spec = parse_probe("http://[::1]:8080/health?x=1")
    assert (spec.kind, spec.host, spec.port, spec.path) == ("http", "::1", 8080, "/health?x=1")
    assert parse_probe("tcp://localhost:1").port == 1
    assert parse_probe("exec: test -e /x").command == "test -e /x"


def test_options_check_probes() -> None:
    with pytest.raises(OptionError, match="unknown probe"):
        Watcher("w", "sleep 1", readiness="udp://x:1")
    with pytest.raises(OptionError, match="liveness_failures"):
        Watcher("w", "sleep 1", liveness_failures=0)
    w = Watcher("w", "sleep 1", readiness="tcp://127.0.0.1:$(circus.sockets.web)")
    assert w.get_opt("readiness") == "tcp://127.0.0.1:$(circus.sockets.web)"
    assert Watcher("w", "sleep 1", readiness="").settings.readiness is None


def test_run_probe_against_real_sockets(tmp_path: Path) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))  # bound, not listening: refused
            port = closed.getsockname()[1]
            reason = await run_probe(parse_probe(f"tcp://127.0.0.1:{port}"), timeout=5)
            assert reason is not None and "refused" in reason.lower()
        answers = [b"HTTP/1.1 204 No Content\r\n\r\n", b"HTTP/1.0 404 Nope\r\n\r\n",
                   b"SSH-2.0-OpenSSH\r\n", b""]  # fmt: skip
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(8)
            server.setblocking(False)
            port = server.getsockname()[1]
            results = []
            for answer in answers:
                probe = asyncio.ensure_future(
                    run_probe(parse_probe(f"http://127.0.0.1:{port}/h"), timeout=5)
                )
                conn, _ = await loop.sock_accept(server)
                with conn:
                    request = await loop.sock_recv(conn, 4096)
                    assert request.startswith(b"GET /h HTTP/1.0\r\n")
                    await loop.sock_sendall(conn, answer)
                results.append(await probe)
            assert results[0] is None
            assert results[1] is not None and "HTTP 404" in results[1]
            assert results[2] is not None and "not an HTTP answer" in results[2]
            assert results[3] is not None and "no answer" in results[3]
            # accepted but never answered: bounded by the timeout
            probe = asyncio.ensure_future(
                run_probe(parse_probe(f"http://127.0.0.1:{port}/"), timeout=0.3)
            )
            conn, _ = await loop.sock_accept(server)
            with conn:
                reason = await probe
            assert reason is not None and "no answer within 0.3 s" in reason
            assert await run_probe(parse_probe(f"tcp://127.0.0.1:{port}"), timeout=5) is None
        assert await run_probe(parse_probe("exec:exit 0"), timeout=10) is None
        reason = await run_probe(parse_probe("exec:exit 3"), timeout=10)
        assert reason is not None and "exited with 3" in reason
        # a probe that outlives its timeout is killed with its children, and reaped
        reason = await run_probe(parse_probe("exec:sleep 30 & sleep 30"), timeout=0.3)
        assert reason is not None and "killed" in reason
        env = {"WHERE": str(tmp_path)}
        reason = await run_probe(parse_probe("exec:touch $WHERE/x"), timeout=10, env=env)
        assert reason is None and (tmp_path / "x").exists()

    asyncio.run(main())


def _events(recorder: Any) -> list[tuple[str, Any]]:
    return [(event, payload.get("process_pid")) for event, payload in recorder.events]


def _server(
    tmp_path: Path, make: Any, as_fd: bool = False, **options: Any
) -> tuple[Any, socket.socket]:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    w = make(f"{sys.executable} {script} $(circus.sockets.web) {tmp_path}", use_sockets=True,
             **options)  # fmt: skip
    w.sockets = {"web": sock.fileno() if as_fd else sock}  # circusd gives fds
    return w, sock


@pytest.mark.parametrize("as_fd", [False, True])
def test_tcp_readiness_with_a_socket_template(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path, as_fd: bool
) -> None:
    async def main() -> None:
        w, sock = _server(tmp_path, make, as_fd, readiness="tcp://$(circus.sockets.web)")
        try:
            await w.start()
            (pid,) = w.pids
            with pytest.raises(NotReady) as caught:
                await w.wait_ready(timeout=0.5)
            assert caught.value.reasons[pid] == "not ready after waiting 0.5 s"
            assert w.health(pid)["state"] == "starting"
            (tmp_path / "listen").touch()
            await w.wait_ready(timeout=20)
            assert [p["process_pid"] for p in recorder.of("ready")] == [pid]
        finally:
            await w.stop()
            sock.close()

    run_async(main)


def test_http_readiness_then_liveness_failure_restarts(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    async def main() -> None:
        w, sock = _server(
            tmp_path, make, readiness="http://$(circus.sockets.web)/health",
            liveness="http://$(circus.sockets.web)/health", liveness_interval=0.2,
            liveness_timeout=5, liveness_failures=2, backoff_initial=0,
        )  # fmt: skip
        try:
            (tmp_path / "listen").touch()
            await w.start()
            (pid,) = w.pids
            with pytest.raises(NotReady):
                await w.wait_ready(timeout=0.5)  # answered 503
            (tmp_path / "ok").touch()
            await w.wait_ready(timeout=20)
            (tmp_path / "sick").touch()
            await recorder.until(lambda: recorder.count("unhealthy") == 1, 20)
            (event,) = recorder.of("unhealthy")
            assert event["process_pid"] == pid and event["process_id"] == 1
            assert "2 liveness probes failed" in event["reason"] and "HTTP 500" in event["reason"]
            assert pid not in w.pids or w.health(pid)["state"] == "unhealthy"
            (tmp_path / "sick").unlink()
            await recorder.until(lambda: recorder.count("ready") == 2, 20)
            (new,) = w.pids
            assert new != pid
            names = [(e, p.get("process_pid")) for e, p in recorder.events]
            assert names.index(("unhealthy", pid)) < names.index(("kill", pid))
            assert names.index(("reap", pid)) < names.index(("spawn", new))
        finally:
            await w.stop()
            sock.close()

    run_async(main)


def test_exec_readiness_per_process(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    async def main() -> None:
        w = make("sleep 300", numprocesses=2, env={"D": str(tmp_path)},
                 readiness="exec:test -e $(circus.env.D)/ok.$CIRCUS_WID")  # fmt: skip
        await w.start()
        (tmp_path / "ok.2").touch()
        await recorder.until(lambda: recorder.count("ready") == 1, 20)
        (event,) = recorder.of("ready")
        assert event["process_id"] == 2
        (tmp_path / "ok.1").touch()
        await w.wait_ready(timeout=20)

    run_async(main)


def test_exec_readiness_that_hangs_is_killed_and_unready(
    make: Any, recorder: Any, run_async: Any
) -> None:
    async def main() -> None:
        w = make("sleep 300", readiness="exec:sleep 300", readiness_timeout=0.5,
                 backoff_initial=60)  # fmt: skip
        await w.start()
        (pid,) = w.pids
        with pytest.raises(NotReady) as caught:
            await w.wait_ready(timeout=20)
        assert "not ready after 0.5 s" in caught.value.reasons[pid]
        await recorder.until(lambda: ("reap", pid) in [(e, p.get("process_pid")) for e, p in
                                                      recorder.events], 20)  # fmt: skip

    run_async(main)


def test_unready_processes_count_as_flapping(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sleep 300", readiness="exec:false", readiness_timeout=0.3, backoff_initial=0,
                 **{"flapping.active": True, "flapping.attempts": 2, "flapping.window": 60,
                    "flapping.retry_in": 60})  # fmt: skip
        await w.start()
        await recorder.until(w.is_stopped, 30)
        assert recorder.count("unready") == 2
        assert recorder.count("spawn") == 2

    run_async(main)


def test_a_probe_bad_after_substitution_is_a_failed_start(
    make: Any, recorder: Any, run_async: Any
) -> None:
    async def main() -> None:
        w = make("sleep 300", readiness="notify", liveness="tcp://$(circus.env.NOPE)",
                 backoff_initial=60)  # fmt: skip
        await w.start()
        (pid,) = w.pids
        await recorder.until(lambda: recorder.count("unready") == 1, 20)
        (event,) = recorder.of("unready")
        assert event["process_pid"] == pid and event["reason"].startswith("bad probe:")
        await recorder.until(lambda: pid not in w.pids and recorder.count("reap") == 1, 20)

    run_async(main)  # its notify socket closed with it: the leak check sees no descriptor left


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as nobody")
def test_exec_probe_runs_as_the_watcher_user(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sleep 300", uid="nobody", gid="nogroup", working_dir="/",
                 readiness="exec:test $(id -u) = 65534 && test $(id -g) = 65534 && test $PWD = /",
                 readiness_timeout=20)  # fmt: skip
        await w.start()
        await w.wait_ready(timeout=30)

    run_async(main)


@pytest.mark.slow
def test_max_age_keeps_the_old_process_until_its_replacement_is_ready(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    async def main() -> None:
        (tmp_path / "ok.1").touch()
        w = make("sleep 300", env={"D": str(tmp_path)}, max_age=1, max_age_variance=0,
                 readiness="exec:test -e $(circus.env.D)/ok.$CIRCUS_WID",
                 readiness_timeout=0.5, backoff_initial=0)  # fmt: skip
        await w.start()
        await w.wait_ready(timeout=20)
        (old,) = w.pids
        # its replacement (wid 2) is never ready: the old one stays
        await recorder.until(lambda: recorder.count("unready") == 1, 20)
        assert old in w.pids
        reaped = [p["process_pid"] for p in recorder.of("reap")]
        assert old not in reaped
        (tmp_path / "ok.2").touch()  # the next replacement is ready: then the old one goes
        await recorder.until(lambda: ("reap", old) in _events(recorder), 20)
        events = _events(recorder)
        readies = [i for i, (e, pid) in enumerate(events) if e == "ready" and pid != old]
        assert readies and readies[0] < events.index(("reap", old))  # new ready, then old ends
        await w.stop()

    run_async(main)


def test_stop_does_not_wait_for_a_max_age_replacement_to_be_ready(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    async def main() -> None:
        (tmp_path / "ok.1").touch()
        w = make("sleep 300", env={"D": str(tmp_path)}, max_age=0.5, max_age_variance=0,
                 readiness="exec:test -e $(circus.env.D)/ok.$CIRCUS_WID",
                 readiness_timeout=300)  # fmt: skip
        await w.start()
        await w.wait_ready(timeout=20)
        await recorder.until(lambda: recorder.count("spawn") == 2, 20)  # the replacement
        stopped = await asyncio.wait_for(w.stop(), 20)  # not readiness_timeout (300 s)
        assert len(stopped) == 2 and w.is_stopped()

    run_async(main)

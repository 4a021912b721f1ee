"""Supervisor's event-listener protocol between an in-process arbiter and real listener
processes (a small Python listener written here): headers and payloads, ``events=``
filtering, FAIL and protocol errors (the event is sent again), ``buffer_size`` overflow
(the oldest dropped, with a warning), connections from anybody else refused."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import socket
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from circus.arbiter import Arbiter
from circus.process.testing import async_wait_until

PY = sys.executable

LISTENER = """\
import os, sys
out, mode = sys.argv[1], sys.argv[2]
gate = out + ".go"
failed = os.path.exists(out + ".failed")
while True:
    if mode == "gated":
        import time
        while not os.path.exists(gate):
            time.sleep(0.02)
    sys.stdout.write("READY\\n"); sys.stdout.flush()
    header = sys.stdin.readline()
    if not header:
        raise SystemExit(0)
    fields = dict(x.split(":", 1) for x in header.split())
    body = sys.stdin.read(int(fields["len"]))
    with open(out, "a") as f:
        f.write(header.strip() + " || " + body + "\\n")
    if mode == "fail-once" and not failed:
        open(out + ".failed", "w").close()
        failed = True
        sys.stdout.write("RESULT 4\\nFAIL"); sys.stdout.flush()
    elif mode == "garbage-once" and not failed:
        open(out + ".failed", "w").close()
        sys.stdout.write("WHAT?\\n"); sys.stdout.flush()
        sys.stdin.read()  # circusd hangs up: stdin ends
        raise SystemExit(0)
    else:
        sys.stdout.write("RESULT 2\\nOK"); sys.stdout.flush()
"""

JOB = "import os,time\nwhile not os.path.exists({flag!r}): time.sleep(0.02)\nraise SystemExit(3)"


class Section:
    def __init__(self, name: str, **options: str) -> None:
        self.name = name
        self.filename = "/etc/supervisord.conf"
        self.lineno = 3
        self.options = options

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)

    def error(self, key: str | None, expected: str) -> Exception:
        return ValueError(f"[{self.name}] {key}: {expected}")

    def warn(self, key: str | None, message: str) -> None:
        pass


def proc(name: str, **extra: Any) -> SimpleNamespace:
    return SimpleNamespace(namespec=name, group=name, name=name, watcher=name, **extra)


def watcher(name: str, code: str, *args: str, **options: Any) -> dict[str, Any]:
    return {
        "name": name,
        "cmd": PY,
        "args": shlex.join(["-u", "-c", code, *args]),
        "graceful_timeout": 5,
        **options,
    }


def run(
    tmp_path: Path,
    mode: str,
    events: str,
    body: Any,
    out_dir: Path | None = None,
    spec_options: dict[str, Any] | None = None,
    **listener: str,
) -> Any:
    out = (out_dir or tmp_path) / "events.txt"
    flag = tmp_path / "flag"
    spec = watcher("rec", LISTENER, str(out), mode, **(spec_options or {}))

    def expand(section: Any, group: str) -> list[tuple[Any, Any]]:
        return [(proc("rec", startsecs=0), SimpleNamespace(kwargs=spec))]

    sup = SimpleNamespace(
        processes=(proc("job", startsecs=0.2),),
        sections={"eventlistener:rec": Section("eventlistener:rec", events=events, **listener)},
        supervisord=SimpleNamespace(identifier="supervisor", logfile=None),
        expand_listener=expand,
    )
    job = watcher("job", JOB.format(flag=str(flag)), respawn=False)

    async def main() -> Any:
        arbiter = Arbiter(
            [job], endpoint=f"ipc://{tmp_path}/ctl", pubsub_endpoint=f"ipc://{tmp_path}/pub"
        )
        arbiter.loaded_config = SimpleNamespace(supervisor=sup)
        await arbiter.start_async()
        try:
            return await body(arbiter, out, flag)
        finally:
            await arbiter.stop()

    return asyncio.run(main())


def touch(path: Path) -> None:
    path.write_text("")


def lines(out: Path) -> list[tuple[dict[str, str], str]]:
    if not out.exists():
        return []
    found = []
    for line in out.read_text().splitlines():
        head, _, body = line.partition(" || ")
        found.append((dict(x.split(":", 1) for x in head.split()), body))
    return found


def test_headers_payloads_and_filtering(tmp_path: Path) -> None:
    async def body(arbiter: Arbiter, out: Path, flag: Path) -> None:
        await async_wait_until(lambda: arbiter.get_watcher("job").pids, 30, "job spawned")
        pid = arbiter.get_watcher("job").pids[0]
        await async_wait_until(
            lambda: any(
                h["eventname"] == "PROCESS_STATE_RUNNING" and b.startswith("processname:job ")
                for h, b in lines(out)
            ),
            30,
            "the job's RUNNING event",
        )
        touch(flag)
        await async_wait_until(
            lambda: any(h["eventname"] == "PROCESS_STATE_EXITED" for h, _ in lines(out)),
            30,
            "the EXITED event",
        )
        got = lines(out)
        names = {h["eventname"] for h, _ in got}
        assert names <= {"PROCESS_STATE_RUNNING", "PROCESS_STATE_EXITED"}  # only what it asked
        exited = [(h, b) for h, b in got if h["eventname"] == "PROCESS_STATE_EXITED"]
        head, payload = exited[0]
        assert payload == f"processname:job groupname:job from_state:RUNNING expected:0 pid:{pid}"
        assert head["ver"] == "3.0" and head["server"] == "supervisor"
        assert head["pool"] == "rec" and int(head["len"]) == len(payload.encode())
        serials = [int(h["serial"]) for h, _ in got]
        assert serials == sorted(serials) and len(set(serials)) == len(serials)
        assert [int(h["poolserial"]) for h, _ in got] == list(range(1, len(got) + 1))
        running = [b for h, b in got if h["eventname"] == "PROCESS_STATE_RUNNING"]
        assert f"processname:job groupname:job from_state:STARTING pid:{pid}" in running

    run(tmp_path, "ok", "PROCESS_STATE_RUNNING, PROCESS_STATE_EXITED", body)


def test_fail_sends_the_same_event_again(tmp_path: Path) -> None:
    async def body(arbiter: Arbiter, out: Path, flag: Path) -> None:
        await async_wait_until(lambda: len(lines(out)) >= 2, 30, "two deliveries")
        first, second = lines(out)[:2]
        assert first == second  # same serial, poolserial, name and payload

    run(tmp_path, "fail-once", "PROCESS_STATE", body)


def test_protocol_error_disconnects_and_resends(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, "circus.arbiter")

    async def body(arbiter: Arbiter, out: Path, flag: Path) -> None:
        first_pid = arbiter.get_watcher("rec").pids[0]
        await async_wait_until(lambda: len(lines(out)) >= 2, 60, "a second delivery")
        first, second = lines(out)[:2]
        assert first == second
        assert arbiter.get_watcher("rec").pids != [first_pid]  # the listener was replaced
        assert "broke the protocol" in caplog.text

    run(tmp_path, "garbage-once", "PROCESS_STATE", body)


def test_overflow_drops_the_oldest(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, "circus.arbiter")

    async def body(arbiter: Arbiter, out: Path, flag: Path) -> None:
        hub = arbiter._supervisor.hub
        for n in range(6):
            hub.publish("PROCESS_COMMUNICATION_STDOUT", f"n:{n}".encode())
        touch(Path(str(out) + ".go"))
        await async_wait_until(
            lambda: [b for _, b in lines(out)][-2:] == ["n:4", "n:5"], 30, "the newest two"
        )
        bodies = [b for _, b in lines(out)]
        assert "n:0" not in bodies and "n:3" not in bodies
        assert "dropping event" in caplog.text

    run(tmp_path, "gated", "PROCESS_COMMUNICATION", body, buffer_size="2")


def test_a_second_ready_while_idle_changes_nothing() -> None:
    from circus.arbiter.supervisor._events import Event
    from circus.arbiter.supervisor._listener import ListenerPool

    class Conn:
        def __init__(self) -> None:
            self.sent: list[tuple[int, int]] = []

        def send(self, event: Event, poolserial: int) -> None:
            self.sent.append((event.serial, poolserial))

    pool = ListenerPool("p", ["w"], ["EVENT"])
    conn = Conn()
    pool.ready(conn)  # type: ignore[arg-type]
    pool.ready(conn)  # type: ignore[arg-type]
    pool.push(Event(1, "TICK_5", b"when:5"))
    pool.push(Event(2, "TICK_5", b"when:10"))
    assert conn.sent == [(1, 1)]  # one event until it answers, not one per READY
    pool.done(Event(1, "TICK_5", b"when:5"))
    pool.ready(conn)  # type: ignore[arg-type]
    assert conn.sent == [(1, 1), (2, 2)]


def test_a_stranger_is_hung_up_on(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, "circus.arbiter")

    async def body(arbiter: Arbiter, out: Path, flag: Path) -> None:
        address = "\0" + arbiter._supervisor.hub.address

        def knock() -> bytes:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(30)
            try:
                s.connect(address)
                s.sendall(b"READY\n")
                return s.recv(100)
            except ConnectionError:  # reset, or hung up on before the write
                return b""
            finally:
                s.close()

        assert await asyncio.to_thread(knock) == b""
        assert "is no event listener's process" in caplog.text
        await async_wait_until(lambda: lines(out), 30, "the real listener still served")

    run(tmp_path, "ok", "PROCESS_STATE", body)


def test_bad_events_option_is_refused(tmp_path: Path) -> None:
    async def body(arbiter: Arbiter, out: Path, flag: Path) -> None:
        raise AssertionError("started")

    with pytest.raises(ValueError, match="events"):
        run(tmp_path, "ok", "PROCESS_STATE, NOT_AN_EVENT", body)


SYSTEM_PY = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a listener as nobody")
@pytest.mark.skipif(not os.access(SYSTEM_PY, os.X_OK), reason=f"{SYSTEM_PY} missing")
def test_a_listener_running_as_another_user(tmp_path: Path) -> None:
    import shutil
    import tempfile

    # nobody can reach neither circusd's interpreter (a venv under /root here) nor pytest's
    # temp dir: the relay must run on a Python nobody can use, and write where it may
    folder = Path(tempfile.mkdtemp(prefix="suprpc-listener-"))
    try:
        folder.chmod(0o755)
        os.chown(folder, 65534, 65534)

        async def body(arbiter: Arbiter, out: Path, flag: Path) -> None:
            await async_wait_until(lambda: lines(out), 30, "an event delivered to nobody")
            pid = arbiter.get_watcher("rec").pids[0]
            assert os.stat(f"/proc/{pid}").st_uid == 65534

        run(
            tmp_path,
            "ok",
            "PROCESS_STATE",
            body,
            out_dir=folder,
            spec_options={"cmd": SYSTEM_PY, "uid": "nobody", "gid": 65534},
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)

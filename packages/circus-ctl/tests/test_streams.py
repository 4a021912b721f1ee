"""circusctl logs / listen and circus-top --once, against a real PUB socket."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from circus.ctl import protocol, top
from circus.ctl.testing import FakeDaemon, Publisher

HISTORY = [
    protocol.logs_answer_entry("web", 7, "stdout", "hist-1\n", 100.0),
    protocol.logs_answer_entry("worker", 8, "stderr", "hist-2\n", 101.0),
]


def _logs_reply(request: dict) -> dict:
    names = request["properties"].get("name")
    if names in ("nosuch", ["nosuch"]):
        return {"status": "error", "reason": "program nosuch not found", "errno": 3}
    return {"logs": HISTORY}


@pytest.fixture
def logs_daemon(fake_daemon: Callable[..., FakeDaemon], publisher: Publisher) -> FakeDaemon:
    return fake_daemon(
        {
            "logs": _logs_reply,
            "globaloptions": {"options": {"pubsub_endpoint": publisher.endpoint}},
            "stats": {
                "infos": {
                    "web": {
                        "7": {"pid": 7, "cpu": 1.5, "mem": 0.25, "age": 65.0, "cmdline": "python"}
                    }
                }
            },
        },
        name="logs-ctrl.sock",
    )


@contextmanager
def publishing(publisher: Publisher, make: Callable[[int], list[bytes]]) -> Iterator[None]:
    """Publish ``make(i)`` every 20 ms in a thread (subscribers join at their own pace)."""
    stop = threading.Event()

    def loop() -> None:
        i = 0
        while not stop.wait(0.02):
            publisher.send(make(i))
            i += 1

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (\S+)\[(\d+)\] ([|!]) (.*)$")


def test_logs_history_merged_with_prefix(logs_daemon: FakeDaemon, ctl: Callable) -> None:
    rc, out, err = ctl("logs", "-n", "5", "web", "worker", endpoint=logs_daemon.endpoint)
    assert (rc, err) == (0, "")
    parsed = [LINE.match(line).groups() for line in out.splitlines()]  # type: ignore[union-attr]
    assert parsed == [("web", "7", "|", "hist-1"), ("worker", "8", "!", "hist-2")]
    assert logs_daemon.last("logs")["properties"] == {"lines": 5, "name": ["web", "worker"]}


def test_logs_json_one_object_per_line(logs_daemon: FakeDaemon, ctl: Callable) -> None:
    rc, out, _ = ctl("--json", "logs", endpoint=logs_daemon.endpoint)
    assert rc == 0
    assert [json.loads(line) for line in out.splitlines()] == HISTORY


def test_logs_errors(logs_daemon: FakeDaemon, daemon: FakeDaemon, ctl: Callable) -> None:
    rc, _, err = ctl("logs", "nosuch", endpoint=logs_daemon.endpoint)
    assert rc == 3 and "program nosuch not found" in err
    rc, _, err = ctl("logs", endpoint=daemon.endpoint)  # a daemon without `logs` (like 0.19)
    assert rc == 3 and "has no 'logs' command" in err


def test_logs_follow_streams_live_output(
    logs_daemon: FakeDaemon, publisher: Publisher, ctl_process: Callable
) -> None:
    # No --pubsub-endpoint: it is discovered with globaloptions.
    proc = ctl_process("--endpoint", logs_daemon.endpoint, "logs", "-f", "--count", "3", "web")

    def make(i: int) -> list[bytes]:
        now = time.time()
        return [
            protocol.output_message("web.v2", 1, "stdout", "not me\n", now),
            protocol.output_message("other", 2, "stdout", "nor me\n", now),
            protocol.output_message("web", 7, "stdout", "old\n", 50.0),  # before the history
            protocol.output_message("web", 7, "stderr", f"live-{i}a\nlive-{i}b\n", now),
        ][i % 4]

    with publishing(publisher, make):
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    parsed = [LINE.match(line).groups() for line in out.splitlines()]  # type: ignore[union-attr]
    assert parsed[0] == ("web", "7", "|", "hist-1")
    live = parsed[2:]
    assert len(live) == 6  # three messages of two lines each
    assert all(p[:3] == ("web", "7", "!") and p[3].startswith("live-") for p in live)
    assert "globaloptions" in logs_daemon.commands()


def test_logs_follow_says_how_many_lines_it_missed(
    logs_daemon: FakeDaemon, publisher: Publisher, ctl_process: Callable
) -> None:
    # Each message holds 2 lines, but seq jumps by 5: 3 lines dropped before every message.
    proc = ctl_process("--endpoint", logs_daemon.endpoint, "logs", "-f", "--count", "3", "web")

    def make(i: int) -> list[bytes]:
        return protocol.output_message("web", 7, "stdout", f"m{i}a\nm{i}b\n", time.time(), 5 * i)

    with publishing(publisher, make):
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert len([line for line in out.splitlines() if " | m" in line]) == 6
    notes = [line for line in err.splitlines() if "missed" in line]
    assert len(notes) == 2, err  # the first message is the baseline
    assert all("3 lines of web stdout missed" in note for note in notes)


def test_logs_follow_json_one_object_per_line(
    logs_daemon: FakeDaemon, publisher: Publisher, ctl_process: Callable
) -> None:
    proc = ctl_process("--json", "--endpoint", logs_daemon.endpoint, "logs", "-f", "--count", "2")

    def make(i: int) -> list[bytes]:
        return protocol.output_message("web", 7, "stderr", f"a{i}\nb{i}\n", time.time(), 2 * i)

    with publishing(publisher, make):
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    entries = [json.loads(line) for line in out.splitlines()][len(HISTORY) :]
    assert len(entries) == 4, out
    assert [e["data"][0] for e in entries] == ["a", "b", "a", "b"]
    assert all(set(e) == {"watcher", "pid", "stream", "time", "data"} for e in entries)
    assert all(e["data"].endswith("\n") and e["data"].count("\n") == 1 for e in entries)


def test_listen_prints_events(publisher: Publisher, ctl_process: Callable) -> None:
    proc = ctl_process("--endpoint", publisher.endpoint, "listen", "--count", "2", "watcher.web.")

    def make(i: int) -> list[bytes]:
        if i % 2:
            return protocol.event_message("other", "spawn", {"process_pid": i, "time": 1.0})
        return protocol.event_message("web", "spawn", {"process_pid": i, "time": 1.0})

    with publishing(publisher, make):
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    for line in lines:
        topic, _, payload = line.partition(": ")
        assert topic == "watcher.web.spawn"
        assert json.loads(payload)["process_pid"] % 2 == 0


def test_listen_json(publisher: Publisher, ctl_process: Callable) -> None:
    proc = ctl_process("--json", "listen", "--pubsub-endpoint", publisher.endpoint, "--count", "1")
    with publishing(publisher, lambda i: protocol.event_message("a", "stop", {"time": 2.0})):
        out, _ = proc.communicate(timeout=60)
    assert json.loads(out) == {"topic": "watcher.a.stop", "payload": {"time": 2.0}}


def test_top_once_from_stats_channel(publisher: Publisher, logs_daemon: FakeDaemon) -> None:
    def make(i: int) -> list[bytes]:
        messages = [
            [
                b"stat.web.7",
                protocol.encode(
                    {
                        "pid": 7,
                        "cpu": 12.5,
                        "mem": 1.25,
                        "age": 3700,
                        "cmdline": "python",
                        "name": None,
                    }
                ),
            ],
            [
                b"stat.web.9",
                protocol.encode(
                    {
                        "pid": 9,
                        "cpu": "N/A",
                        "mem": 0.5,
                        "age": 5,
                        "cmdline": "python",
                        "name": None,
                    }
                ),
            ],
            [b"stat.web", protocol.encode({"pid": [7, 9], "cpu": 12.5, "mem": 1.75, "age": 3700})],
            [b"stat.sockets", protocol.encode({"addresses": [], "reads": 0})],
        ]
        return messages[i % 4]

    buffer = io.StringIO()
    with publishing(publisher, make):
        rc = top.main(
            [
                "--endpoint",
                publisher.endpoint,
                "--ctl-endpoint",
                logs_daemon.endpoint,
                "--once",
                "--wait",
                "20",
            ],
            stdout=buffer,
        )
    assert rc == 0
    lines = buffer.getvalue().splitlines()
    assert lines[0].split() == ["WATCHER", "PID", "COMMAND", "CPU%", "MEM%", "AGE"]
    rows = [line.split() for line in lines[1:]]
    assert ["web", "7", "python", "12.5", "1.250", "1h01m"] in rows
    assert ["web", "9", "python", "N/A", "0.500", "5s"] in rows
    assert ["web", "(2)", "total", "12.5", "1.750", "1h01m"] in rows


def test_top_once_falls_back_to_polling_stats(tmp_path, logs_daemon: FakeDaemon) -> None:
    buffer = io.StringIO()
    started = time.monotonic()
    rc = top.main(
        [
            "--endpoint",
            f"ipc://{tmp_path / 'no-stats.sock'}",
            "--ctl-endpoint",
            logs_daemon.endpoint,
            "--once",
            "--wait",
            "0.3",
        ],
        stdout=buffer,
    )
    assert rc == 0
    assert time.monotonic() - started < 10
    rows = [line.split() for line in buffer.getvalue().splitlines()[1:]]
    assert rows == [
        ["web", "7", "python", "1.5", "0.250", "1m05s"],
        ["web", "(1)", "total", "1.5", "0.250", "1m05s"],
    ]


def test_top_fails_clearly_when_nothing_answers(tmp_path, capsys) -> None:
    rc = top.main(
        [
            "--endpoint",
            f"ipc://{tmp_path / 'a'}",
            "--ctl-endpoint",
            f"ipc://{tmp_path / 'b'}",
            "--once",
            "--wait",
            "0.2",
            "--timeout",
            "0.3",
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert f"ipc://{tmp_path / 'a'}" in err and f"ipc://{tmp_path / 'b'}" in err


def test_listen_discovers_pubsub_from_circusctl_endpoint(
    logs_daemon: FakeDaemon, publisher: Publisher, ctl_process: Callable
) -> None:
    proc = ctl_process("listen", "--count", "1", env={"CIRCUSCTL_ENDPOINT": logs_daemon.endpoint})
    with publishing(publisher, lambda i: protocol.event_message("a", "stop", {"time": 2.0})):
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("watcher.a.stop: ")
    assert "globaloptions" in logs_daemon.commands()


def test_ssh_without_tunnel_library_is_explained(tmp_path, capsys, publisher: Publisher) -> None:
    from circus.ctl import CircusConsumer
    from circus.ctl._core import ssh_tunnel_library
    from circus.ctl.errors import CtlError

    if ssh_tunnel_library() is not None:
        pytest.skip("paramiko or pexpect is installed")
    with pytest.raises(CtlError, match="needs paramiko or pexpect"):
        CircusConsumer("stat.", publisher.endpoint, ssh_server="me@host:22")
    rc = top.main(
        [
            "--endpoint",
            publisher.endpoint,
            "--ctl-endpoint",
            f"ipc://{tmp_path / 'c'}",
            "--ssh",
            "me@host:22",
            "--once",
            "--timeout",
            "0.2",
        ]
    )
    assert rc == 1
    assert "needs paramiko or pexpect" in capsys.readouterr().err


def test_listen_given_the_control_endpoint_follows_its_pubsub(
    logs_daemon: FakeDaemon, publisher: Publisher, ctl_process: Callable
) -> None:
    proc = ctl_process("--endpoint", logs_daemon.endpoint, "listen", "--count", "1")
    with publishing(publisher, lambda i: protocol.event_message("a", "stop", {"time": 2.0})):
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("watcher.a.stop: ")
    assert f"{logs_daemon.endpoint} is circusd's control endpoint" in err

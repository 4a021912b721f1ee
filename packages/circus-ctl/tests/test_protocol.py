"""circus.ctl.protocol: shapes of requests, answers, topics, and the command table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from circus.ctl import protocol as p
from circus.ctl.errors import ProtocolError


def test_protocol_module_does_not_import_zmq() -> None:
    code = "import sys, circus.ctl.protocol; print('zmq' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_request_has_circusctl_key_order_and_hex_id() -> None:
    req = p.make_request("list", {"name": "w"})
    assert list(req) == ["command", "properties", "id"]
    assert len(req["id"]) == 32 and int(req["id"], 16) >= 0
    assert p.encode(req) == json.dumps(req).encode()


def test_cast_request_carries_msg_type() -> None:
    assert p.cast_request("incr", {"name": "w"})["msg_type"] == "cast"
    assert p.decode_request(p.encode(p.cast_request("list"))).cast is True


def test_decode_request_lowercases_and_fills_defaults() -> None:
    req = p.decode_request(b'{"command": "START", "id": 42}')
    assert req.command == "start"
    assert req.id == 42
    assert req.properties == {"match": "glob", "waiting": False}


@pytest.mark.parametrize(
    ("frame", "errno", "reason"),
    [
        (b"not json at all", 1, "json invalid"),
        (b'{"command": "nosuchcommand"}', 2, "unknown command: 'nosuchcommand'"),
        (
            b'{"command": "get", "properties": {"name": "w"}}',
            3,
            "message invalid 'keys' is missing",
        ),
        (b'{"command": "listen"}', 3, "invalid message. use a pub/sub socket"),
        (b"[1, 2, 3]", 3, "message invalid: not a JSON object"),
    ],
)
def test_decode_request_errors(frame: bytes, errno: int, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        p.decode_request(frame)
    assert info.value.errno == errno
    assert info.value.reason == reason


def test_bad_types_are_rejected_but_cli_quirks_accepted() -> None:
    with pytest.raises(ProtocolError, match="'nb'"):
        p.validate_properties("incr", {"name": "w", "nb": "3"})
    with pytest.raises(ProtocolError, match="'waiting'"):
        p.validate_properties("incr", {"name": "w", "waiting": 1})
    with pytest.raises(ProtocolError, match="'match'"):
        p.validate_properties("start", {"match": "fuzzy"})
    # 0.19's circusctl sends kill's pid and graceful_timeout as strings, signum as a name.
    props = {"name": "w", "pid": "456", "signum": "KILL", "graceful_timeout": "3"}
    assert p.validate_properties("kill", props)["pid"] == "456"


def test_every_upstream_command_is_in_the_table() -> None:
    upstream = {
        *("add", "decr", "dstats", "get", "globaloptions", "incr", "ipython", "kill"),
        *("list", "listen", "listsockets", "numprocesses", "numwatchers", "options"),
        *("quit", "reload", "reloadconfig", "restart", "rm", "set", "signal", "start"),
        *("stats", "status", "stop"),
    }
    assert set(upstream) <= set(p.COMMANDS)
    assert p.COMMANDS["logs"].ours
    assert not any(p.COMMANDS[name].ours for name in upstream)
    assert p.COMMANDS["set"].required == ("name", "options")


def test_ok_answer_status_field_overrides_ok_and_id_is_last() -> None:
    answer = p.ok_answer("c4", {"status": "active"})
    assert answer["status"] == "active"
    assert list(answer)[-1] == "id"
    assert list(p.error_answer(None, "json invalid", p.Errno.INVALID_JSON)) == [
        "status",
        "reason",
        "tb",
        "time",
        "errno",
        "id",
    ]


def test_topics() -> None:
    assert p.event_topic("My Watch.v2", "add") == "watcher.my_watch.v2.add"
    assert p.parse_event_topic("watcher.my_watch.v2.add") == ("my_watch.v2", "add")
    assert p.output_topic("Web", "stderr") == "output.web.stderr"
    assert p.parse_output_topic(b"output.a.b.stdout") == ("a.b", "stdout")
    assert p.stat_topic("w", 12) == "stat.w.12"
    assert p.parse_stat_topic("stat.w.12") == ("w", "12")
    assert p.parse_stat_topic("stat.sockets") == ("sockets", None)
    with pytest.raises(ProtocolError):
        p.parse_event_topic("stat.w")
    with pytest.raises(ValueError):
        p.output_topic("w", "stdin")


def test_output_message_frames() -> None:
    frames = p.output_message("w", 7, "stdout", b"hi\xff\n", when=1.5)
    topic, payload = p.decode_pubsub(frames)
    assert topic == "output.w.stdout"
    assert payload == {
        "watcher": "w",
        "pid": 7,
        "stream": "stdout",
        "time": 1.5,
        "data": "hi\ufffd\n",
    }

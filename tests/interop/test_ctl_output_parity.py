"""Same answers in, same text out: our circusctl against upstream 0.19's, byte for byte.

Both programs talk to one FakeDaemon serving the same canned answers, so any difference is
in the client. Also checks that both send the same request, except where we fix 0.19's bugs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from circus.ctl.testing import CANNED_REPLIES, FakeDaemon
from circus.ctl.testing.upstream import UpstreamCircus

pytestmark = pytest.mark.interop


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeDaemon]:
    with FakeDaemon(f"ipc://{tmp_path / 'ctrl.sock'}", CANNED_REPLIES) as daemon:
        yield daemon


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def both(
    upstream: UpstreamCircus, fake: FakeDaemon, *args: str
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str], dict, dict]:
    """Run upstream's then our circusctl with ``args``; return results and both requests."""
    common = ["--endpoint", fake.endpoint, "--timeout", "5", *args]
    theirs = _run([str(upstream.circusctl), *common])
    their_request = fake.requests[-1] if fake.requests else {}
    fake.requests.clear()
    ours = _run([sys.executable, "-m", "circus.ctl.cli", *common])
    our_request = fake.requests[-1] if fake.requests else {}
    fake.requests.clear()
    return theirs, ours, their_request, our_request


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "sleeper"),
        ("list",),
        ("list", "sleeper"),
        ("numprocesses",),
        ("numwatchers",),
        ("options", "sleeper"),
        ("get", "sleeper", "numprocesses", "cmd"),
        ("globaloptions",),
        ("dstats",),
        ("stats",),
        ("stats", "sleeper"),
        ("stats", "echoer", "7690"),
        ("incr", "sleeper"),
        ("incr", "sleeper", "--waiting"),
        ("decr", "sleeper", "2", "--waiting"),
        ("start", "sleeper", "--waiting"),
        ("stop", "--match", "regex", "sl.*"),
        ("restart",),
        ("reload", "sleeper", "--terminate", "--sequential"),
        ("reloadconfig",),
        ("add", "--start", "w2", "sleep 10"),
        ("signal", "sleeper", "HUP", "--children"),
        ("set", "sleeper", "numprocesses", "3", "send_hup", "yes", "stop_signal", "QUIT"),
        ("set", "sleeper", "hooks", "before_start:m.f,after_stop:m.g"),
        ("quit",),
    ],
)
def test_same_output_and_request(
    upstream_circus: UpstreamCircus, fake: FakeDaemon, args: tuple[str, ...]
) -> None:
    theirs, ours, their_request, our_request = both(upstream_circus, fake, *args)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert our_request["command"] == their_request["command"]
    assert our_request["properties"] == their_request["properties"]


def test_listsockets_same_for_tcp_sockets(upstream_circus: UpstreamCircus, tmp_path: Path) -> None:
    replies = {
        "listsockets": {
            "sockets": [
                {"fd": 6, "name": "web", "backlog": 2048, "host": "127.0.0.1", "port": 44179},
                {"fd": 9, "name": "api", "backlog": 10, "host": "::1", "port": 8000},
            ]
        }
    }
    with FakeDaemon(f"ipc://{tmp_path / 'c.sock'}", replies) as fake:
        theirs, ours, _, _ = both(upstream_circus, fake, "listsockets")
    assert ours.stdout == theirs.stdout != ""


def test_error_answers_exit_3_for_both(upstream_circus: UpstreamCircus, fake: FakeDaemon) -> None:
    theirs, ours, _, _ = both(upstream_circus, fake, "ipython")
    assert theirs.returncode == ours.returncode == 3
    assert theirs.stderr == "error: unknown command: 'ipython'\n"
    assert ours.stderr.startswith(theirs.stderr.rstrip("\n"))


@pytest.mark.parametrize(
    ("args", "fixed"),
    [
        # 0.19 sends pid/graceful_timeout as strings; the daemon then skips the SIGKILL.
        (
            ("kill", "sleeper", "456", "--graceful_timeout", "3"),
            {"pid": 456, "graceful_timeout": 3.0},
        ),
        # 0.19 drops --waiting and --nostop.
        (("rm", "sleeper", "--waiting", "--nostop"), {"waiting": True, "nostop": True}),
    ],
)
def test_fixed_requests(
    upstream_circus: UpstreamCircus, fake: FakeDaemon, args: tuple[str, ...], fixed: dict
) -> None:
    theirs, ours, their_request, our_request = both(upstream_circus, fake, *args)
    assert theirs.stdout == ours.stdout == "ok\n"
    for key, value in fixed.items():
        assert our_request["properties"][key] == value
        assert their_request["properties"].get(key) != value


def test_set_env_crashes_upstream_but_not_ours(
    upstream_circus: UpstreamCircus, fake: FakeDaemon
) -> None:
    theirs, ours, their_request, our_request = both(
        upstream_circus, fake, "set", "sleeper", "env", "A=1,B=2"
    )
    assert theirs.returncode != 0 and "Traceback" in theirs.stderr and their_request == {}
    assert ours.returncode == 0
    assert our_request["properties"]["options"] == {"env": {"A": "1", "B": "2"}}


EMPTY = {
    "list": {"pids": []},
    "status": {"statuses": {}},
    "stats": {"infos": {}},
    "options": {"options": {}},
    "listsockets": {"sockets": []},
    "globaloptions": {"options": {}},
    "get": {"options": {"env": {}, "args": ["a", "b"], "hooks": {"x": "y"}, "uid": None}},
}


@pytest.mark.parametrize(
    "args",
    [
        ("list", "x"),
        ("status",),
        ("stats",),
        ("options", "x"),
        ("listsockets",),
        ("globaloptions",),
        ("get", "x", "env", "args", "hooks", "uid"),
    ],
)
def test_empty_and_odd_answers_print_the_same(
    upstream_circus: UpstreamCircus, tmp_path: Path, args: tuple[str, ...]
) -> None:
    with FakeDaemon(f"ipc://{tmp_path / 'e.sock'}", EMPTY) as fake:
        theirs, ours, _, _ = both(upstream_circus, fake, *args)
    assert (theirs.returncode, ours.returncode) == (0, 0)
    assert ours.stdout == theirs.stdout

"""Property test: whatever request arrives, the daemon answers and keeps serving."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from circus.arbiter import ThreadedArbiter
from circus.ctl.protocol import COMMANDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# quit would end the daemon under test and add would run random command lines
NAMES = sorted(set(COMMANDS) - {"quit", "add"}) + ["nosuch", "LIST", ""]
PROPS = sorted({p.name for spec in COMMANDS.values() for p in spec.props} | {"bogus"})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["sleeper", "SLEEPER", "s*", "HUP", "TERM", "9", "-1", "glob", "regex"]),
    st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
properties = st.dictionaries(st.sampled_from(PROPS), values, max_size=5)
requests = st.fixed_dictionaries(
    {"command": st.one_of(st.sampled_from(NAMES), values), "properties": properties},
    optional={"id": scalars, "msg_type": st.sampled_from(["call", "cast", 3])},
)


# Function-scoped (the module's one test shares it across every example): the leak check then
# judges the daemon's stop too, and the workers it respawns for the examples are the test's.
@pytest.fixture
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    endpoint = f"ipc://{tmp}/ctl"
    sleeper = {
        "name": "sleeper",
        "cmd": f"{sys.executable} -c 'import time; time.sleep(300)'",
        "graceful_timeout": 1,
    }
    arbiter = ThreadedArbiter([sleeper], endpoint=endpoint, pubsub_endpoint=f"ipc://{tmp}/pub")
    arbiter.start()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    try:
        yield {"sock": sock}
    finally:
        sock.close()
        ctx.term()
        arbiter.stop()


def _ask(sock: zmq.Socket[Any], payload: bytes, expect: bool) -> dict[str, Any] | None:
    sock.send(payload)
    if not expect:
        # a cast gets no answer: prove the daemon is alive with a follow-up request
        sock.send(json.dumps({"command": "numwatchers", "id": "ping"}).encode())
    while True:
        assert sock.poll(15000), f"no answer to {payload[:200]!r}"
        answer = json.loads(sock.recv())
        assert isinstance(answer, dict) and "status" in answer and "time" in answer
        if not expect:
            if answer.get("id") == "ping":
                assert answer["numwatchers"] == 1
                return None
            continue
        return answer


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests)
def test_every_request_is_answered(daemon: dict[str, Any], request: dict[str, Any]) -> None:
    sock = daemon["sock"]
    payload = json.dumps(request).encode()
    cast = request.get("msg_type") == "cast"
    answer = _ask(sock, payload, expect=not cast)
    if answer is not None:
        if answer["status"] == "error":
            assert isinstance(answer["reason"], str) and isinstance(answer["errno"], int)
        assert answer["id"] == request.get("id")
    # and the daemon still serves, at once
    ping = _ask(sock, json.dumps({"command": "list", "id": "after"}).encode(), expect=True)
    assert ping is not None and ping["status"] == "ok"

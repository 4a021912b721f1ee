"""CircusClient / AsyncCircusClient against a real ROUTER socket (the fake daemon)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
import zmq
from circus.ctl import AsyncCircusClient, CircusClient
from circus.ctl.errors import CallError, CallTimeout, DaemonUnreachable
from circus.ctl.testing import FakeDaemon


def test_call_returns_answer_with_echoed_id(daemon: FakeDaemon) -> None:
    with CircusClient(daemon.endpoint, timeout=3) as client:
        answer = client.call("list")
        assert answer["status"] == "ok"
        assert answer["watchers"] == ["circusd-stats", "echoer", "sleeper"]
        assert answer["id"] == daemon.requests[-1]["id"]
        assert client.send_message("list", name="sleeper")["pids"] == [7692, 7693]
        assert daemon.requests[-1]["properties"] == {"name": "sleeper"}


def test_call_accepts_a_whole_message_like_upstream(daemon: FakeDaemon) -> None:
    with CircusClient(daemon.endpoint, timeout=3) as client:
        assert client.call({"command": "numwatchers", "properties": {}})["numwatchers"] == 3
        assert client.call('{"command": "numwatchers"}')["numwatchers"] == 3


def test_error_answer_raises_call_error_unless_check_is_off(daemon: FakeDaemon) -> None:
    with CircusClient(daemon.endpoint, timeout=3) as client:
        with pytest.raises(CallError) as info:
            client.call("bogus")
        assert info.value.errno == 2
        assert info.value.reason == "unknown command: 'bogus'"
    with CircusClient(daemon.endpoint, timeout=3, check=False) as client:
        assert client.call("bogus")["status"] == "error"


def test_unreachable_daemon_names_endpoint_within_timeout(tmp_path) -> None:
    endpoint = f"ipc://{tmp_path / 'nobody.sock'}"
    started = time.monotonic()
    with CircusClient(endpoint, timeout=0.5) as client:
        with pytest.raises(DaemonUnreachable) as info:
            client.call("list")
    assert time.monotonic() - started < 2.5
    assert endpoint in str(info.value)
    assert "does not exist" in str(info.value)
    assert isinstance(info.value, ConnectionError)


def test_stale_ipc_socket_file_is_explained(tmp_path) -> None:
    import socket

    path = tmp_path / "stale.sock"
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(path))  # bound, never listening: what a killed daemon leaves behind
    leftover.close()
    with CircusClient(f"ipc://{path}", timeout=0.3) as client:
        with pytest.raises(DaemonUnreachable, match="stale socket file"):
            client.call("list")


def test_refused_tcp_connection_is_explained() -> None:
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with CircusClient(f"tcp://127.0.0.1:{port}", timeout=0.5) as client:
        with pytest.raises(DaemonUnreachable, match="connection refused"):
            client.call("list")


def test_wrong_kind_of_socket_is_explained(tmp_path) -> None:
    """A classic mistake: giving the pub/sub endpoint where the control one is expected."""
    from circus.ctl.testing import Publisher

    with Publisher(f"ipc://{tmp_path / 'pub.sock'}") as publisher:
        started = time.monotonic()
        with CircusClient(publisher.endpoint, timeout=20) as client:
            with pytest.raises(DaemonUnreachable, match="not a circusd control socket"):
                client.call("list")
        assert time.monotonic() - started < 10  # known at once, not after the timeout

        async def main() -> None:
            async with AsyncCircusClient(publisher.endpoint, timeout=20) as client:
                with pytest.raises(DaemonUnreachable, match="not a circusd control socket"):
                    await client.call("list")

        asyncio.run(main())
        assert time.monotonic() - started < 20


def test_non_zeromq_server_is_explained() -> None:
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        endpoint = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        with CircusClient(endpoint, timeout=0.5) as client:
            with pytest.raises(DaemonUnreachable, match="no ZeroMQ handshake"):
                client.call("list")
    finally:
        server.close()


def test_connected_but_silent_daemon_times_out(fake_daemon: Callable[..., FakeDaemon]) -> None:
    daemon = fake_daemon({"list": lambda request: None})
    with CircusClient(daemon.endpoint, timeout=0.5) as client:
        with pytest.raises(CallTimeout) as info:
            client.call("list")
    assert daemon.endpoint in str(info.value)
    assert "'list'" in str(info.value)
    assert isinstance(info.value, TimeoutError)


def test_stale_answers_are_skipped(tmp_path) -> None:
    """A late answer to an earlier request must not be taken for the current one."""
    endpoint = f"ipc://{tmp_path / 'stale.sock'}"
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.bind(endpoint)
    try:
        with CircusClient(endpoint, timeout=3) as client:
            client._send({"command": "list", "properties": {}, "id": "first"})
            identity, _ = router.recv_multipart()

            def answer_late_then_right() -> None:
                identity2, payload = router.recv_multipart()
                request_id = json.loads(payload)["id"]
                router.send_multipart([identity, b'{"status": "ok", "id": "first", "n": 1}'])
                router.send_multipart([identity2, b"garbage"])
                reply = {"status": "ok", "id": request_id, "n": 2}
                router.send_multipart([identity2, json.dumps(reply).encode()])

            import threading

            thread = threading.Thread(target=answer_late_then_right)
            thread.start()
            assert client.call("list")["n"] == 2
            thread.join(5)
    finally:
        router.close(linger=0)
        context.term()


def test_cast_sends_without_waiting(daemon: FakeDaemon) -> None:
    with CircusClient(daemon.endpoint, timeout=3) as client:
        client.cast("incr", name="sleeper")
        client.call("numwatchers")  # answered after the cast was processed
    cast = daemon.last("incr")
    assert cast["msg_type"] == "cast"
    assert cast["properties"] == {"name": "sleeper"}


def test_identity_and_request_shape_match_circusctl(daemon: FakeDaemon) -> None:
    with CircusClient(daemon.endpoint, timeout=3) as client:
        client.call("status", name="w")
    request = daemon.requests[-1]
    assert list(request) == ["command", "properties", "id"]
    assert len(request["id"]) == 32


def test_compat_module_keeps_upstream_conventions(daemon: FakeDaemon) -> None:
    from circus.client import CircusClient as CompatClient
    from circus.client import make_message

    client = CompatClient(endpoint=daemon.endpoint, timeout=3)
    try:
        assert client.call(make_message("bogus"))["errno"] == 2
        assert client.call(make_message("list"))["status"] == "ok"
    finally:
        client.stop()


def test_async_client_concurrent_calls(daemon: FakeDaemon) -> None:
    async def main() -> list[dict]:
        async with AsyncCircusClient(daemon.endpoint, timeout=3) as client:
            return await asyncio.gather(
                client.call("numwatchers"),
                client.call("list"),
                client.send_message("status", name="w"),
            )

    numwatchers, listing, status = asyncio.run(main())
    assert numwatchers["numwatchers"] == 3
    assert listing["watchers"][0] == "circusd-stats"
    assert status["status"] == "active"


def test_async_client_errors(fake_daemon: Callable[..., FakeDaemon], tmp_path) -> None:
    daemon = fake_daemon({"list": lambda request: None})

    async def main() -> None:
        async with AsyncCircusClient(daemon.endpoint, timeout=0.5) as client:
            with pytest.raises(CallTimeout):
                await client.call("list")
            with pytest.raises(CallError, match="unknown command"):
                await client.call("nope")
            await client.cast("list")
        async with AsyncCircusClient(f"ipc://{tmp_path / 'none'}", timeout=0.5) as client:
            with pytest.raises(DaemonUnreachable):
                await client.call("list")

    asyncio.run(main())

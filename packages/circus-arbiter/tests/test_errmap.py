"""Every public exception of every layer gets, from the controller, the errno of the one table.

Each class is raised by a real command handler of a running daemon and the answer read over
the control socket: a known class is answered with its errno, its message and no traceback;
an unexpected one with errno 5, ``command b'...': <message>`` and its traceback.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from circus.arbiter import CommandError, ThreadedArbiter
from circus.arbiter import _commands as commands
from circus.arbiter._controller import Controller
from circus.arbiter._errmap import errno_for, errno_table
from circus.ctl.protocol import Errno
from circus.watcher import OptionError

# The packages whose public exceptions (their __all__) a command may raise.
LAYERS = (
    "circus.process",
    "circus.watcher",
    "circus.sockets",
    "circus.ctl",
    "circus.arbiter",
    "circus.arbiter.config",
)

MESSAGE, COMMAND, OS = Errno.MESSAGE_ERROR, Errno.COMMAND_ERROR, Errno.OS_ERROR
UNEXPECTED = None  # errno 5 with the request, the message and the traceback, logged

# The answer each public exception gets: what circusd answered before the table existed.
EXPECTED: dict[str, Errno | None] = {
    "circus.process.ProcessError": COMMAND,
    "circus.process.ProcessGoneError": COMMAND,
    "circus.process.ProcessStateError": COMMAND,
    "circus.process.SpawnError": COMMAND,
    "circus.process.StreamError": COMMAND,
    "circus.watcher.WatcherError": COMMAND,
    "circus.watcher.OptionError": MESSAGE,
    "circus.watcher.CeilingError": MESSAGE,
    "circus.watcher.HookError": MESSAGE,
    "circus.watcher.UnknownOptionError": MESSAGE,
    "circus.watcher.ProcessNotFoundError": MESSAGE,
    "circus.watcher.SpawnFailedError": COMMAND,
    "circus.watcher.ResourceShortage": COMMAND,
    "circus.watcher.NotReady": COMMAND,
    "circus.watcher.RolloutError": COMMAND,
    "circus.watcher.EnvFileError": COMMAND,
    "circus.sockets.SocketError": COMMAND,
    "circus.sockets.SocketOptionError": COMMAND,
    "circus.ctl.CtlError": UNEXPECTED,
    "circus.ctl.ProtocolError": UNEXPECTED,
    "circus.ctl.CallError": UNEXPECTED,
    "circus.ctl.DaemonUnreachable": OS,
    "circus.ctl.CallTimeout": OS,
    "circus.arbiter.ArbiterError": UNEXPECTED,
    "circus.arbiter.UpstreamCircusInstalled": UNEXPECTED,
    "circus.arbiter.CommandError": COMMAND,
    "circus.arbiter.MessageError": MESSAGE,
    "circus.arbiter.NotFoundError": MESSAGE,
    "circus.arbiter.ConflictError": COMMAND,
    "circus.arbiter.config.ConfigError": UNEXPECTED,
}

# Constructor arguments of the classes that take more than a message.
ARGS: dict[str, tuple[Any, ...]] = {
    "OptionError": ("numprocesses", "three", "an integer"),
    "CeilingError": ("numprocesses", 10**9, "an integer", 100_000, "processes per watcher"),
    "HookError": ("hooks.before_start", "no.such", "an importable callable"),
    "UnknownOptionError": ("bogus", ["cmd", "numprocesses"], None),
    "ProcessNotFoundError": ("web", 4242),
    "NotReady": ("web", {4242: "not ready after 30 s"}),
    "EnvFileError": ("/etc/app.env", 3, "expected KEY=VALUE"),
    "RolloutError": ("web", {4242: "not ready after 30 s"}, [], [], [4241]),
    "SpawnError": ("cmd", "/no/such", "no such file"),
    "StreamError": ("max_bytes", -1, "must be >= 0"),
    "CallError": ({"status": "error", "reason": "refused", "errno": 3},),
    "DaemonUnreachable": ("ipc:///nowhere", 1.0),
    "CallTimeout": ("ipc:///nowhere", 1.0, "list"),
}


def public_exceptions() -> dict[str, type[Exception]]:
    """``{"package.Name": class}`` of every exception class each layer exports."""
    found = {}
    for name in LAYERS:
        module = importlib.import_module(name)
        for attr in module.__all__:
            value = getattr(module, attr)
            exception = isinstance(value, type) and issubclass(value, Exception)
            if exception and not issubclass(value, Warning):
                found[f"{name}.{attr}"] = value
    return found


def make(cls: type[Exception]) -> Exception:
    """An instance of ``cls`` with a message."""
    return cls(*ARGS.get(cls.__name__, (f"a {cls.__name__} happened",)))


def test_every_public_exception_has_an_expected_answer() -> None:
    # A new public exception class must say here which answer it gets.
    assert sorted(public_exceptions()) == sorted(EXPECTED)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zmq.Socket[Any]]:
    tmp = tmp_path_factory.mktemp("errmap")
    endpoint = f"ipc://{tmp}/ctl"
    arbiter = ThreadedArbiter([], endpoint=endpoint, pubsub_endpoint=f"ipc://{tmp}/pub")
    arbiter.start()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    try:
        assert _ask(sock, "numwatchers")["numwatchers"] == 0  # the handlers are loaded
        yield sock
    finally:
        sock.close()
        ctx.term()
        arbiter.stop()


def _payload(command: str) -> bytes:
    return json.dumps({"command": command, "id": "e", "properties": {}}).encode()


def _ask(sock: zmq.Socket[Any], command: str) -> dict[str, Any]:
    sock.send(_payload(command))
    assert sock.poll(30_000), f"no answer to {command}"
    answer: dict[str, Any] = json.loads(sock.recv())
    return answer


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_handler_raising_it_gets_the_tables_errno(
    name: str,
    daemon: zmq.Socket[Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    exc = make(public_exceptions()[name])

    def handler(*_args: Any) -> None:
        raise exc

    monkeypatch.setitem(commands.COMMANDS, "numwatchers", handler)
    caplog.set_level(logging.ERROR, logger="circus.arbiter")
    answer = _ask(daemon, "numwatchers")
    logged = [r for r in caplog.records if r.name == "circus.arbiter" and r.exc_info]
    assert answer["status"] == "error" and answer["id"] == "e"
    expected = EXPECTED[name]
    if expected is UNEXPECTED:
        assert answer["errno"] == Errno.COMMAND_ERROR
        assert answer["reason"] == f"command {_payload('numwatchers')!r}: {exc}"
        assert f"{type(exc).__name__}: {exc}" in answer["tb"]
        assert [r.exc_info[1] for r in logged if r.exc_info] == [exc]
    else:
        assert answer["errno"] == expected
        assert answer["reason"] == (exc.reason if isinstance(exc, CommandError) else str(exc))
        assert answer["tb"] is None
        assert logged == []
    assert errno_for(exc) == expected


class AppOptionError(OptionError):
    """A subclass defined outside the watcher layer (by an application, a plugin)."""


def test_the_class_decides_not_the_module_it_was_defined_in() -> None:
    answer = Controller._translate("i", b"{}", AppOptionError("env", 3, "a mapping"))
    assert (answer["errno"], answer["tb"]) == (Errno.MESSAGE_ERROR, None)
    assert answer["reason"] == "invalid value 3 for option 'env': expected a mapping"
    # a builtin exception raised from inside a layer is still unexpected
    answer = Controller._translate("i", b"{}", ValueError("x"))
    assert (answer["errno"], answer["reason"]) == (Errno.COMMAND_ERROR, "command b'{}': x")
    assert "ValueError: x" in answer["tb"]


def test_the_table_is_most_specific_first() -> None:
    table = errno_table()
    for index, (cls, _errno) in enumerate(table):
        for later, _ in table[index + 1 :]:
            assert not issubclass(later, cls), f"{later.__name__} is hidden by {cls.__name__}"

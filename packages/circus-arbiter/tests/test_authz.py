"""The authorization rule (who may do what) and peer identification, without a daemon.

The rule is pure: a :class:`Policy`, a :class:`PeerIdentity`, the request, and a lookup of a
watcher's ``uid``/``gid``. Peer identification is checked on real ipc and loopback tcp
connections made by this process (the end-to-end tests drive a root circusd as ``nobody``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import socket
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.asyncio
from circus.arbiter import _peers
from circus.arbiter._authz import (
    OPERATE_COMMANDS,
    OWNER_OPTIONS,
    Policy,
    Refused,
    Right,
    _Limited,
    authorize,
    check,
    needed_right,
    parse_access,
    runs_as,
)
from circus.arbiter._peers import (
    IN_PROCESS,
    MessagePeer,
    PeerIdentity,
    find_tcp_owner,
    parse_ipc_address,
    tcp_owner_uid,
)
from circus.ctl.protocol import COMMANDS

try:
    NOBODY = pwd.getpwnam("nobody")
except KeyError:  # pragma: no cover - every test image here has it
    NOBODY = None

needs_nobody = pytest.mark.skipif(NOBODY is None, reason="needs the user nobody")

OWNER = 65534
ROOT = PeerIdentity("ipc", uid=0, gid=0, pid=1)
OWNER_PEER = PeerIdentity("ipc", uid=OWNER, gid=OWNER, pid=2)
STRANGER = PeerIdentity("tcp", uid=4242, address="127.0.0.1:40000")
UNKNOWN = PeerIdentity("tcp", address="10.0.0.9:40000")


def policy(access: str = "read", owner: bool = True) -> Policy:
    groups = frozenset(os.getgrouplist("nobody", NOBODY.pw_gid)) if NOBODY else frozenset()
    return Policy(
        unauthenticated=access,
        owner_uid=OWNER if owner else None,
        owner_groups=groups if owner else frozenset(),
        circusd_uid=0,
        circusd_gid=0,
    )


# watcher name -> its (uid, gid) options
WATCHERS: dict[str, tuple[object, object]] = {
    "rootly": (None, None),
    "mine": ("nobody", None),
    "mine_numeric": (OWNER, OWNER),
    "mine_but_root_group": ("nobody", 0),
}


def ask(who: PeerIdentity, command: str, access: str = "read", **props: Any) -> None:
    authorize(policy(access), who, command, props, WATCHERS.get)


def refused(who: PeerIdentity, command: str, access: str = "read", **props: Any) -> str:
    with pytest.raises(Refused) as info:
        ask(who, command, access, **props)
    assert info.value.errno == 3
    return info.value.reason


# ---------------------------------------------------------------- classification


def test_every_protocol_command_is_classified() -> None:
    for name, spec in COMMANDS.items():
        if not spec.control:
            continue
        right = needed_right(name, {"name": "w"})
        if spec.read_only:
            assert right is Right.READ, name
        else:
            assert right in (Right.OPERATE, Right.CHANGE, Right.ADMIN), name
    assert needed_right("reloadconfig", {}) is Right.ADMIN
    assert needed_right("ipython", {}) is Right.ADMIN
    assert needed_right("add", {}) is needed_right("set", {}) is Right.CHANGE
    assert needed_right("no-such-command", {}) is Right.ADMIN
    # a named restart operates one watcher; the nameless one re-reads the config file
    assert needed_right("restart", {"name": "w"}) is Right.OPERATE
    assert needed_right("restart", {}) is Right.ADMIN
    assert {"quit", "rm", "stop", "signal", "kill", "incr", "decr"} <= OPERATE_COMMANDS


def test_unauthenticated_access_values() -> None:
    assert [parse_access(v) for v in ("read", " Operate ", "FULL")] == ["read", "operate", "full"]
    for bad in ("", "write", "yes", "all"):
        with pytest.raises(ValueError):
            parse_access(bad)


# ---------------------------------------------------------------- roles


def test_admins_may_do_anything() -> None:
    keyed = PeerIdentity("curve", key="rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")
    own = PeerIdentity("ipc", uid=1234)
    for who in (ROOT, keyed, IN_PROCESS):
        for command in ("reloadconfig", "quit", "ipython", "restart"):
            ask(who, command)
        ask(who, "add", name="x", cmd="true", options={"uid": 0, "hooks": {}})
        ask(who, "set", name="rootly", options={"cmd": "evil", "stdout_stream.filename": "/x"})
    # circusd's own uid is admin even when it is not root
    authorize(Policy(circusd_uid=1234, circusd_gid=1234), own, "reloadconfig", {}, WATCHERS.get)


@pytest.mark.parametrize("who", [STRANGER, UNKNOWN], ids=["other-uid", "unknown"])
def test_others_read_only_by_default(who: PeerIdentity) -> None:
    for command in ("list", "status", "stats", "dstats", "options", "get", "logs"):
        ask(who, command, name="rootly")
    for command in ("stop", "start", "quit", "rm", "signal", "incr", "reloadconfig"):
        reason = refused(who, command, name="rootly")
        assert f"{command!r} needs the" in reason
        assert who.describe() in reason
        assert "unauthenticated_access = read" in reason
    reason = refused(who, "add", name="x", cmd="true", options={"uid": "nobody"})
    assert "needs the change what runs right" in reason


def test_refusal_names_command_right_and_peer() -> None:
    reason = refused(STRANGER, "stop", name="rootly")
    assert reason == (
        "permission denied: 'stop' needs the operate right; uid 4242 on tcp 127.0.0.1:40000 "
        "is neither circusd's user nor its endpoint_owner and may read "
        "([circus] unauthenticated_access = read)"
    )
    assert "an unknown peer on tcp 10.0.0.9:40000" in refused(UNKNOWN, "stop", name="w")


def test_root_refused_on_tcp_is_told_what_to_do_instead() -> None:
    root_tcp = PeerIdentity("tcp", uid=0, address="127.0.0.1:40000")
    ask(root_tcp, "stop", name="rootly")
    reason = refused(root_tcp, "reloadconfig")
    assert "seen on tcp without CURVE" in reason
    assert reason.endswith(
        "; send it through an ipc:// control endpoint or with a CURVE key"
        " (or send circusd SIGHUP, which re-reads the config)"
    )
    assert "SIGHUP" in refused(root_tcp, "restart")
    reason = refused(root_tcp, "set", name="rootly", options={"numprocesses": 3})
    assert reason.endswith("; send it through an ipc:// control endpoint or with a CURVE key")
    assert "ipc://" not in refused(STRANGER, "stop", name="rootly")


def test_operate_lets_others_operate_but_not_change() -> None:
    for command in ("stop", "start", "restart", "signal", "kill", "incr", "decr", "rm", "quit"):
        ask(STRANGER, command, "operate", name="rootly")
    refused(STRANGER, "set", "operate", name="mine", options={"numprocesses": 2})
    refused(STRANGER, "add", "operate", name="x", cmd="true", options={"uid": "nobody"})
    refused(STRANGER, "reloadconfig", "operate")
    refused(STRANGER, "restart", "operate")


def test_full_is_upstream_anything_goes() -> None:
    ask(UNKNOWN, "set", "full", name="rootly", options={"cmd": "evil", "uid": 0})
    ask(STRANGER, "add", "full", name="x", cmd="evil", options={"hooks": {}, "gid": 0})
    ask(STRANGER, "reloadconfig", "full")


# ---------------------------------------------------------------- the owner


@needs_nobody
def test_owner_operates_everything() -> None:
    for command in ("stop", "start", "signal", "kill", "incr", "decr", "rm", "quit", "reload"):
        ask(OWNER_PEER, command, name="rootly")
    ask(OWNER_PEER, "restart", name="rootly")
    ask(OWNER_PEER, "stop")


@needs_nobody
def test_owner_changes_only_what_runs_as_itself() -> None:
    ask(OWNER_PEER, "set", name="mine", options={"cmd": "x", "args": "y", "env": {"A": "1"}})
    ask(OWNER_PEER, "set", name="mine_numeric", options={"numprocesses": 3, "working_dir": "/"})
    ask(OWNER_PEER, "set", name="mine", options={"uid": OWNER, "gid": "nogroup"})
    ask(OWNER_PEER, "set", name="mine", options={"flapping.attempts": 3, "copy_env": False})
    reason = refused(OWNER_PEER, "set", name="rootly", options={"cmd": "sh -c evil"})
    assert "runs as uid 0, gid 0" in reason and "uid 65534 (nobody) on ipc, pid 2" in reason
    # an admin's watcher running as the owner but in root's group is not the owner's
    refused(OWNER_PEER, "set", name="mine_but_root_group", options={"cmd": "x"})
    for options in ({"uid": 0}, {"uid": "root"}, {"gid": 0}, {"uid": "no-such-user-x"}):
        refused(OWNER_PEER, "set", name="mine", options=options)
    # a watcher that does not exist: the handler answers "not found"
    ask(OWNER_PEER, "set", name="ghost", options={"cmd": "x"})


@needs_nobody
def test_owner_adds_only_as_itself() -> None:
    ask(OWNER_PEER, "add", name="a", cmd="true", options={"uid": "nobody"})
    ask(OWNER_PEER, "add", name="a", cmd="true", options={"uid": OWNER, "gid": NOBODY.pw_gid})
    ask(OWNER_PEER, "add", name="a", cmd="true", start=True, options={"uid": str(OWNER)})
    assert "without a uid" in refused(OWNER_PEER, "add", name="a", cmd="true")
    for options in ({"uid": 0}, {"uid": "nobody", "gid": 0}, {"uid": "nobody", "gid": "root"}):
        reason = refused(OWNER_PEER, "add", name="a", cmd="true", options=options)
        assert "it would run as" in reason


@needs_nobody
@pytest.mark.parametrize(
    "option, value",
    [
        ("hooks", {"before_start": "os.system"}),
        ("hooks.after_start", "os.system"),
        ("hook_timeout", 1),
        ("stdout_stream", {"class": "FileStream", "filename": "/etc/cron.d/x"}),
        ("stdout_stream.filename", "/etc/cron.d/x"),
        ("stderr_stream.class", "FileStream"),
        ("rlimit_nofile", 1 << 20),
        ("rlimits", {"core": None}),
        ("copy_env", True),
        ("copy_path", True),
        ("use_sockets", True),
        ("on_demand", True),
        ("stdin_socket", "web"),
        ("virtualenv", "/root/venv"),
        ("env_file", "/etc/shadow"),
        ("my_custom_key", "x"),
    ],
)
def test_owner_never_sets_what_makes_circusd_act(option: str, value: Any) -> None:
    options = {"uid": "nobody", option: value}
    refused(OWNER_PEER, "add", name="a", cmd="true", options=options)
    reason = refused(OWNER_PEER, "set", name="mine", options={option: value})
    assert repr(option) in reason


@needs_nobody
def test_owner_never_reloads_the_config_or_restarts_the_arbiter() -> None:
    assert "'reloadconfig' needs the admin right" in refused(OWNER_PEER, "reloadconfig")
    assert "the endpoint_owner and may change what runs" in refused(OWNER_PEER, "restart")
    refused(OWNER_PEER, "ipython")
    # with full, the owner too may do anything
    ask(OWNER_PEER, "reloadconfig", "full")


def test_owner_list_is_what_the_docs_say() -> None:
    assert {"cmd", "args", "env", "working_dir", "numprocesses"} <= OWNER_OPTIONS
    assert not OWNER_OPTIONS & {"hooks", "copy_env", "use_sockets", "uid", "gid", "rlimits"}


# ---------------------------------------------------------------- ids a child runs as


@needs_nobody
def test_runs_as_resolves_like_the_process_layer() -> None:
    p = Policy(circusd_uid=0, circusd_gid=0)
    assert runs_as(None, None, p) == (0, 0)
    assert runs_as("nobody", None, p) == (NOBODY.pw_uid, NOBODY.pw_gid)
    assert runs_as(str(NOBODY.pw_uid), "0", p) == (NOBODY.pw_uid, 0)
    # a uid without a passwd entry keeps circusd's group
    assert runs_as(987654, None, p) == (987654, 0)
    assert runs_as("no-such-user-x", None, p) == (None, 0)
    assert runs_as("nobody", "no-such-group-x", p) == (NOBODY.pw_uid, None)
    assert runs_as(True, None, p)[0] is None


# ---------------------------------------------------------------- the gate


def test_check_skips_identification_for_reads() -> None:
    class Exploding:
        def identity(self) -> PeerIdentity:
            raise AssertionError("a read-only command must not identify its peer")

    check(object(), Exploding(), "list", {})  # type: ignore[arg-type]
    check(object(), None, "quit", {})  # type: ignore[arg-type]  # in-process


def test_refusals_are_logged_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    limited = _Limited(burst=3, interval=3600)
    with caplog.at_level(logging.WARNING, logger="circus.arbiter"):
        for i in range(10):
            limited.warning(f"refused {i}")
        assert [r.getMessage() for r in caplog.records] == ["refused 0", "refused 1", "refused 2"]
        limited.interval = 0
        limited.warning("refused again")
    assert caplog.records[-2].getMessage() == "7 more refused control requests were not logged"
    assert caplog.records[-1].getMessage() == "refused again"


# ---------------------------------------------------------------- peer identification


def test_parse_ipc_address() -> None:
    assert parse_ipc_address("localhost:65534:65534:42") == (65534, 65534, 42)
    for bad in (None, "", "127.0.0.1", "localhost:a:b:c", "host:1:2:3", "localhost:1:2"):
        assert parse_ipc_address(bad) is None


TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:15B3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1
   1: 0100007F:A21C 0100007F:15B3 01 00000000:00000000 00:00000000 00000000 65534        0 222 1
   2: 0100007F:15B3 0100007F:A21C 01 00000000:00000000 00:00000000 00000000     0        0 333 1
   3: 0100007F:A21D 0100007F:15B3 06 00000000:00000000 03:00000000 00000000     0        0 0 3
   4: 0100007F:A21E 0100007F:15B3 04 00000000:00000000 00:00000000 00000000  1000        0 0 3
"""


def test_find_tcp_owner_reads_the_client_row() -> None:
    # client 127.0.0.1:41500 -> server 127.0.0.1:5555
    assert find_tcp_owner(TABLE, "0100007F:A21C", "0100007F:15B3") == 65534
    # the server's own row is the other way round
    assert find_tcp_owner(TABLE, "0100007F:15B3", "0100007F:A21C") == 0
    # TIME_WAIT lists uid 0 for anybody; a closed socket (inode 0) is nobody's any more
    assert find_tcp_owner(TABLE, "0100007F:A21D", "0100007F:15B3") is None
    assert find_tcp_owner(TABLE, "0100007F:A21E", "0100007F:15B3") is None
    assert find_tcp_owner(TABLE, "0100007F:0001", "0100007F:15B3") is None


@pytest.fixture
def no_netlink(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a host where sock_diag cannot be used: /proc/net/tcp is read instead."""
    monkeypatch.setattr(_peers, "_diag_owner", lambda peer, local: _peers._UNAVAILABLE)


def test_tcp_owner_uid_only_for_loopback(tmp_path: Path, no_netlink: None) -> None:
    (tmp_path / "tcp").write_text(TABLE)
    peer, local = ("127.0.0.1", 41500), ("127.0.0.1", 5555)
    assert tcp_owner_uid(peer, local, proc=str(tmp_path)) == 65534
    assert tcp_owner_uid(("10.1.2.3", 41500), local, proc=str(tmp_path)) is None
    assert tcp_owner_uid(peer, local, proc=str(tmp_path / "none")) is None


@pytest.mark.parametrize("lookup", ["netlink", "proc"])
@pytest.mark.parametrize("family, host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_tcp_owner_uid_of_a_real_connection(
    family: int, host: str, lookup: str, request: pytest.FixtureRequest
) -> None:
    if lookup == "proc":
        request.getfixturevalue("no_netlink")
    try:
        server = socket.socket(family)
        server.bind((host, 0))
    except OSError:
        pytest.skip(f"no {host}")
    with server:
        server.listen()
        with socket.create_connection(server.getsockname()[:2]):
            conn, _ = server.accept()
            with conn:
                peer, local = conn.getpeername()[:2], conn.getsockname()[:2]
                assert tcp_owner_uid(peer, local) == os.geteuid()
        # the client closed: its row goes to TIME_WAIT or loses its inode
        assert tcp_owner_uid(peer, local) is None


def _one_message(endpoint: str) -> PeerIdentity:
    async def main() -> PeerIdentity:
        from circus.arbiter._controller import _peer_args

        ctx = zmq.asyncio.Context()
        router = ctx.socket(zmq.ROUTER)
        dealer = ctx.socket(zmq.DEALER)
        try:
            router.bind(endpoint)
            bound = router.getsockopt(zmq.LAST_ENDPOINT).decode()
            dealer.connect(bound)
            await dealer.send(b"{}")
            frames = await asyncio.wait_for(router.recv_multipart(copy=False), 10)
            return MessagePeer(frames[-1], *_peer_args(router, bound)).identity()
        finally:
            dealer.close(0)
            router.close(0)
            ctx.term()

    return asyncio.run(main())


def test_message_peer_on_ipc(tmp_path: Path) -> None:
    who = _one_message(f"ipc://{tmp_path}/ctl")
    assert (who.via, who.uid, who.gid, who.pid) == ("ipc", os.geteuid(), os.getegid(), os.getpid())


def test_message_peer_on_loopback_tcp() -> None:
    who = _one_message("tcp://127.0.0.1:0")
    assert (who.via, who.uid) == ("tcp", os.geteuid())
    assert who.address is not None and who.address.startswith("127.0.0.1:")


class FakeFrame:
    """A received frame's metadata, as ``zmq.Frame.get`` gives it."""

    def __init__(self, **props: Any) -> None:
        self.props = props

    def get(self, name: Any) -> Any:
        key = "SRCFD" if name == zmq.SRCFD else name
        if key not in self.props:
            raise zmq.ZMQError(22)
        return self.props[key]


def test_ipc_identity_trusts_what_libzmq_recorded_at_accept() -> None:
    me = (os.geteuid(), os.getegid(), os.getpid())
    left, right = socket.socketpair()
    with left, right:
        fd = left.fileno()
        recorded = "localhost:{}:{}:{}".format(*me)
        for frame in (
            FakeFrame(**{"Peer-Address": recorded}),  # the connection is gone
            FakeFrame(**{"Peer-Address": recorded, "SRCFD": fd}),  # both agree
            FakeFrame(SRCFD=fd),  # a libzmq without Peer-Address
        ):
            who = MessagePeer(frame, "ipc", False, None).identity()
            assert (who.uid, who.gid, who.pid) == me
        # the fd now belongs to another connection (another uid): nobody is believed
        other = FakeFrame(**{"Peer-Address": "localhost:65534:65534:7", "SRCFD": fd})
        assert MessagePeer(other, "ipc", False, None).identity().uid is None
    assert MessagePeer(FakeFrame(), "ipc", False, None).identity() == PeerIdentity("ipc")


def test_a_user_id_counts_only_on_a_curve_socket() -> None:
    # without ZAP, a client can send any metadata property itself
    frame = FakeFrame(**{"User-Id": "some-key"})
    assert MessagePeer(frame, "tcp", True, None).identity().key == "some-key"
    spoofed = MessagePeer(frame, "tcp", False, None).identity()
    assert spoofed.key is None and spoofed.uid is None
    # a CURVE socket without ZAP's User-Id falls back to the kernel
    who = MessagePeer(FakeFrame(), "ipc", True, None).identity()
    assert who.key is None and who.uid is None


def test_tcp_identity_checks_the_fd_is_still_that_connection() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            conn, _ = server.accept()
            with conn:
                fd = conn.fileno()
                good = FakeFrame(SRCFD=fd, **{"Peer-Address": "127.0.0.1"})
                assert MessagePeer(good, "tcp", False, port).identity().uid == os.geteuid()
                # the fd is a connection to another port: reused since the message came
                assert MessagePeer(good, "tcp", False, port + 1).identity().uid is None
                moved = FakeFrame(SRCFD=fd, **{"Peer-Address": "127.0.0.2"})
                assert MessagePeer(moved, "tcp", False, port).identity().uid is None
    closed = FakeFrame(SRCFD=fd)
    assert MessagePeer(closed, "tcp", False, port).identity().uid is None

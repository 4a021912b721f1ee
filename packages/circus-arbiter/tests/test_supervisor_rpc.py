"""Supervisor's XML-RPC control API served by an in-process arbiter, driven by the standard
library's XML-RPC client over the unix socket (and loopback tcp): names, states, faults,
credentials, the control channel's rights, bounds."""

from __future__ import annotations

import asyncio
import base64
import http.client
import os
import shlex
import socket
import subprocess
import sys
import textwrap
import xmlrpc.client
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from circus.arbiter import Arbiter
from circus.process.testing import async_wait_until

PY = sys.executable


class Section:
    """A loaded section as the supervisord.conf loader hands it over."""

    def __init__(self, name: str, **options: str) -> None:
        self.name = name
        self.filename = "/etc/supervisord.conf"
        self.lineno = 7
        self.options = options

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)

    def error(self, key: str | None, expected: str) -> Exception:
        return ValueError(f"{self.filename}:{self.lineno}: [{self.name}] {key}: {expected}")

    def warn(self, key: str | None, message: str) -> None:
        pass


def proc(group: str, name: str, **extra: Any) -> SimpleNamespace:
    namespec = name if group == name else f"{group}:{name}"
    return SimpleNamespace(
        namespec=namespec, group=group, name=name, watcher=namespec, startsecs=0.3, **extra
    )


def supervisor(processes: list[Any], **sections: Any) -> SimpleNamespace:
    return SimpleNamespace(
        processes=tuple(processes),
        sections=sections,
        supervisord=SimpleNamespace(identifier="supervisor", logfile=None),
    )


def watcher(name: str, code: str = "import time; time.sleep(300)", **options: Any) -> dict:
    return {
        "name": name,
        "cmd": PY,
        "args": shlex.join(["-u", "-c", code]),
        "graceful_timeout": 5,
        **options,
    }


class UnixTransport(xmlrpc.client.Transport):
    """HTTP over a unix socket, as supervisorctl speaks it."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        if self._connection[0] == host:
            return self._connection[1]
        _, self._extra_headers, _ = self.get_host_info(host)  # basic auth from the URL
        path = self.path

        class Conn(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(30)
                self.sock.connect(path)

        conn = Conn("localhost")
        self._connection = host, conn
        return conn


PROXIES: list[Any] = []


def client(path: str, user: str | None = None, password: str | None = None) -> Any:
    creds = f"{user}:{password}@" if user is not None else ""
    proxy = xmlrpc.client.ServerProxy(f"http://{creds}localhost/RPC2", UnixTransport(path))
    PROXIES.append(proxy)
    return proxy


def tcp_client(url: str) -> Any:
    proxy = xmlrpc.client.ServerProxy(url)
    PROXIES.append(proxy)
    return proxy


def run(tmp_path: Path, watchers: list[dict], sup: Any, body: Any) -> Any:
    async def main() -> Any:
        arbiter = Arbiter(
            watchers,
            endpoint=f"ipc://{tmp_path}/ctl",
            pubsub_endpoint=f"ipc://{tmp_path}/pub",
        )
        arbiter.loaded_config = SimpleNamespace(supervisor=sup)
        await arbiter.start_async()
        try:
            return await body(arbiter)
        finally:
            while PROXIES:
                PROXIES.pop()("close")()
            await arbiter.stop()

    return asyncio.run(main())


async def call(proxy: Any, method: str, *args: Any) -> Any:
    """One blocking XML-RPC call in a thread (the server runs on this loop)."""
    target = proxy
    for part in method.split("."):
        target = getattr(target, part)
    return await asyncio.to_thread(target, *args)


async def until(predicate: Any, message: str = "") -> None:
    await async_wait_until(predicate, 30.0, message)


def unix_section(tmp_path: Path, **extra: str) -> Section:
    return Section("unix_http_server", file=str(tmp_path / "supervisor.sock"), **extra)


def test_status_start_stop_and_faults(tmp_path: Path) -> None:
    sock = str(tmp_path / "supervisor.sock")
    procs = [proc("web", "web"), proc("worker", "worker_00"), proc("worker", "worker_01")]
    watchers = [watcher("web"), watcher("worker:worker_00"), watcher("worker:worker_01")]
    sup = supervisor(procs, unix_http_server=unix_section(tmp_path))

    async def body(arbiter: Arbiter) -> None:
        rpc = client(sock)
        assert await call(rpc, "supervisor.getAPIVersion") == "3.0"
        assert await call(rpc, "supervisor.getVersion") == "3.0"
        assert await call(rpc, "supervisor.getState") == {"statecode": 1, "statename": "RUNNING"}
        assert await call(rpc, "supervisor.getPID") == os.getpid()

        async def states() -> dict[str, str]:
            infos = await call(rpc, "supervisor.getAllProcessInfo")
            return {f"{i['group']}:{i['name']}": i["statename"] for i in infos}

        await until(
            lambda: _all(states(), "RUNNING"),
        )
        info = await call(rpc, "supervisor.getProcessInfo", "worker:worker_01")
        assert info["pid"] == arbiter.get_watcher("worker:worker_01").pids[0]
        assert info["description"].startswith(f"pid {info['pid']}, uptime 0:00:")
        assert [i["name"] for i in await call(rpc, "supervisor.getAllProcessInfo")] == [
            "web",
            "worker_00",
            "worker_01",
        ]

        assert await call(rpc, "supervisor.stopProcess", "web") is True
        info = await call(rpc, "supervisor.getProcessInfo", "web")
        assert info["statename"] == "STOPPED" and info["pid"] == 0
        assert arbiter.get_watcher("web").pids == []
        with pytest.raises(xmlrpc.client.Fault) as fault:
            await call(rpc, "supervisor.stopProcess", "web")
        assert fault.value.faultCode == 70  # NOT_RUNNING

        assert await call(rpc, "supervisor.startProcess", "web") is True
        assert (await call(rpc, "supervisor.getProcessInfo", "web"))["statename"] == "RUNNING"
        with pytest.raises(xmlrpc.client.Fault) as fault:
            await call(rpc, "supervisor.startProcess", "web")
        assert fault.value.faultCode == 60  # ALREADY_STARTED

        for bad in ("nope", "worker", "worker:nope", "web:web_00"):
            with pytest.raises(xmlrpc.client.Fault) as fault:
                await call(rpc, "supervisor.getProcessInfo", bad)
            assert fault.value.faultCode == 10, bad  # BAD_NAME
        with pytest.raises(xmlrpc.client.Fault) as fault:
            await call(rpc, "supervisor.nosuchmethod")
        assert fault.value.faultCode == 1  # UNKNOWN_METHOD

        stopped = await call(rpc, "supervisor.stopProcessGroup", "worker")
        assert sorted((r["name"], r["status"]) for r in stopped) == [
            ("worker_00", 80),
            ("worker_01", 80),
        ]
        assert await states() == {
            "web:web": "RUNNING",
            "worker:worker_00": "STOPPED",
            "worker:worker_01": "STOPPED",
        }
        started = await call(rpc, "supervisor.startProcess", "worker:*")
        assert [r["status"] for r in started] == [80, 80]
        assert await _all(states(), "RUNNING")

        with pytest.raises(xmlrpc.client.Fault) as fault:
            await call(rpc, "supervisor.signalProcess", "web", "NOTASIGNAL")
        assert fault.value.faultCode == 11  # BAD_SIGNAL
        pid = arbiter.get_watcher("web").pids[0]
        assert await call(rpc, "supervisor.signalProcess", "web", "KILL") is True
        await until(lambda: pid not in arbiter.get_watcher("web").pids)

        methods = await call(rpc, "system.listMethods")
        assert "supervisor.startProcess" in methods and "system.multicall" in methods
        multi = await call(
            rpc,
            "system.multicall",
            [
                {"methodName": "supervisor.getAPIVersion", "params": []},
                {"methodName": "supervisor.getProcessInfo", "params": ["nope"]},
            ],
        )
        assert multi[0] == ["3.0"]
        assert multi[1]["faultCode"] == 10

    run(tmp_path, watchers, sup, body)


async def _all(states: Any, wanted: str) -> bool:
    values = await states
    return bool(values) and all(v == wanted for v in values.values())


def test_exit_and_backoff_states(tmp_path: Path) -> None:
    sock = str(tmp_path / "supervisor.sock")
    flag = tmp_path / "go"
    # exits 3 a while after it started (RUNNING first), then stays down (respawn never)
    code = (
        f"import os,time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.02)\n"
        "raise SystemExit(3)"
    )
    procs = [proc("job", "job", exitcodes=(0, 2))]
    watchers = [watcher("job", code, respawn=False)]
    sup = supervisor(procs, unix_http_server=unix_section(tmp_path))

    async def body(arbiter: Arbiter) -> None:
        rpc = client(sock)
        await until(
            lambda: _state(rpc, "job", "RUNNING"),
        )
        flag.write_text("")
        await until(lambda: _state(rpc, "job", "EXITED"))
        info = await call(rpc, "supervisor.getProcessInfo", "job")
        assert info["exitstatus"] == 3 and info["pid"] == 0
        flag.unlink()
        assert await call(rpc, "supervisor.startProcess", "job") is True
        assert (await call(rpc, "supervisor.getProcessInfo", "job"))["statename"] == "RUNNING"

    run(tmp_path, watchers, sup, body)


async def _state(rpc: Any, name: str, wanted: str) -> bool:
    return (await call(rpc, "supervisor.getProcessInfo", name))["statename"] == wanted


def test_a_command_that_cannot_run(tmp_path: Path) -> None:
    sock = str(tmp_path / "supervisor.sock")
    plain = tmp_path / "plain.txt"
    plain.write_text("not a program")
    procs = [proc("ghost", "ghost"), proc("text", "text")]
    watchers = [
        {"name": "ghost", "cmd": str(tmp_path / "missing"), "autostart": False},
        {"name": "text", "cmd": str(plain), "autostart": False},
    ]
    sup = supervisor(procs, unix_http_server=unix_section(tmp_path))

    async def body(arbiter: Arbiter) -> None:
        rpc = client(sock)
        with pytest.raises(xmlrpc.client.Fault) as fault:
            await call(rpc, "supervisor.startProcess", "ghost")
        assert fault.value.faultCode == 20 and "can't find command" in fault.value.faultString
        with pytest.raises(xmlrpc.client.Fault) as fault:
            await call(rpc, "supervisor.startProcess", "text")
        assert fault.value.faultCode == 21  # NOT_EXECUTABLE
        info = await call(rpc, "supervisor.getProcessInfo", "ghost")
        assert (info["statename"], info["description"]) == ("STOPPED", "Not started")

    run(tmp_path, watchers, sup, body)


def test_logs_read_and_tail(tmp_path: Path) -> None:
    sock = str(tmp_path / "supervisor.sock")
    code = (
        "import sys,time\nfor i in range(50): print('line', i)\n"
        "sys.stderr.write('oops\\n')\ntime.sleep(300)"
    )
    sup = supervisor([proc("talk", "talk")], unix_http_server=unix_section(tmp_path))

    async def body(arbiter: Arbiter) -> None:
        rpc = client(sock)
        await until(
            lambda: _has(rpc, "supervisor.readProcessStdoutLog", "line 49"),
        )
        whole = await call(rpc, "supervisor.readProcessStdoutLog", "talk", 0, 0)
        assert whole.startswith("line 0\n") and whole.endswith("line 49\n")
        assert await call(rpc, "supervisor.readProcessStdoutLog", "talk", -8, 0) == "line 49\n"
        assert await call(rpc, "supervisor.readProcessStdoutLog", "talk", 0, 7) == "line 0\n"
        assert await call(rpc, "supervisor.readProcessStderrLog", "talk", 0, 0) == "oops\n"
        text, offset, overflow = await call(rpc, "supervisor.tailProcessStdoutLog", "talk", 0, 8)
        assert (text, offset, overflow) == ("line 49\n", len(whole), True)
        assert await call(rpc, "supervisor.tailProcessStdoutLog", "talk", offset, 100) == [
            "",
            offset,
            False,
        ]
        with pytest.raises(xmlrpc.client.Fault) as fault:
            await call(rpc, "supervisor.readProcessStdoutLog", "talk", -5, 3)
        assert fault.value.faultCode == 3  # BAD_ARGUMENTS
        assert await call(rpc, "supervisor.clearProcessLogs", "talk") is True
        assert await call(rpc, "supervisor.readProcessStdoutLog", "talk", 0, 0) == ""

    run(tmp_path, [watcher("talk", code)], sup, body)


async def _has(rpc: Any, method: str, text: str) -> bool:
    return text in await call(rpc, method, "talk", 0, 0)


def test_credentials_are_checked(tmp_path: Path) -> None:
    sock = str(tmp_path / "supervisor.sock")
    sup = supervisor(
        [proc("web", "web")],
        unix_http_server=unix_section(tmp_path, username="admin", password="s3cret"),
    )

    async def body(arbiter: Arbiter) -> None:
        for rpc in (client(sock), client(sock, "admin", "wrong"), client(sock, "root", "s3cret")):
            with pytest.raises(xmlrpc.client.ProtocolError) as refused:
                await call(rpc, "supervisor.getAPIVersion")
            assert refused.value.errcode == 401
        assert await call(client(sock, "admin", "s3cret"), "supervisor.getAPIVersion") == "3.0"

    run(tmp_path, [watcher("web")], sup, body)


def test_sha_password_and_inet(tmp_path: Path) -> None:
    import hashlib

    digest = hashlib.sha1(b"pw").hexdigest()
    sup = supervisor(
        [proc("web", "web")],
        inet_http_server=Section(
            "inet_http_server", port="127.0.0.1:0", username="u", password="{SHA}" + digest
        ),
    )

    async def body(arbiter: Arbiter) -> None:
        port = arbiter._supervisor.servers[0].port
        good = tcp_client(f"http://u:pw@127.0.0.1:{port}/RPC2")
        bad = tcp_client(f"http://u:{digest}@127.0.0.1:{port}/RPC2")
        assert await call(good, "supervisor.getIdentification") == "supervisor"
        with pytest.raises(xmlrpc.client.ProtocolError):
            await call(bad, "supervisor.getIdentification")
        # root on loopback tcp may operate (as on the control channel's tcp endpoint)
        await until(lambda: _state(good, "web", "RUNNING"))
        assert await call(good, "supervisor.stopProcess", "web") is True

    run(tmp_path, [watcher("web")], sup, body)


NOBODY_CLIENT = textwrap.dedent(
    """
    import http.client, json, socket, sys, xmlrpc.client
    class T(xmlrpc.client.Transport):
        def make_connection(self, host):
            class C(http.client.HTTPConnection):
                def connect(self):
                    self.sock = socket.socket(socket.AF_UNIX)
                    self.sock.connect(sys.argv[1])
            return C("localhost")
    rpc = xmlrpc.client.ServerProxy("http://localhost/RPC2", T())
    out = {}
    for name, call in [
        ("info", lambda: rpc.supervisor.getProcessInfo("web")["statename"]),
        ("stop", lambda: rpc.supervisor.stopProcess("web")),
        ("signal", lambda: rpc.supervisor.signalProcess("web", "KILL")),
        ("log", lambda: rpc.supervisor.readProcessStdoutLog("web", 0, 0)),
        ("shutdown", lambda: rpc.supervisor.shutdown()),
    ]:
        try:
            out[name] = call()
        except xmlrpc.client.Fault as exc:
            out[name] = [exc.faultCode, exc.faultString]
    tail = socket.socket(socket.AF_UNIX)
    tail.connect(sys.argv[1])
    tail.sendall(b"GET /logtail/web HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    out["tail"] = tail.recv(100).decode().split("\\r\\n")[0]
    tail.close()
    print(json.dumps(out))
    """
)


SYSTEM_PY = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture
def open_dir() -> Any:
    """A temp dir ``nobody`` can enter (pytest's own sits under a 0700 directory)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="suprpc-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as nobody")
@pytest.mark.skipif(not os.access(SYSTEM_PY, os.X_OK), reason=f"{SYSTEM_PY} missing")
def test_other_user_may_only_read(tmp_path: Path, open_dir: Path) -> None:
    sock = str(open_dir / "supervisor.sock")
    script = open_dir / "client.py"
    script.write_text(NOBODY_CLIENT)
    script.chmod(0o644)
    section = Section("unix_http_server", file=sock, chmod="0777")
    sup = supervisor([proc("web", "web")], unix_http_server=section)

    async def body(arbiter: Arbiter) -> dict:
        rpc = client(sock)
        await until(lambda: _state(rpc, "web", "RUNNING"))
        pid = arbiter.get_watcher("web").pids[0]
        done = await asyncio.to_thread(
            subprocess.run,
            [SYSTEM_PY, "-I", str(script), sock],
            user=65534,
            group=65534,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert arbiter.get_watcher("web").pids == [pid]  # still there, not signalled
        assert not arbiter.stopping
        import json

        return json.loads(done.stdout)

    out = run(tmp_path, [watcher("web")], sup, body)
    assert out["info"] == "RUNNING"
    for name in ("stop", "signal", "log", "shutdown"):
        code, text = out[name]
        assert code == 30 and "permission denied" in text, (name, text)
    assert out["tail"] == "HTTP/1.1 403 Forbidden"


def test_bounds_and_garbage(tmp_path: Path) -> None:
    sock = str(tmp_path / "supervisor.sock")
    sup = supervisor([proc("web", "web")], unix_http_server=unix_section(tmp_path))

    def raw(data: bytes) -> bytes:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(30)
        s.connect(sock)
        try:
            s.sendall(data)
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            s.close()

    async def body(arbiter: Arbiter) -> None:
        rpc = client(sock)
        # a client that sends half a request and stalls holds nothing up
        stalled = socket.socket(socket.AF_UNIX)
        stalled.connect(sock)
        stalled.sendall(b"POST /RPC2 HTTP/1.1\r\nContent-Length: 100\r\n\r\n<?xml")
        try:
            assert await call(rpc, "supervisor.getAPIVersion") == "3.0"
        finally:
            stalled.close()
        big = await asyncio.to_thread(
            raw, b"POST /RPC2 HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"
        )
        assert big.startswith(b"HTTP/1.1 413 ")
        head = await asyncio.to_thread(raw, b"POST /RPC2 HTTP/1.1\r\nX: " + b"a" * 70000)
        assert head.startswith(b"HTTP/1.1 431 ")
        junk = b"<methodCall><methodName>x</methodName><params><param><value><i4>zz"
        answer = await asyncio.to_thread(
            raw,
            b"POST /RPC2 HTTP/1.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (len(junk), junk),
        )
        assert answer.startswith(b"HTTP/1.1 200 ") and b"faultCode" in answer
        bomb = (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
            + b"".join(
                b'<!ENTITY %s "%s">' % (b"a" * (i + 2), (b"&" + b"a" * (i + 1) + b";") * 10)
                for i in range(8)
            )
            + b"]><methodCall><methodName>&aaaaaaaaa;</methodName></methodCall>"
        )
        answer = await asyncio.to_thread(
            raw,
            b"POST /RPC2 HTTP/1.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (len(bomb), bomb),
        )
        assert answer.startswith(b"HTTP/1.1 200 ") and b"faultCode" in answer
        noauth = base64.b64encode(b"x:y").decode()
        assert noauth  # no credentials configured: any Authorization header is ignored
        assert await call(rpc, "supervisor.getAPIVersion") == "3.0"

    run(tmp_path, [watcher("web")], sup, body)


def test_stale_socket_replaced_live_one_refused(tmp_path: Path) -> None:
    sock = tmp_path / "supervisor.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()  # a file left by a daemon that died
    sup = supervisor([proc("web", "web")], unix_http_server=unix_section(tmp_path))

    async def body(arbiter: Arbiter) -> None:
        assert oct(os.stat(sock).st_mode & 0o777) == "0o700"
        assert await call(client(str(sock)), "supervisor.getAPIVersion") == "3.0"

        second = Arbiter(
            [], endpoint=f"ipc://{tmp_path}/ctl2", pubsub_endpoint=f"ipc://{tmp_path}/pub2"
        )
        second.loaded_config = SimpleNamespace(
            supervisor=supervisor([], unix_http_server=unix_section(tmp_path))
        )
        with pytest.raises(OSError, match="already listening"):
            await second.start_async()
        assert await call(client(str(sock)), "supervisor.getAPIVersion") == "3.0"

    run(tmp_path, [watcher("web")], sup, body)
    assert not sock.exists()


def test_section_values_are_checked() -> None:
    from circus.arbiter.supervisor._rpc_config import (
        parse_inet_http_server,
        parse_unix_http_server,
    )

    for options, key in (
        ({}, "file"),
        ({"file": "/tmp/x.sock", "chmod": "99x"}, "chmod"),
        ({"file": "/tmp/x.sock", "chown": "no-such-user-here"}, "chown"),
        ({"file": "/tmp/x.sock", "password": "p"}, "password"),
        ({"file": "/tmp/" + "x" * 200}, "file"),
    ):
        with pytest.raises(ValueError, match=rf"\] {key}:"):
            parse_unix_http_server(Section("unix_http_server", **options))
    for port in ("", "host:abc", "127.0.0.1:70000"):
        with pytest.raises(ValueError, match=r"\] port:"):
            parse_inet_http_server(Section("inet_http_server", port=port))
    spec = parse_unix_http_server(
        Section("unix_http_server", file="/tmp/x.sock", chmod="0770", chown="nobody:65534")
    )
    assert (spec.chmod, spec.chown) == (0o770, (65534, 65534))
    assert parse_inet_http_server(Section("inet_http_server", port="*:9001")).host == ""
    assert parse_inet_http_server(Section("inet_http_server", port="9001")).port == 9001

"""Supervisor's XML-RPC server of a root circusd, attacked by a local user who is not root.

``[inet_http_server]`` on loopback is reachable by every local user. Such a user may read
(``getAllProcessInfo``...), never act; and it must not be able to keep root out of the API
by holding the connection slots, nor to make circusd build answers of unbounded size.
Parsing bombs (entity expansion) are answered with a fault by the parser's own limits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from circus.process.testing import wait_until

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a root circusd, a nobody client)"),
]

NOBODY = 65534
CIRCUSD = str(Path(sys.executable).with_name("circusd"))
SLEEPER = "/bin/sleep 300"
PROCESSES = 80

# Run as nobody by /usr/bin/python3: open N connections to the port and hold them (half a
# request head each), say how many were accepted, wait until stdin closes.
HOLDER = r"""
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /RPC2 HTTP/1.1\r\nHost: x\r\n")
    held.append(s)
print(len(held), flush=True)
sys.stdin.read()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    def __init__(self, folder: Path, programs: str, extra: str = "", circus: str = "") -> None:
        self.port = _free_port()
        self.conf = folder / "supervisord.conf"
        self.conf.write_text(
            f"[circus]\nendpoint = ipc://{folder}/ctl\npubsub_endpoint = ipc://{folder}/pub\n"
            f"{circus}\n{extra}"
            f"[supervisord]\nnodaemon=true\nlogfile={folder}/supervisord.log\n\n"
            f"[inet_http_server]\nport=127.0.0.1:{self.port}\n\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
            + programs
        )
        self.out = open(folder / "circusd.out", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [CIRCUSD, str(self.conf)], stdout=self.out, stderr=subprocess.STDOUT, cwd=folder
        )
        self.folder = folder

    def state(self, timeout: float = 30.0) -> str:
        """``supervisor.getState()``'s statename, on a connection of its own."""

        class Timed(xmlrpc.client.Transport):
            def make_connection(self, host):  # type: ignore[no-untyped-def]
                conn = super().make_connection(host)
                conn.timeout = timeout
                return conn

        url = f"http://127.0.0.1:{self.port}/RPC2"
        with xmlrpc.client.ServerProxy(url, Timed()) as proxy:
            return str(proxy.supervisor.getState()["statename"])

    def answers(self) -> bool:
        assert self.proc.poll() is None, (self.folder / "circusd.out").read_text()
        try:
            return self.state(5) == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def stop(self) -> None:
        tree: set[int] = set()
        try:
            tree = {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.out.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(
        tmp_path,
        f"[program:sleep]\ncommand={SLEEPER}\nnumprocs={PROCESSES}\n"
        "process_name=%(program_name)s_%(process_num)02d\nstartsecs=0\n",
    )
    try:
        wait_until(d.answers, 30, "the XML-RPC server to answer")
        yield d
    finally:
        d.stop()


def _system_python() -> str:
    py = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.access(py, os.X_OK):
        py = "/usr/bin/python3"
    if not os.access(py, os.X_OK):
        pytest.skip("no system python for the nobody client")
    return py


def test_a_local_user_cannot_lock_root_out_by_holding_every_connection(daemon: Daemon) -> None:
    with subprocess.Popen(
        [_system_python(), "-c", HOLDER, str(daemon.port), "80"],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"80"
        failures = 0
        for _ in range(3):
            try:
                assert daemon.state(10) == "RUNNING"
            except (OSError, xmlrpc.client.Error):
                failures += 1
        assert failures == 0, (
            f"root's XML-RPC calls failed {failures}/3 times while uid {NOBODY} holds 80 "
            "idle connections (each kept up to IDLE_TIMEOUT, renewable forever)"
        )
        holder.kill()


def test_multicall_answer_is_bounded(daemon: Daemon) -> None:
    calls = [{"methodName": "supervisor.getAllProcessInfo", "params": []}] * 256
    body = xmlrpc.client.dumps((calls,), "system.multicall").encode()
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=60) as sock:
        sock.sendall(
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        started = time.monotonic()
        size, tail = 0, b""
        while chunk := sock.recv(1 << 20):
            size += len(chunk)
            tail = (tail + chunk)[-4096:]
        took = time.monotonic() - started
    ratio = size / len(body)
    print(f"multicall: {len(body)} bytes asked {size} bytes ({ratio:.0f}x) in {took:.2f} s")
    assert size < 16 * 1024 * 1024, f"a {len(body)} byte request made a {size} byte answer"
    assert b"process entries in one request" in tail, tail[-500:]


def _handle(body: bytes) -> tuple[bytes, float]:
    from circus.arbiter._peers import PeerIdentity
    from circus.arbiter.supervisor._rpc import RpcInterface

    rpc = RpcInterface(None, None)  # type: ignore[arg-type]  # the parse fails first
    started = time.monotonic()
    answer = asyncio.run(rpc.handle(body, PeerIdentity("tcp", uid=NOBODY)))
    return answer, time.monotonic() - started


def test_billion_laughs_is_a_fault() -> None:
    levels = ['<!ENTITY l0 "lollollollollollollollollollol">']
    for n in range(1, 10):
        refs = f"&l{n - 1};" * 10
        levels.append(f'<!ENTITY l{n} "{refs}">')
    body = (
        f'<?xml version="1.0"?><!DOCTYPE m [{"".join(levels)}]>'
        "<methodCall><methodName>&l9;</methodName><params/></methodCall>"
    ).encode()
    answer, _took = _handle(body)
    assert b"faultCode" in answer and b"cannot parse" in answer, answer[:300]


def test_quadratic_blowup_within_the_body_limit_is_a_fault() -> None:
    from circus.arbiter.supervisor._http import MAX_BODY

    entity = "x" * 40_000
    refs = "&e;" * ((MAX_BODY - 41_000) // 3)
    body = (
        f'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY e "{entity}">]>'
        f"<methodCall><methodName>m</methodName><params><param><value><string>{refs}"
        "</string></value></param></params></methodCall>"
    ).encode()
    assert len(body) <= MAX_BODY
    answer, took = _handle(body)
    print(f"quadratic blowup: {len(body)} bytes, answered in {took:.2f} s")
    assert b"faultCode" in answer, answer[:300]


# Run as nobody: every call that reads output or acts, and the tail -f stream.
READER = r"""
import http.client, json, sys, xmlrpc.client
port = int(sys.argv[1])
proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/RPC2")
out = {}
calls = {
    "read": ("readProcessStdoutLog", "sleep:sleep_00", 0, 100),
    "tail": ("tailProcessStdoutLog", "sleep:sleep_00", 0, 100),
    "mainlog": ("readLog", 0, 100),
    "stop": ("stopProcess", "sleep:sleep_00"),
    "signal": ("signalProcess", "sleep:sleep_00", "KILL"),
    "clear": ("clearProcessLogs", "sleep:sleep_00"),
    "shutdown": ("shutdown",),
}
for key, (method, *args) in calls.items():
    try:
        getattr(proxy.supervisor, method)(*args)
        out[key] = "allowed"
    except xmlrpc.client.Fault as fault:
        out[key] = fault.faultString
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
conn.request("GET", "/logtail/sleep:sleep_00")
out["logtail"] = conn.getresponse().status
print(json.dumps(out))
"""


def test_a_local_user_may_read_states_but_not_output_nor_act(daemon: Daemon) -> None:
    import json

    pids = {p.pid for p in psutil.Process(daemon.proc.pid).children()}
    done = subprocess.run(
        [_system_python(), "-c", READER, str(daemon.port)],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        capture_output=True,
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
        timeout=90,
    )
    assert done.returncode == 0, done.stderr.decode()[-500:]
    out = json.loads(done.stdout)
    logtail = out.pop("logtail")
    assert logtail != 200, out
    for key, answer in out.items():
        assert answer != "allowed" and "uid 65534" in answer, (key, answer)
    assert daemon.state() == "RUNNING"
    assert pids <= {p.pid for p in psutil.Process(daemon.proc.pid).children()}


def test_the_unix_socket_is_opened_up_never_through_a_link(tmp_path: Path) -> None:
    """The mode and owner of ``[unix_http_server]`` are given to the socket before it is
    moved into place: a link put at its name (the socket's dir writable by another user)
    is never followed (refused, or replaced itself when taking a file of ours over), its
    target left as it was; the real socket gets them."""
    from circus.arbiter._bindaside import bind_aside

    target = tmp_path / "shadow"
    target.write_text("secret\n")
    target.chmod(0o600)
    link = tmp_path / "supervisor.sock"
    link.symlink_to(target)
    dir_fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        for replace in (False, True):
            with socket.socket(socket.AF_UNIX) as sock:
                if replace:
                    bind_aside(sock, dir_fd, link.name, str(link), mode=0o770,
                               owner=(NOBODY, NOBODY), replace=True)  # fmt: skip
                else:
                    with pytest.raises(FileExistsError, match="not replacing it"):
                        bind_aside(sock, dir_fd, link.name, str(link), mode=0o777,
                                   owner=(NOBODY, NOBODY))  # fmt: skip
            info = target.stat()
            assert (info.st_mode & 0o777, info.st_uid) == (0o600, 0)
        info = link.lstat()
        assert stat.S_ISSOCK(info.st_mode)
        assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o770, NOBODY, NOBODY)
        assert sorted(os.listdir(tmp_path)) == ["shadow", "supervisor.sock"]
    finally:
        os.close(dir_fd)


# Run as nobody: find the event-listener socket in /proc/net/unix (abstract names are listed
# for everyone) and connect to it N times.
KNOCKER = r"""
import socket, sys
names = [line.split()[-1] for line in open("/proc/net/unix") if "@circus-listeners-" in line]
name = names[0][1:]
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_UNIX)
    s.connect("\0" + name)
    s.recv(1)  # closed by circusd
    s.close()
print(name)
"""


def test_strangers_on_the_listener_socket_cannot_flood_the_log(tmp_path: Path) -> None:
    code = "import sys,time; sys.stdout.write('READY\\\\n'); sys.stdout.flush(); time.sleep(300)"
    listener = f'{sys.executable} -c "{code}"'
    d = Daemon(tmp_path, f"[eventlistener:ears]\ncommand={listener}\nevents=PROCESS_STATE\n")
    try:
        wait_until(d.answers, 30, "the XML-RPC server to answer")
        done = subprocess.run(
            [_system_python(), "-c", KNOCKER, "300"],
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            capture_output=True,
            cwd="/",
            env={"PATH": "/usr/bin:/bin"},
            timeout=90,
        )
        assert done.returncode == 0, done.stderr.decode()[-500:]
        log = (tmp_path / "supervisord.log").read_text(errors="replace")
        lines = log.count("is no event listener's process")
        print(f"300 connections by uid {NOBODY}: {lines} warning lines")
        assert lines <= 20, f"{lines} warning lines for 300 connections"
    finally:
        d.stop()


# Run as nobody, the endpoint's owner: swap the program's log file (in nobody's own dir) for a
# link to a root-only file, then read and clear the program's log through the unix socket.
OWNER = r"""
import http.client, json, os, socket, sys, xmlrpc.client
sock_path, log, target = sys.argv[1:4]
os.unlink(log)
os.symlink(target, log)

class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        self.sock.connect(sock_path)

class Unix(xmlrpc.client.Transport):
    def make_connection(self, host):
        return Conn("localhost")

proxy = xmlrpc.client.ServerProxy("http://localhost/RPC2", Unix())
out = {}
for key, method, args in [
    ("read", "readProcessStdoutLog", ("prog", 0, 0)),
    ("tail", "tailProcessStdoutLog", ("prog", 0, 4096)),
    ("clear", "clearProcessLogs", ("prog",)),
]:
    try:
        out[key] = repr(getattr(proxy.supervisor, method)(*args))
    except xmlrpc.client.Fault as fault:
        out[key] = "fault: " + fault.faultString
print(json.dumps(out))
"""


def test_the_owner_cannot_read_or_truncate_root_files_through_a_log_link(tmp_path: Path) -> None:
    import json
    import shutil
    import tempfile

    public = Path(tempfile.mkdtemp(prefix="circus-rpc-owner-", dir="/tmp"))
    try:
        public.chmod(0o755)
        logs = public / "logs"  # the app user's log dir
        logs.mkdir()
        os.chown(logs, NOBODY, NOBODY)
        secret = tmp_path / "shadow"  # root only (pytest's tree is 0700)
        secret.write_text("TOPSECRET\n")
        secret.chmod(0o600)
        d = Daemon(
            public,
            f"[program:prog]\ncommand=/bin/sleep 300\nstdout_logfile={logs}/prog.log\n",
            extra=f"[unix_http_server]\nfile={public}/s.sock\nchmod=0777\n\n",
            circus="endpoint_owner = nobody\n",
        )
        try:
            wait_until(d.answers, 30, "the XML-RPC server to answer")
            wait_until((logs / "prog.log").exists, 30, "the log file")
            done = subprocess.run(
                [
                    _system_python(),
                    "-c",
                    OWNER,
                    f"{public}/s.sock",
                    f"{logs}/prog.log",
                    str(secret),
                ],
                user=NOBODY,
                group=NOBODY,
                extra_groups=[],
                capture_output=True,
                cwd="/",
                env={"PATH": "/usr/bin:/bin"},
                timeout=90,
            )
            assert done.returncode == 0, done.stderr.decode()[-500:]
            out = json.loads(done.stdout)
        finally:
            d.stop()
        assert "TOPSECRET" not in out["read"] + out["tail"], out
        assert secret.read_text() == "TOPSECRET\n", f"truncated as root through a link: {out}"
    finally:
        shutil.rmtree(public, ignore_errors=True)


def test_the_owner_cannot_read_or_truncate_root_files_through_a_swapped_directory(
    tmp_path: Path,
) -> None:
    """The same owner, one level up: ``u/logs`` (a real directory at the config load) moved
    away and replaced by a link to a root-only directory holding a file of the log's name."""
    import json
    import shutil
    import tempfile

    public = Path(tempfile.mkdtemp(prefix="circus-rpc-owner-", dir="/tmp"))
    try:
        public.chmod(0o755)
        user = public / "u"  # the app user's home
        logs = user / "logs"
        logs.mkdir(parents=True)
        for path in (user, logs):
            os.chown(path, NOBODY, NOBODY)
        root_only = tmp_path / "rootdir"  # root only (pytest's tree is 0700)
        root_only.mkdir(mode=0o700)
        secret = root_only / "prog.log"
        secret.write_text("TOPSECRET\n")
        secret.chmod(0o600)
        d = Daemon(
            public,
            f"[program:prog]\ncommand=/bin/sleep 300\nstdout_logfile={logs}/prog.log\n",
            extra=f"[unix_http_server]\nfile={public}/s.sock\nchmod=0777\n\n",
            circus="endpoint_owner = nobody\n",
        )
        try:
            wait_until(d.answers, 30, "the XML-RPC server to answer")
            wait_until((logs / "prog.log").exists, 30, "the log file")
            done = subprocess.run(
                [
                    _system_python(),
                    "-c",
                    "import os, sys; os.rename(sys.argv[4], sys.argv[4] + '.old'); "
                    "os.symlink(sys.argv[5], sys.argv[4]); sys.argv[1:] = sys.argv[1:4]; "
                    "exec("
                    + repr(OWNER.replace("os.unlink(log)\nos.symlink(target, log)\n", ""))
                    + ")",
                    f"{public}/s.sock",
                    f"{logs}/prog.log",
                    str(secret),
                    str(logs),
                    str(root_only),
                ],
                user=NOBODY,
                group=NOBODY,
                extra_groups=[],
                capture_output=True,
                cwd="/",
                env={"PATH": "/usr/bin:/bin"},
                timeout=90,
            )
            assert done.returncode == 0, done.stderr.decode()[-500:]
            out = json.loads(done.stdout)
        finally:
            d.stop()
        assert "TOPSECRET" not in out["read"] + out["tail"], out
        assert secret.read_text() == "TOPSECRET\n", f"truncated as root through a link: {out}"
    finally:
        shutil.rmtree(public, ignore_errors=True)

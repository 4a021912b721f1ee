"""ipc:// endpoints and ``[unix_http_server]`` sockets bound by a root circusd in a folder
another user controls, with no step taken by the path.

libzmq's ipc bind unlinks whatever is at the endpoint's path, by path, then binds by path.
The user who owns the folder can swap it for a link to a folder of root's between circusd's
checks and that bind: root's libzmq then unlinks root's file of that name there. The tests
make that swap happen deterministically, right after circusd's walk to the folder, and check
that root's folder is left as it was; then that the real bind (aside, moved into place) still
serves real ZeroMQ clients at the endpoint's own address, without /proc and without root.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a root daemon, a nobody folder)"),
]

NOBODY = 65534


def _swap_after_walk(monkeypatch: pytest.MonkeyPatch, run: Path, victim: Path) -> None:
    """circusd's first walk to ``run`` returns its descriptor, then ``run`` is renamed away
    and a link to ``victim`` put in its place (what the folder's owner can do at any time)."""
    from circus.arbiter import _sockfile

    real = _sockfile.open_parent
    calls: list[str] = []

    def walk_then_swap(path: str) -> tuple[int, str]:
        found = real(path)
        if not calls:
            os.rename(run, run.with_name("run.old"))
            run.symlink_to(victim)
        calls.append(path)
        return found

    monkeypatch.setattr(_sockfile, "open_parent", walk_then_swap)


@pytest.fixture
def folders(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(root's folder ``victim``, the app's folder ``app/run``)."""
    victim = tmp_path / "victim"
    victim.mkdir()
    run = tmp_path / "app" / "run"
    run.mkdir(parents=True)
    yield victim, run


def _leftovers(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_zeromq_unlinks_nothing_through_a_folder_swapped_after_the_walk(
    folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old code's libzmq unlinked root's ``victim/ctl.sock`` (a regular file here) and
    bound its socket there; now the bind is refused and root's file is as it was."""
    from circus.arbiter._endpoints import bind_endpoint
    from circus.arbiter._errors import ArbiterError

    victim, run = folders
    (victim / "ctl.sock").write_text("root's file\n")
    _swap_after_walk(monkeypatch, run, victim)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    try:
        with pytest.raises(ArbiterError, match="replaced while it was being bound"):
            bind_endpoint(sock, f"ipc://{run / 'ctl.sock'}", owner=str(NOBODY))
    finally:
        sock.close()
        ctx.term()
    assert (victim / "ctl.sock").read_text() == "root's file\n", "root's file was unlinked"
    assert _leftovers(victim) == ["ctl.sock"]
    assert _leftovers(run.with_name("run.old")) == [], "the refused bind left its file"


def test_the_unix_http_server_binds_nothing_through_a_folder_swapped_after_the_walk(
    folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old code's bind by path made a socket file of root's in root's folder."""
    from circus.arbiter.supervisor._http import HttpServerSpec, _bind_unix

    victim, run = folders
    _swap_after_walk(monkeypatch, run, victim)
    spec = HttpServerSpec(kind="unix", path=str(run / "s.sock"), chown=(NOBODY, NOBODY))
    with pytest.raises(OSError, match="replaced while it was being bound"):
        _bind_unix(spec)
    assert _leftovers(victim) == [], "a socket file was bound in root's folder"
    assert _leftovers(run.with_name("run.old")) == []


def test_a_zeromq_client_reaches_the_endpoint_at_its_own_path(tmp_path: Path) -> None:
    """Bound aside and moved into place: a DEALER connecting to the endpoint's path talks to
    our ROUTER; the file is 0600, the endpoint owner's; the socket's own address (what a
    client's getpeername, /proc/net/unix and the connection guard see) is the path; nothing
    is left of the private folder; at exit the file goes, and libzmq's close unlinks
    nothing (a file another server put there since stays)."""
    from circus.arbiter._endpoints import bind_endpoint, remove_ipc

    os.chown(tmp_path, NOBODY, NOBODY)  # the app user's folder
    path = tmp_path / "ctl.sock"
    endpoint = f"ipc://{path}"
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    dealer = ctx.socket(zmq.DEALER)
    router.linger = dealer.linger = 0
    try:
        bind_endpoint(router, endpoint, owner=str(NOBODY))
        info = os.lstat(path)
        assert stat.S_ISSOCK(info.st_mode)
        assert (info.st_mode & 0o777, info.st_uid) == (0o600, NOBODY)
        assert _leftovers(tmp_path) == ["ctl.sock"]
        assert router.getsockopt_string(zmq.LAST_ENDPOINT) == endpoint
        with socket.socket(socket.AF_UNIX) as plain:
            plain.connect(str(path))
            assert plain.getpeername() == str(path)
        dealer.connect(endpoint)
        dealer.send(b"ping")
        assert router.poll(30_000), "the request never reached the bound socket"
        identity, body = router.recv_multipart()
        assert body == b"ping"
        router.send_multipart([identity, b"pong"])
        assert dealer.poll(30_000) and dealer.recv() == b"pong"
        # another server takes the path over; our close and exit leave its file alone
        path.unlink()
        with socket.socket(socket.AF_UNIX) as other:
            other.bind(str(path))
            theirs = os.lstat(path).st_ino
            router.close()
            remove_ipc(endpoint)
            assert os.lstat(path).st_ino == theirs, "another server's socket file was removed"
    finally:
        router.close()
        dealer.close()
        ctx.term()


def test_the_endpoint_file_is_removed_at_exit(tmp_path: Path) -> None:
    from circus.arbiter._endpoints import bind_endpoint, remove_ipc

    endpoint = f"ipc://{tmp_path / 'ctl.sock'}"
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    try:
        bind_endpoint(sock, endpoint)
        assert _leftovers(tmp_path) == ["ctl.sock"]
    finally:
        sock.close()
        ctx.term()
    remove_ipc(endpoint)
    assert _leftovers(tmp_path) == []


def test_no_unshare_binds_by_names_checked(
    folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A seccomp filter (Docker's default one, without CAP_SYS_ADMIN) refuses unshare: the
    bind goes by a path into the private folder and still serves at the endpoint's path;
    a folder swapped after the walk still leaves root's file alone."""
    import errno

    from circus.arbiter import _unshare
    from circus.arbiter._endpoints import bind_endpoint, remove_ipc
    from circus.arbiter._errors import ArbiterError

    def refused() -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(_unshare, "unshare_fs", refused)
    victim, run = folders
    endpoint = f"ipc://{run / 'ctl.sock'}"
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    dealer = ctx.socket(zmq.DEALER)
    router.linger = dealer.linger = 0
    try:
        bind_endpoint(router, endpoint, owner=str(NOBODY))
        info = os.lstat(run / "ctl.sock")
        assert (info.st_mode & 0o777, info.st_uid) == (0o600, NOBODY)
        assert _leftovers(run) == ["ctl.sock"]
        with socket.socket(socket.AF_UNIX) as plain:
            plain.connect(str(run / "ctl.sock"))
            assert plain.getpeername().startswith(str(run / ".circus-bind-"))  # by names
        dealer.connect(endpoint)
        dealer.send(b"ping")
        assert router.poll(30_000) and router.recv_multipart()[1] == b"ping"
    finally:
        router.close()
        dealer.close()
        ctx.term()
    remove_ipc(endpoint)
    assert _leftovers(run) == []

    (victim / "ctl.sock").write_text("root's file\n")
    _swap_after_walk(monkeypatch, run, victim)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    try:
        with pytest.raises(ArbiterError):
            bind_endpoint(sock, endpoint)
    finally:
        sock.close()
        ctx.term()
    assert (victim / "ctl.sock").read_text() == "root's file\n"
    assert _leftovers(victim) == ["ctl.sock"]
    assert _leftovers(run.with_name("run.old")) == []


def test_re_exec_still_sees_a_request_on_its_way_when_bound_by_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """daemon-reexec waits while a control connection has bytes libzmq has not read yet,
    finding our connections by their getsockname(); bound by names (unshare refused), that
    is the private folder's path, not the endpoint's: they must still be found."""
    import errno

    from circus.arbiter import _unshare
    from circus.arbiter._endpoints import bind_endpoint, remove_ipc
    from circus.arbiter._reexec import _bytes_waiting
    from circus.process.testing import wait_until

    def refused() -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(_unshare, "unshare_fs", refused)
    endpoint = f"ipc://{tmp_path / 'ctl'}"
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    dealer = ctx.socket(zmq.DEALER)
    router.linger = dealer.linger = 0
    router.rcvhwm = 1  # libzmq stops reading the connection: the bytes wait in the kernel
    router.rcvbuf = 4096
    dealer.sndhwm = 0
    try:
        bind_endpoint(router, endpoint)
        dealer.connect(endpoint)
        for _ in range(2000):
            dealer.send(b"x" * 1024)
        wait_until(lambda: _bytes_waiting(endpoint), 30, "unread bytes seen on the endpoint")
    finally:
        router.close()
        dealer.close()
        ctx.term()
    remove_ipc(endpoint)


def test_a_killed_binds_private_folder_is_removed_by_the_next_bind(tmp_path: Path) -> None:
    """A bind killed midway leaves its private folder (with the socket file and the
    copy of the path's folders): the next bind in that folder removes it once it is old
    enough; a young one (another circusd's bind in progress), another user's folder of
    that name, a link of that name, and one holding anything but sockets and folders stay."""
    from circus.arbiter._bindaside import PRIVATE_PREFIX, STALE_AFTER
    from circus.arbiter._endpoints import bind_endpoint, remove_ipc

    def leftover(tag: str, *, old: bool = True, owner: int = 0) -> Path:
        top = tmp_path / (PRIVATE_PREFIX + tag)
        inner = top / "srv" / "app"
        inner.mkdir(parents=True, mode=0o700)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(inner / "ctl"))
        for folder in (inner, inner.parent, top):
            folder.chmod(0o700)
            os.chown(folder, owner, owner)
            if old:
                stamp = time.time() - STALE_AFTER - 60
                os.utime(folder, (stamp, stamp))
        return top

    killed = leftover("aaaaaa")
    young = leftover("bbbbbb", old=False)
    theirs = leftover("cccccc", owner=NOBODY)
    held = leftover("dddddd")
    (held / "srv" / "note").write_text("not a socket\n")
    os.utime(held, (0, 0))
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / (PRIVATE_PREFIX + "eeeeee")).symlink_to(target)
    endpoint = f"ipc://{tmp_path / 'ctl.sock'}"
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    try:
        bind_endpoint(sock, endpoint)
    finally:
        sock.close()
        ctx.term()
    remove_ipc(endpoint)
    assert not killed.exists(), "a killed bind's private folder was left"
    assert young.is_dir() and theirs.is_dir() and held.is_dir()
    assert (held / "srv" / "note").read_text() == "not a socket\n"
    assert target.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [young.name, theirs.name, held.name, PRIVATE_PREFIX + "eeeeee", "elsewhere"]
    )


NO_PROC = r"""
import json, os, sys, zmq
from circus.arbiter._endpoints import bind_endpoint, remove_ipc
from circus.arbiter.supervisor._http import HttpServerSpec, _bind_unix
folder = sys.argv[1]
out = {"proc": os.path.exists("/proc/self/fd")}
ctx = zmq.Context()
router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
router.linger = dealer.linger = 0
endpoint = "ipc://" + folder + "/ctl.sock"
bind_endpoint(router, endpoint, owner="65534")
info = os.lstat(folder + "/ctl.sock")
out["endpoint"] = [info.st_mode & 0o777, info.st_uid]
dealer.connect(endpoint)
dealer.send(b"ping")
out["reached"] = bool(router.poll(30000)) and router.recv_multipart()[1] == b"ping"
router.close(); dealer.close(); ctx.term(); remove_ipc(endpoint)
spec = HttpServerSpec(kind="unix", path=folder + "/http.sock", chmod=0o660, chown=(65534, 65534))
sock, _ = _bind_unix(spec)
info = os.lstat(folder + "/http.sock")
out["http"] = [info.st_mode & 0o777, info.st_uid, info.st_gid]
sock.close(); os.unlink(folder + "/http.sock")
out["left"] = sorted(os.listdir(folder))
print(json.dumps(out))
"""


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare(1)")
def test_without_proc_the_mode_and_owner_are_still_set(tmp_path: Path) -> None:
    """In a mount namespace without /proc: the endpoint_owner chown and the
    ``[unix_http_server]`` chmod/chown are made (the old code refused to start: it reached
    the bound file through /proc/self/fd)."""
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         'umount -l /proc && exec "$0" -c "$1" "$2"', sys.executable, NO_PROC, str(tmp_path)],
        capture_output=True, timeout=60,
    )  # fmt: skip
    if done.returncode != 0 and b"umount" in done.stderr:
        pytest.skip(f"cannot unmount /proc here: {done.stderr.decode()}")
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    out = json.loads(done.stdout)
    assert out == {
        "proc": False,
        "endpoint": [0o600, NOBODY],
        "reached": True,
        "http": [0o660, NOBODY, NOBODY],
        "left": [],
    }


NOT_ROOT = r"""
import json, os, socket, sys, zmq
from circus.arbiter._endpoints import bind_endpoint, remove_ipc
folder = sys.argv[1]
ctx = zmq.Context()
router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
router.linger = dealer.linger = 0
endpoint = "ipc://" + folder + "/ctl.sock"
bind_endpoint(router, endpoint)
dealer.connect(endpoint)
dealer.send(b"ping")
reached = bool(router.poll(30000)) and router.recv_multipart()[1] == b"ping"
with socket.socket(socket.AF_UNIX) as plain:
    plain.connect(folder + "/ctl.sock")
    peer = plain.getpeername()
router.close(); dealer.close(); ctx.term(); remove_ipc(endpoint)
print(json.dumps({"reached": reached, "peer": peer, "left": sorted(os.listdir(folder)),
                  "cwd": os.getcwd()}))
"""


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv(1)")
def test_without_the_right_to_chroot_the_bind_still_serves(tmp_path: Path) -> None:
    """A circusd that may not chroot (not root; here root without CAP_SYS_CHROOT): the
    socket is bound by its bare name from inside the private folder, and still serves at
    the endpoint's path; the process's own working directory is untouched (the bind's
    thread has its own)."""
    folder = tmp_path / "app"
    folder.mkdir()
    os.chown(folder, NOBODY, NOBODY)
    done = subprocess.run(
        ["setpriv", "--bounding-set", "-sys_chroot", sys.executable, "-c", NOT_ROOT, str(folder)],
        cwd="/", capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert json.loads(done.stdout) == {
        "reached": True,
        "peer": "ctl.sock",
        "left": [],
        "cwd": "/",
    }


NO_THREAD = """
import json, os, resource, socket, sys
from circus.arbiter._bindaside import bind_aside
import circus.arbiter._unshare  # imported before the folder is all it can reach

os.chdir(sys.argv[1])
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no new task: no thread either
dir_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    bind_aside(sock, dir_fd, "ctl.sock", "ctl.sock", mode=0o600)
    with socket.socket(socket.AF_UNIX) as client:
        client.connect("ctl.sock")
    answer = {"reached": True}
except OSError as exc:
    answer = {"reached": False, "error": str(exc)}
answer["left"] = sorted(os.listdir("."))
print(json.dumps(answer))
"""


def test_a_bind_with_no_thread_to_be_had_still_serves(tmp_path: Path) -> None:
    """A crowded host: the user's process limit (or a cgroup's pids.max) leaves no thread
    for the bind: it goes by names, as where unshare is refused, rather than failing (the
    old code refused the endpoint: a re-exec's new image could not bind its control
    channel)."""
    folder = tmp_path / "app"
    folder.mkdir()
    os.chown(folder, NOBODY, NOBODY)
    done = subprocess.run(
        [sys.executable, "-c", NO_THREAD, str(folder)], cwd="/", capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert json.loads(done.stdout) == {"reached": True, "left": ["ctl.sock"]}


def _posix_acl(entries: list[tuple[int, int, int]]) -> bytes:
    """The kernel's xattr form of a POSIX ACL: version 2, then (tag, perm, id) entries."""
    import struct

    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)


AS_NOBODY_CONNECT = """
import os, socket, sys
os.chdir(sys.argv[1])
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
try:
    socket.socket(socket.AF_UNIX).connect(sys.argv[2])
    print("connected")
except OSError as exc:
    print(exc.errno)
"""


def test_a_default_acl_of_the_folder_owner_gives_it_no_right_on_the_socket(
    tmp_path: Path,
) -> None:
    """The folder's owner gives its folder a default ACL naming itself (rwx): the private
    folder and the socket file made in it inherited it, and a 0660 socket of root's group
    let that owner connect (to an ``[unix_http_server]`` meant for an admin group: root's
    supervisor RPC). Now the mode is all there is."""
    import errno

    from circus.arbiter._bindaside import bind_aside

    folder = tmp_path / "app"
    folder.mkdir()
    os.chown(folder, NOBODY, NOBODY)
    undefined = 0xFFFFFFFF
    everyone_but_other = [(0x01, 7, undefined), (0x02, 7, NOBODY), (0x04, 7, undefined)]
    try:
        os.setxattr(
            folder,
            "system.posix_acl_default",
            _posix_acl([*everyone_but_other, (0x10, 7, undefined), (0x20, 0, undefined)]),
        )
    except OSError as exc:
        pytest.skip(f"no POSIX ACLs on this file system: {exc}")
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    listener = socket.socket(socket.AF_UNIX)
    try:
        bind_aside(
            listener, dir_fd, "http.sock", str(folder / "http.sock"), mode=0o660, owner=(0, 0)
        )
        with pytest.raises(OSError) as no_acl:
            os.getxattr(folder / "http.sock", "system.posix_acl_access")
        assert no_acl.value.errno == errno.ENODATA
        done = subprocess.run(
            [sys.executable, "-c", AS_NOBODY_CONNECT, str(folder), "http.sock"],
            cwd="/", capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.stdout.strip() == str(errno.EACCES), done.stderr[-2000:]
    finally:
        listener.close()
        os.close(dir_fd)

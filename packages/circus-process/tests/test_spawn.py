"""Spawning: argv templating, env, cwd, umask, ids, rlimits, fds, sessions (real children)."""

from __future__ import annotations

import grp
import os
import pwd
import resource
import socket
import sys
from pathlib import Path

import pytest
from circus.process import Process
from circus.process._ids import can_raise_hard_limits

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def lines(proc: Process, read_to_eof) -> list[str]:
    out = read_to_eof(proc.stdout).decode()
    assert proc.wait(10) == 0, out
    return out.splitlines()


def test_env_is_exactly_what_was_asked(spawn, read_to_eof, monkeypatch) -> None:
    monkeypatch.setenv("CIRCUS_TEST_LEAK", "parent-only")
    proc = spawn("env", env={"A": "1", "B": "two words"})
    assert sorted(lines(proc, read_to_eof)) == ["A=1", "B=two words"]


def test_copy_env_inherits_then_overrides(spawn, read_to_eof, monkeypatch) -> None:
    monkeypatch.setenv("CIRCUS_TEST_LEAK", "parent")
    monkeypatch.setenv("CIRCUS_TEST_OVER", "parent")
    proc = spawn("env", env={"CIRCUS_TEST_OVER": "child"}, copy_env=True)
    env = dict(line.split("=", 1) for line in lines(proc, read_to_eof) if "=" in line)
    assert env["CIRCUS_TEST_LEAK"] == "parent"
    assert env["CIRCUS_TEST_OVER"] == "child"
    assert env["PATH"] == os.environ["PATH"]


def test_templating(spawn, read_to_eof) -> None:
    sock = socket.socket()
    try:
        proc = spawn(
            "echo $(circus.wid) ((circus.wid)) $(CIRCUS.ENV.name) $(circus.sockets.web)",
            args="$(circus.numprocesses) $(circus.unknown)",
            wid=4,
            env={"NAME": "bob"},
            sockets={"web": sock.fileno()},
            template_vars={"numprocesses": 3},
        )
        assert lines(proc, read_to_eof) == [f"4 4 bob {sock.fileno()} 3 $(circus.unknown)"]
        assert proc.argv[0] == "echo"
    finally:
        sock.close()


def test_legacy_wid_is_replaced_with_a_warning(spawn, read_to_eof) -> None:
    with pytest.warns(DeprecationWarning, match=r"\$WID"):
        proc = spawn("echo worker-$WID", wid=9)
    assert lines(proc, read_to_eof) == ["worker-9"]


def test_shlex_split_and_args_list(spawn, read_to_eof, py) -> None:
    proc = spawn(f"{py} -c 'import sys; print(sys.argv[1:])'", args="'a b' c")
    assert lines(proc, read_to_eof) == ["['a b', 'c']"]
    proc = spawn(py, args=["-c", "import sys; print(sys.argv[1:])", "x y"])
    assert lines(proc, read_to_eof) == ["['x y']"]


def test_shell_and_shell_args(spawn, read_to_eof) -> None:
    proc = spawn("echo $0 $1 | tr a-z A-Z", shell=True, shell_args="first second")
    assert lines(proc, read_to_eof) == ["FIRST SECOND"]


def test_executable_keeps_argv0(spawn, read_to_eof, py) -> None:
    proc = spawn("pretend -c 'import sys; print(sys.argv[0])'", executable=py)
    assert lines(proc, read_to_eof) == ["-c"]
    proc = spawn("pretend-name 5", executable="/bin/sh", args=None, shell=False)
    proc.stop(graceful_timeout=5)


def test_working_dir(spawn, read_to_eof, tmp_path: Path) -> None:
    proc = spawn("pwd", working_dir=tmp_path)
    assert lines(proc, read_to_eof) == [str(tmp_path)]


def test_relative_program_resolves_against_working_dir(spawn, read_to_eof, tmp_path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o755)
    proc = spawn("./run.sh", working_dir=str(tmp_path))
    assert lines(proc, read_to_eof) == ["ran"]


@pytest.mark.parametrize(("umask", "expected"), [(0o027, "0027"), ("077", "0077"), (0, "0000")])
def test_umask(spawn, read_to_eof, umask, expected) -> None:
    proc = spawn("sh -c umask", umask=umask)
    assert lines(proc, read_to_eof) == [expected]


def test_rlimits_child_reads_its_own(pysnippet, read_to_eof) -> None:
    code = (
        "import resource as r\n"
        "print(r.getrlimit(r.RLIMIT_NOFILE)); print(r.getrlimit(r.RLIMIT_CORE))\n"
        "print(r.getrlimit(r.RLIMIT_FSIZE) == (r.RLIM_INFINITY, r.RLIM_INFINITY))"
    )
    proc = pysnippet(code, rlimits={"nofile": 100, "RLIMIT_CORE": "0", "fsize": ""})
    assert lines(proc, read_to_eof) == ["(100, 100)", "(0, 0)", "True"]


def test_rlimit_nofile_infinity_falls_back_to_hard_limit(pysnippet, read_to_eof) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    code = "import resource as r; print(r.getrlimit(r.RLIMIT_NOFILE))"
    proc = pysnippet(code, rlimits={"nofile": -1})
    assert lines(proc, read_to_eof) == [str((hard, hard))]


def fd_listing_code() -> str:
    # The child lists /proc/self/fd; the listing's own directory fd is closed right after,
    # so only fds still open once listdir returns are reported.
    return (
        "import os\n"
        "def is_open(fd):\n"
        "    try: os.fstat(fd)\n"
        "    except OSError: return False\n"
        "    return True\n"
        "fds = sorted(int(x) for x in os.listdir('/proc/self/fd') if is_open(int(x)))\n"
        "print(' '.join(map(str, fds)))"
    )


def test_only_expected_fds_reach_the_child(pysnippet, read_to_eof) -> None:
    leak_r, leak_w = os.pipe()
    os.set_inheritable(leak_r, True)
    os.set_inheritable(leak_w, True)
    sock = socket.socket()
    other = socket.socket()
    try:
        os.set_inheritable(other.fileno(), True)
        proc = pysnippet(fd_listing_code(), use_fds=True, sockets={"web": sock.fileno()})
        fds = [int(x) for x in lines(proc, read_to_eof)[0].split()]
        assert fds == sorted({0, 1, 2, sock.fileno()})
        proc = pysnippet(fd_listing_code(), use_fds=False, sockets={"web": sock.fileno()})
        assert lines(proc, read_to_eof) == ["0 1 2"]
    finally:
        for fd in (leak_r, leak_w):
            os.close(fd)
        sock.close()
        other.close()


def test_closed_std_streams_are_dev_null(pysnippet, tmp_path: Path) -> None:
    out = tmp_path / "fds.txt"
    code = (
        "import os\n"
        "links = [os.readlink(f'/proc/self/fd/{fd}') for fd in (0, 1, 2)]\n"
        f"open({str(out)!r}, 'w').write(' '.join(links))"
    )
    proc = pysnippet(code, close_child_stdin=True, close_child_stdout=True, close_child_stderr=True)
    assert proc.stdout is None and proc.stderr is None
    assert proc.wait(10) == 0
    assert out.read_text().split() == ["/dev/null"] * 3


def test_stdin_fd_becomes_stdin(spawn, read_to_eof) -> None:
    r, w = os.pipe()
    try:
        os.write(w, b"from stdin\n")
        os.close(w)
        w = -1
        proc = spawn("cat", stdin_fd=r)
        assert lines(proc, read_to_eof) == ["from stdin"]
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_own_session_and_process_group(pysnippet, read_to_eof) -> None:
    proc = pysnippet("import os; print(os.getpid(), os.getsid(0), os.getpgid(0))")
    pid, sid, pgid = map(int, lines(proc, read_to_eof)[0].split())
    assert pid == sid == pgid == proc.pid
    assert sid != os.getsid(0)


@needs_root
def test_uid_gid_by_name_with_supplementary_groups(spawn, read_to_eof) -> None:
    # The venv's python may not be reachable by nobody: ask the shell instead.
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    expected = " ".join(map(str, sorted(set(os.getgrouplist("nobody", nobody.pw_gid)))))
    proc = spawn('sh -c \'id -u; id -g; id -G | tr " " "\\n" | sort -n | xargs\'', uid="nobody")
    assert lines(proc, read_to_eof) == [str(nobody.pw_uid), str(nobody.pw_gid), expected]
    proc = spawn("sh -c 'id -u; id -g'", uid=nobody.pw_uid, gid=group)
    assert lines(proc, read_to_eof) == [str(nobody.pw_uid), str(nobody.pw_gid)]


@needs_root
def test_rlimits_are_set_before_dropping_privileges(spawn, read_to_eof) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # Raising a hard limit needs CAP_SYS_RESOURCE, which container root may lack.
    target = hard + 1024 if can_raise_hard_limits() else hard - 10
    proc = spawn("sh -c 'id -u; ulimit -Sn; ulimit -Hn'", uid="nobody", rlimits={"nofile": target})
    uid = pwd.getpwnam("nobody").pw_uid
    assert lines(proc, read_to_eof) == [str(uid), str(target), str(target)]


def test_no_pipes_when_not_asked(spawn) -> None:
    proc = spawn("true", pipe_stdout=False, pipe_stderr=False)
    assert proc.stdout is None and proc.stderr is None
    assert proc.wait(10) == 0


def test_format_args_and_repr(spawn) -> None:
    proc = Process("t", 2, "echo $(circus.wid)", spawn=False)
    assert proc.pid is None and "new" in repr(proc)
    assert proc.format_args() == ["echo", "2"]
    proc.spawn()
    try:
        assert proc.wait(10) == 0
        assert f"pid={proc.pid}" in repr(proc)
    finally:
        proc.close()
    assert sys.executable

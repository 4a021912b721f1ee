"""Bad input: SpawnError names the option and value; no child and no fd are left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psutil
import pytest
from circus.process import (
    Process,
    ProcessError,
    ProcessGoneError,
    ProcessStateError,
    SpawnError,
)


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


@pytest.fixture
def nothing_left_behind():
    me = psutil.Process()
    before_fds = open_fds()
    before_children = {p.pid for p in me.children()}
    yield
    # Both listings include listdir's own fd, at the same (lowest free) number.
    assert open_fds() == before_fds
    assert {p.pid for p in me.children()} == before_children


CASES = [
    ({"cmd": "no-such-program-xyz"}, "cmd", "no-such-program-xyz"),
    ({"cmd": "/no/such/path"}, "cmd", "/no/such/path"),
    ({"cmd": "sleep 1", "executable": "/no/such/exe"}, "executable", "/no/such/exe"),
    ({"cmd": "'unbalanced"}, "cmd", "'unbalanced"),
    ({"cmd": ""}, "cmd", ""),
    ({"cmd": "sleep 1", "uid": "no-such-user-xyz"}, "uid", "no-such-user-xyz"),
    ({"cmd": "sleep 1", "gid": "no-such-group-xyz"}, "gid", "no-such-group-xyz"),
    ({"cmd": "sleep 1", "working_dir": "/no/such/dir"}, "working_dir", "/no/such/dir"),
    ({"cmd": "sleep 1", "rlimits": {"bogus": 1}}, "rlimit_bogus", 1),
    ({"cmd": "sleep 1", "rlimits": {"nofile": "many"}}, "rlimit_nofile", "many"),
    ({"cmd": "sleep 1", "rlimits": {"nofile": -5}}, "rlimit_nofile", -5),
    ({"cmd": "sleep 1", "umask": "999"}, "umask", "999"),
    ({"cmd": "sleep 1", "umask": 0o1000}, "umask", 0o1000),
    ({"cmd": "sleep 1", "umask": "abc"}, "umask", "abc"),
    ({"cmd": "sleep 1", "use_fds": True, "sockets": {"web": 999}}, "sockets", {"web": 999}),
]


@pytest.mark.parametrize(("kwargs", "option", "value"), CASES)
def test_bad_option_raises_spawn_error(kwargs, option, value, nothing_left_behind) -> None:
    with pytest.raises(SpawnError) as info:
        Process("bad", 1, **kwargs)
    assert info.value.option == option
    assert info.value.value == value
    assert option in str(info.value) and repr(value) in str(info.value)
    assert isinstance(info.value, ProcessError)


def test_not_executable_file(tmp_path: Path, nothing_left_behind) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(stat.S_IRUSR)
    with pytest.raises(SpawnError) as info:
        Process("bad", 1, str(script))
    assert info.value.option == "cmd"


def test_working_dir_is_a_file(tmp_path: Path, nothing_left_behind) -> None:
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(SpawnError) as info:
        Process("bad", 1, "true", working_dir=path)
    assert info.value.option == "working_dir"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_unreadable_working_dir_for_the_target_user(tmp_path: Path, nothing_left_behind) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(SpawnError) as info:
        Process("bad", 1, "/bin/true", working_dir=private, uid="nobody")
    assert info.value.option == "working_dir"


def test_exec_failure_in_child_maps_to_cmd(tmp_path: Path, nothing_left_behind) -> None:
    # Passes the parent's checks (exists, executable) but the kernel refuses to exec it.
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"\x7fELF garbage")
    bogus.chmod(0o755)
    with pytest.raises(SpawnError) as info:
        Process("bad", 1, str(bogus))
    assert info.value.option == "cmd"


def test_spawning_twice_is_refused(spawn) -> None:
    proc = spawn("true")
    with pytest.raises(ProcessStateError, match="already spawned"):
        proc.spawn()
    proc.wait(10)


def test_unspawned_process_refuses_waiting() -> None:
    proc = Process("x", 1, "true", spawn=False)
    with pytest.raises(ProcessStateError, match="not spawned"):
        proc.wait()
    assert proc.poll() is None and not proc.is_alive()


def test_info_of_an_exited_process_says_it_is_gone(spawn) -> None:
    proc = spawn("true")
    proc.wait(10)
    with pytest.raises(ProcessGoneError, match=r"^No such process \(stopped\?\)$") as info:
        proc.info()
    assert isinstance(info.value, ProcessStateError) and isinstance(info.value, ProcessError)


def test_out_of_descriptors_is_a_spawn_error(nothing_left_behind) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.dup(0)
    os.close(lowest_free)
    # Room for exactly one more fd: a pipe (two fds) cannot be created.
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free + 1, hard))
    try:
        with pytest.raises(SpawnError) as info:
            Process("bad", 1, "/bin/true")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert info.value.option == "pipe_stdout"

"""A respawn of the same command reuses its spawn plan, and still fails as a first spawn
would when its program or working directory is gone (real children, real files)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import MappingProxyType

import pytest
from circus.process import Process, SpawnError
from circus.process._spawn import plan_spawn


def _kw(**over: object) -> dict[str, object]:
    kw: dict[str, object] = dict(
        cmd="/bin/true", args=None, wid=1, working_dir=None, shell=False, shell_args=None,
        uid=None, gid=None, env=MappingProxyType({"PATH": os.defpath}), copy_env=False,
        rlimits=None, executable=None, use_fds=False, sockets=None, template_vars=None,
        umask=None, stdin_fd=None, close_child_stdin=True, close_child_stdout=False,
        close_child_stderr=False, pipe_stdout=True, pipe_stderr=True,
    )  # fmt: skip
    kw.update(over)
    return kw


def test_the_same_inputs_give_the_same_plan() -> None:
    kw = _kw(cmd="/bin/echo", args="one two")
    first = plan_spawn(**kw)  # type: ignore[arg-type]
    assert plan_spawn(**kw) is first  # type: ignore[arg-type]
    assert first.argv == ["/bin/echo", "one", "two"]
    # another worker id: the same plan (no token in the command)
    assert plan_spawn(**{**kw, "wid": 7}) is first  # type: ignore[arg-type]


def test_a_worker_id_token_is_planned_per_worker() -> None:
    kw = _kw(cmd="/bin/echo", args="$(circus.wid)")
    assert plan_spawn(**kw).argv == ["/bin/echo", "1"]  # type: ignore[arg-type]
    assert plan_spawn(**{**kw, "wid": 2}).argv == ["/bin/echo", "2"]  # type: ignore[arg-type]


def test_a_view_whose_dict_changed_is_planned_again() -> None:
    items = {"PATH": os.defpath, "A": "1"}
    kw = _kw(env=MappingProxyType(items))
    first = plan_spawn(**kw)  # type: ignore[arg-type]
    items["A"] = "2"
    again = plan_spawn(**kw)  # type: ignore[arg-type]
    assert again is not first
    assert again.env["A"] == "2"


def test_other_inputs_are_other_plans(tmp_path: Path) -> None:
    first = plan_spawn(**_kw())  # type: ignore[arg-type]
    assert plan_spawn(**_kw(working_dir=str(tmp_path))) is not first  # type: ignore[arg-type]
    assert plan_spawn(**_kw(umask=0o077)).umask == 0o077  # type: ignore[arg-type]
    # a plain dict (not a shared view) is planned each time
    plain = _kw(env={"PATH": os.defpath})
    assert plan_spawn(**plain) is not plan_spawn(**plain)  # type: ignore[arg-type]


def test_a_gone_working_dir_fails_the_next_spawn(tmp_path: Path, read_to_eof) -> None:
    wd = tmp_path / "wd"
    wd.mkdir()
    env = MappingProxyType({"PATH": os.defpath})
    proc = Process("p", 1, "/bin/pwd", working_dir=str(wd), env=env)
    assert read_to_eof(proc.stdout).decode().strip() == str(wd)
    assert proc.wait(10) == 0
    proc.close()
    wd.rmdir()
    with pytest.raises(SpawnError) as info:
        Process("p", 1, "/bin/pwd", working_dir=str(wd), env=env)
    assert (info.value.option, info.value.reason) == ("working_dir", "no such directory")


def test_a_gone_program_fails_the_next_spawn(tmp_path: Path) -> None:
    program = tmp_path / "prog"
    shutil.copy("/bin/true", program)
    env = MappingProxyType({"PATH": os.defpath})
    proc = Process("p", 1, str(program), env=env)
    assert proc.wait(10) == 0
    proc.close()
    program.chmod(0o644)
    with pytest.raises(SpawnError) as info:
        Process("p", 1, str(program), env=env)
    assert (info.value.option, info.value.reason) == ("cmd", "not executable")
    program.unlink()
    with pytest.raises(SpawnError) as info:
        Process("p", 1, str(program), env=env)
    assert (info.value.option, info.value.reason) == ("cmd", "no such file")


def test_a_program_found_on_path_that_moved_is_found_again(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    shutil.copy("/bin/true", one / "circus-plan-prog")
    env = MappingProxyType({"PATH": f"{one}:{two}"})
    first = plan_spawn(**_kw(cmd="circus-plan-prog", env=env))  # type: ignore[arg-type]
    assert first.program == str(one / "circus-plan-prog")
    (one / "circus-plan-prog").rename(two / "circus-plan-prog")
    again = plan_spawn(**_kw(cmd="circus-plan-prog", env=env))  # type: ignore[arg-type]
    assert again.program == str(two / "circus-plan-prog")
    (two / "circus-plan-prog").unlink()
    with pytest.raises(SpawnError) as info:
        plan_spawn(**_kw(cmd="circus-plan-prog", env=env))  # type: ignore[arg-type]
    assert info.value.reason == "not found on the child's PATH"


def test_a_closed_stdin_fd_fails_a_reused_plan() -> None:
    r, w = os.pipe()
    os.close(w)
    kw = _kw(stdin_fd=r)
    plan_spawn(**kw)  # type: ignore[arg-type]
    os.close(r)
    with pytest.raises(SpawnError) as info:
        plan_spawn(**kw)  # type: ignore[arg-type]
    assert info.value.option == "stdin_fd"

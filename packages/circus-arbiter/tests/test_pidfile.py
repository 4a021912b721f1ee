"""The pid file: refused paths are a PidfileError (circusd prints it), never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from circus.arbiter._pidfile import Pidfile, PidfileError


def test_written_then_removed(tmp_path: Path) -> None:
    pidfile = Pidfile(str(tmp_path / "circusd.pid"))
    pidfile.create()
    assert (tmp_path / "circusd.pid").read_text() == f"{os.getpid()}\n"
    pidfile.unlink()
    assert not (tmp_path / "circusd.pid").exists()


@pytest.mark.parametrize("name", ["a\x00b", "missing-dir/circusd.pid"])
def test_unwritable_path_is_a_pidfile_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(PidfileError, match="cannot write pid file"):
        Pidfile(str(tmp_path / name)).create()


def test_live_holder_refuses_and_keeps_the_file(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        path = tmp_path / "circusd.pid"
        path.write_text(f"{holder.pid}\n")
        later = time.time() + 5  # written after the holder started
        os.utime(path, (later, later))
        with pytest.raises(PidfileError, match=f"names a running process \\(pid {holder.pid}"):
            Pidfile(str(path)).create()
        assert path.read_text() == f"{holder.pid}\n"
    finally:
        holder.kill()
        holder.wait(10)


def test_younger_process_with_that_pid_is_not_the_holder(tmp_path: Path) -> None:
    squatter = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        path = tmp_path / "circusd.pid"
        path.write_text(f"{squatter.pid}\n")
        past = time.time() - 3600
        os.utime(path, (past, past))
        pidfile = Pidfile(str(path))
        pidfile.create()
        assert path.read_text() == f"{os.getpid()}\n"
        pidfile.unlink()
    finally:
        squatter.kill()
        squatter.wait(10)


def test_unlink_leaves_a_file_that_is_not_ours_any_more(tmp_path: Path) -> None:
    path = tmp_path / "circusd.pid"
    pidfile = Pidfile(str(path))
    pidfile.create()
    # replaced by a copy with the same content: another file, not removed
    copy = tmp_path / "copy"
    copy.write_text(f"{os.getpid()}\n")
    os.replace(copy, path)
    pidfile.unlink()
    assert path.exists()


def test_no_temp_file_left_when_the_rename_fails(tmp_path: Path) -> None:
    path = tmp_path / "circusd.pid"
    path.mkdir()  # rename over a directory fails
    with pytest.raises(PidfileError, match="cannot write pid file"):
        Pidfile(str(path)).create()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["circusd.pid"]

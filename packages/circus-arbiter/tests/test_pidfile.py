"""The pid file: refused paths are a PidfileError (circusd prints it), never a traceback."""

from __future__ import annotations

import os
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

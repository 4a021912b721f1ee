"""A path the safe walk cannot follow is refused with the path as given and the reason.

The walk opens one component at a time; the error of the step that failed named only that
component (``No such file or directory: 'circus'`` for ``--log-output
/var/log/circus/circusd.log``), where a plain ``open`` names the whole path.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from circus.process import open_file, open_parent

FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND


def test_a_missing_directory_on_the_way_is_named_with_the_whole_path(tmp_path: Path) -> None:
    path = str(tmp_path / "missing" / "sub" / "out.log")
    with pytest.raises(FileNotFoundError) as caught:
        open_file(path, FLAGS)
    assert caught.value.errno == errno.ENOENT
    assert caught.value.filename == path
    assert "'missing'" in str(caught.value) and path in str(caught.value)


def test_a_file_where_a_directory_should_be_is_named_with_the_whole_path(
    tmp_path: Path,
) -> None:
    (tmp_path / "plain").write_text("")
    path = str(tmp_path / "plain" / "out.log")
    with pytest.raises(NotADirectoryError) as caught:
        open_parent(path)
    assert caught.value.filename == path
    assert "'plain'" in str(caught.value)


def test_a_relative_path_is_named_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as caught:
        open_file("logs/out.log", FLAGS)
    assert caught.value.filename == "logs/out.log"


def test_the_last_component_refused_names_the_whole_path(tmp_path: Path) -> None:
    # the file itself cannot be opened: the error names it by the path given
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "out.log").mkdir()
    path = str(tmp_path / "logs" / "out.log")
    with pytest.raises(IsADirectoryError) as caught:
        open_file(path, FLAGS)
    assert caught.value.filename == path


def test_ordinary_layouts_still_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a root-owned log dir, an app user's own log dir, a relative path, a deployment link
    (tmp_path / "var" / "log" / "app").mkdir(parents=True)
    releases = tmp_path / "srv" / "releases" / "42" / "logs"
    releases.mkdir(parents=True)
    (tmp_path / "srv" / "current").symlink_to("releases/42")
    if os.geteuid() == 0:
        for d in (releases.parent.parent.parent, releases.parent.parent, releases.parent, releases):
            os.chown(d, 65534, 65534)
        os.lchown(tmp_path / "srv" / "current", 65534, 65534)
    monkeypatch.chdir(tmp_path)
    for path in (
        str(tmp_path / "var" / "log" / "app" / "out.log"),
        str(tmp_path / "srv" / "current" / "logs" / "out.log"),
        "srv/current/logs/err.log",
        "./var/log/app/../app/rel.log",
    ):
        os.close(open_file(path, FLAGS))
        assert os.path.isfile(path)

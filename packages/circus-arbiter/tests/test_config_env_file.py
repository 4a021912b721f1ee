"""``env_file`` in a config file: paths from the file's folder, checked at load time."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from circus.arbiter.config import ConfigError, load_config


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_paths_are_relative_to_the_file_that_names_them(tmp_path: Path) -> None:
    write(tmp_path / "conf.d" / "app.env", "A=1\n")
    main = write(
        tmp_path / "circus.ini",
        """
        [circus]
        include = conf.d/*.ini
        """,
    )
    write(
        tmp_path / "conf.d" / "web.ini",
        """
        [watcher:web]
        cmd = sleep 60
        env_file = app.env
            -optional.env
            /abs/-not-optional-prefix.env
        """,
    )
    (tmp_path / "abs").mkdir()
    with pytest.raises(ConfigError) as info:
        load_config(main)
    # the third line names a required file that does not exist: an error at the option's line
    assert "web.ini:3" in str(info.value) and "-not-optional-prefix.env" in str(info.value)

    write(
        tmp_path / "conf.d" / "web.ini",
        """
        [watcher:web]
        cmd = sleep 60
        env_file = app.env
            -optional.env
        """,
    )
    (watcher,) = load_config(main).watchers
    assert watcher.options["env_file"] == (
        str(tmp_path / "conf.d" / "app.env"),
        "-" + str(tmp_path / "conf.d" / "optional.env"),
    )


def test_a_malformed_env_file_is_a_config_error_naming_both_lines(tmp_path: Path) -> None:
    write(tmp_path / "bad.env", "# ok\nGOOD=1\nthis is not an assignment\n")
    main = write(
        tmp_path / "circus.ini",
        """
        [watcher:w]
        cmd = sleep 60

        env_file = bad.env
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(main)
    text = str(info.value)
    assert "circus.ini:4" in text and "bad.env:3: expected KEY=VALUE" in text

"""The INI dialect of Circus 0.19 config files (spec/config.md §1)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from circus.arbiter.config import ConfigError, ConfigWarning, load_config


def write(tmp_path: Path, text: str, name: str = "circus.ini") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_comments_rem_and_inline_semicolon(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        # a comment
        ; another
        rem old-style comment
        REM shouting comment
        [watcher:w]
        cmd = run ; trailing comment
        args = 100;c
        note = a # not a comment
          ; indented comment line
        """,
    )
    kwargs = load_config(path).watchers[0].kwargs
    assert kwargs["cmd"] == "run"
    assert kwargs["args"] == "100;c"
    assert kwargs["note"] == "a # not a comment"


def test_no_interpolation_and_percent_is_literal(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [watcher:w]
        cmd = date +%Y-%m-%d %(name)s
        stdout_stream.filename = out.log
        stdout_stream.time_format = %Y-%m-%d %H:%M:%S
        """,
    )
    kwargs = load_config(path).watchers[0].kwargs
    assert kwargs["cmd"] == "date +%Y-%m-%d %(name)s"
    assert kwargs["stdout_stream"]["time_format"] == "%Y-%m-%d %H:%M:%S"


def test_first_duplicate_wins_with_a_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [watcher:w]
        cmd = run
        numprocesses = 3
        numprocesses = 7
        """,
    )
    with pytest.warns(ConfigWarning, match=r"circus\.ini:4: \[watcher:w\] numprocesses .*line 3"):
        config = load_config(path)
    assert config.watchers[0].kwargs["numprocesses"] == 3


def test_duplicate_sections_merge(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [watcher:w]
        cmd = run
        [socket:s]
        port = 0
        [watcher:w]
        numprocesses = 4
        """,
    )
    config = load_config(path)
    assert [w.name for w in config.watchers] == ["w"]
    assert config.watchers[0].kwargs["numprocesses"] == 4
    assert config.watchers[0].kwargs["cmd"] == "run"


def test_continuation_lines_join_with_newlines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [watcher:w]
        cmd = python -c
            "print(1)"
        some_option = first
            second

        other = x
        """,
    )
    kwargs = load_config(path).watchers[0].kwargs
    assert kwargs["cmd"] == 'python -c\n"print(1)"'
    assert kwargs["some_option"] == "first\nsecond"
    assert kwargs["other"] == "x"


def test_empty_values_and_double_quotes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [watcher:w]
        cmd = run
        a = ""
        b =
        c = "x"
        d: colon delimiter
        """,
    )
    kwargs = load_config(path).watchers[0].kwargs
    assert kwargs["a"] == ""
    assert kwargs["b"] == ""
    assert kwargs["c"] == '"x"'
    assert kwargs["d"] == "colon delimiter"


def test_option_names_keep_their_case(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [watcher:w]
        cmd = run
        MyOption = 1
        [env]
        FunKy_soUl = yes
        """,
    )
    kwargs = load_config(path).watchers[0].kwargs
    assert kwargs["MyOption"] == "1"
    assert kwargs["env"] == {"FunKy_soUl": "yes"}


def test_no_name_key_leaks(tmp_path: Path) -> None:
    """Upstream's parser put '__name__' in every section; it reached options and env."""
    path = write(
        tmp_path,
        """
        [watcher:w]
        cmd = run
        [env:w]
        A = 1
        [plugin:p]
        use = x.y.Z
        """,
    )
    config = load_config(path)
    assert "__name__" not in config.watchers[0].kwargs
    assert "__name__" not in config.watchers[0].kwargs["env"]
    assert "__name__" not in config.plugins[0].options


def test_unknown_sections_are_ignored_and_typos_warned(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [something_else]
        x = 1
        [watchers:w]
        cmd = run
        [Circus]
        check_delay = 1
        """,
    )
    with pytest.warns(ConfigWarning) as record:
        config = load_config(path)
    messages = [str(w.message) for w in record]
    assert any("circus.ini:3: [watchers:w]" in m and "[watcher:" in m for m in messages)
    assert any("circus.ini:5: [Circus]" in m and "[circus" in m for m in messages)
    assert len(messages) == 2
    assert config.watchers == ()
    assert config.circus.check_delay == 5.0


def test_empty_watcher_section_is_ignored_with_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "[watcher:w]\n")
    with pytest.warns(ConfigWarning, match="circus.ini:1: .*empty section ignored"):
        assert load_config(path).watchers == ()


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("cmd = x\n", 1, "expected a [section] header"),
        ("[watcher:w]\ncmd = run\njust some words\n", 3, "cannot parse line"),
        ("[watcher:w]\ncmd = run\n= value\n", 3, "cannot parse line"),
        ("[circus\n", 1, "malformed section header"),
        ("[watcher:w]\ncmd = run\n[socket:s\n", 3, "malformed section header"),
    ],
)
def test_malformed_lines(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="circus.ini:" + str(line) + ":") as info:
        load_config(path)
    assert expected in str(info.value)
    assert info.value.lineno == line
    assert info.value.filename == str(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.ini: cannot read config file: No such file"):
        load_config(tmp_path / "nope.ini")


def test_directory_and_non_utf8_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path)
    path = tmp_path / "latin1.ini"
    path.write_bytes(b"[watcher:w]\ncmd = caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)

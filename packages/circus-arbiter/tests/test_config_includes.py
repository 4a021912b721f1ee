"""include / include_dir (spec/config.md §2)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from circus.arbiter.config import ConfigError, ConfigWarning, load_config


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_include_globs_relative_to_main_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    main = write(
        tmp_path / "etc" / "circus.ini",
        """
        [circus]
        include = extra/*.ini one.ini
        [watcher:main]
        cmd = run
        numprocesses = 2
        """,
    )
    write(tmp_path / "etc" / "extra" / "b.ini", "[watcher:b]\ncmd = b\n")
    write(tmp_path / "etc" / "extra" / "a.ini", "[watcher:a]\ncmd = a\n")
    write(tmp_path / "etc" / "extra" / "skip.txt", "[watcher:skip]\ncmd = s\n")
    write(tmp_path / "etc" / "one.ini", "[watcher:main]\nnumprocesses = 5\nmax_age = 9\n")
    monkeypatch.chdir(tmp_path)  # relative to the file, not the cwd
    config = load_config(main)
    assert [w.name for w in config.watchers] == ["a", "b", "main"]
    main_watcher = config.watcher("main").kwargs
    assert main_watcher["numprocesses"] == 2  # the main file wins for the same key
    assert main_watcher["max_age"] == 9  # sections merge across files
    assert config.sources == (
        str(main),
        str(tmp_path / "etc" / "extra" / "a.ini"),
        str(tmp_path / "etc" / "extra" / "b.ini"),
        str(tmp_path / "etc" / "one.ini"),
    )
    assert config.circus.include == ("extra/*.ini", "one.ini")


def test_include_dir_and_absolute_include(tmp_path: Path) -> None:
    other = write(tmp_path / "elsewhere" / "sock.ini", "[socket:s]\nport = 0\n")
    write(tmp_path / "conf.d" / "w.ini", "[watcher:w]\ncmd = run $(circus.sockets.s)\n")
    write(tmp_path / "conf.d" / "ignored.conf", "[watcher:x]\ncmd = run\n")
    main = write(
        tmp_path / "circus.ini",
        f"[circus]\ninclude_dir = conf.d\ninclude = {other}\n",
    )
    with pytest.warns(ConfigWarning, match="use_sockets is false"):
        config = load_config(main)
    assert [w.name for w in config.watchers] == ["w"]
    assert [s.name for s in config.sockets] == ["s"]
    assert len(config.sources) == 3


def test_file_included_twice_is_read_once(tmp_path: Path) -> None:
    write(tmp_path / "w.ini", "[watcher:w]\ncmd = run\n")
    main = write(tmp_path / "circus.ini", "[circus]\ninclude = w.ini *.ini circus.ini\n")
    config = load_config(main)
    assert config.sources == (str(main), str(tmp_path / "w.ini"))


def test_glob_matching_nothing_warns(tmp_path: Path) -> None:
    main = write(tmp_path / "circus.ini", "[circus]\n\ninclude = nothing/*.ini\n")
    with pytest.warns(ConfigWarning, match=r"circus.ini:3: \[circus\] include: .*matches no file"):
        assert load_config(main).watchers == ()


def test_missing_include_is_an_error(tmp_path: Path) -> None:
    main = write(tmp_path / "circus.ini", "[circus]\ninclude = missing.ini\n")
    with pytest.raises(
        ConfigError, match=r"circus.ini:2: \[circus\] include = 'missing.ini': cannot read "
    ) as info:
        load_config(main)
    assert "No such file" in str(info.value)


def test_include_dir_missing_or_not_a_directory_is_a_warning(tmp_path: Path) -> None:
    # Circus 0.19 loads it (its own test of a missing include_dir expects no error)
    write(tmp_path / "afile", "x")
    main = write(
        tmp_path / "circus.ini",
        "[circus]\ninclude_dir = nope afile\n[watcher:w]\ncmd = run\n",
    )
    with pytest.warns(ConfigWarning) as caught:
        config = load_config(main)
    assert [w.name for w in config.watchers] == ["w"]
    messages = [str(w.message) for w in caught if issubclass(w.category, ConfigWarning)]
    assert any(
        m.startswith(f"{main}:2: [circus] include_dir: ") and "nope does not exist" in m
        for m in messages
    ), messages
    assert any("afile is not a directory" in m for m in messages), messages


@pytest.mark.parametrize("key", ["include", "include_dir"])
def test_include_with_a_nul_character(tmp_path: Path, key: str) -> None:
    # found by tests/reliability/test_config_fuzz.py: a bare ValueError from the OS layer
    main = write(tmp_path / "circus.ini", f"[circus]\n{key} = a\x00b\n")
    with pytest.raises(ConfigError, match=rf"circus.ini:2: .*{key} = .*NUL character"):
        load_config(main)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_include(tmp_path: Path) -> None:
    secret = write(tmp_path / "secret.ini", "[watcher:w]\ncmd = run\n")
    secret.chmod(0)
    main = write(tmp_path / "circus.ini", "[circus]\ninclude = secret.ini\n")
    with pytest.raises(ConfigError, match=r"circus.ini:2: .*Permission denied"):
        load_config(main)


def test_include_that_is_a_directory_or_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "adir.ini").mkdir()
    main = write(tmp_path / "circus.ini", "[circus]\ninclude = adir.ini\n")
    with pytest.raises(ConfigError, match=r"circus.ini:2: .*cannot read included file"):
        load_config(main)
    (tmp_path / "bad.ini").write_bytes(b"[watcher:w]\ncmd = \xff\n")
    main = write(tmp_path / "circus.ini", "[circus]\ninclude = bad.ini\n")
    with pytest.raises(ConfigError, match=r"circus.ini:2: .*bad.ini: not UTF-8"):
        load_config(main)


def test_errors_in_included_files_name_that_file(tmp_path: Path) -> None:
    write(tmp_path / "inc.ini", "# leading\n[watcher:w]\ncmd = run\nnumprocesses = many\n")
    main = write(tmp_path / "circus.ini", "[circus]\ninclude = inc.ini\n")
    with pytest.raises(ConfigError, match=r"inc.ini:4: \[watcher:w\] numprocesses = 'many'"):
        load_config(main)


def test_includes_are_not_recursive(tmp_path: Path) -> None:
    write(tmp_path / "deeper.ini", "[watcher:deep]\ncmd = run\n")
    write(tmp_path / "d" / "inc.ini", "[circus]\ninclude = ../deeper.ini\n[watcher:w]\ncmd = x\n")
    main = write(tmp_path / "circus.ini", "[circus]\ninclude_dir = d\n")
    with pytest.warns(ConfigWarning, match=r"inc.ini:2: \[circus\] include: ignored in an incl"):
        config = load_config(main)
    assert [w.name for w in config.watchers] == ["w"]


def test_include_path_from_env(tmp_path: Path) -> None:
    write(tmp_path / "x" / "w.ini", "[watcher:w]\ncmd = run\n")
    main = write(tmp_path / "circus.ini", "[circus]\ninclude = $(circus.env.SUB)/*.ini\n")
    config = load_config(main, environ={"SUB": "x"})
    assert [w.name for w in config.watchers] == ["w"]

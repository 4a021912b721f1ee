"""``env_file``: systemd-style environment files, read at each start and reload."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from circus.watcher import EnvFileError, OptionError, read_env_files
from circus.watcher._envfile import parse_env_text

PY = sys.executable
PRINT_ENV = f'{PY} -c "import os, json; print(json.dumps(dict(os.environ)))"'


def test_syntax_follows_environment_file_rules() -> None:
    text = (
        "# a comment\n"
        "; another\n"
        "\n"
        "  PLAIN = value with  spaces  \n"
        "SINGLE='$HOME \\n kept'\n"
        'DOUBLE="say \\"hi\\" \\$X \\\\ end"  # trailing comment\n'
        "CONT=first \\\n"
        "   second\n"
        'MULTI="line one\n'
        'line two"\n'
        "EMPTY=\n"
    )
    assert parse_env_text(text) == {
        "PLAIN": "value with  spaces",
        "SINGLE": "$HOME \\n kept",
        "DOUBLE": 'say "hi" $X \\ end',
        "CONT": "first second",
        "MULTI": "line one\nline two",
        "EMPTY": "",
    }


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("A=1\nnot an assignment\n", 2, "expected KEY=VALUE"),
        ("A=1\n\n1BAD=x\n", 3, "not a variable name"),
        ('A="never closed\n', 1, "no closing"),
        ("A='x' junk\n", 1, "after the closing quote"),
    ],
)
def test_a_bad_line_is_refused_with_its_line(text: str, line: int, problem: str) -> None:
    with pytest.raises(EnvFileError) as info:
        parse_env_text(text, "/etc/app.env")
    assert info.value.lineno == line and problem in str(info.value)
    assert str(info.value).startswith(f"/etc/app.env:{line}: ")


def test_files_stack_in_order_and_a_dash_marks_an_optional_one(tmp_path: Path) -> None:
    (tmp_path / "a.env").write_text("A=1\nB=from-a\n")
    (tmp_path / "b.env").write_text("B=from-b\n")
    entries = [str(tmp_path / "a.env"), f"-{tmp_path / 'missing.env'}", str(tmp_path / "b.env")]
    assert read_env_files(entries) == {"A": "1", "B": "from-b"}
    with pytest.raises(EnvFileError, match="no such file"):
        read_env_files([str(tmp_path / "missing.env")])


def test_a_huge_or_binary_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.env"
    big.write_bytes(b"A=" + b"x" * (2 << 20))
    with pytest.raises(EnvFileError, match="larger than"):
        read_env_files([str(big)])
    binary = tmp_path / "bin.env"
    binary.write_bytes(b"A=\xff\xfe\n")
    with pytest.raises(EnvFileError, match="not UTF-8"):
        read_env_files([str(binary)])


@pytest.mark.parametrize("value", [42, [""], ["-"], [1], "a\0b"])
def test_option_values_are_checked(make: Any, value: Any) -> None:
    with pytest.raises(OptionError, match="env_file"):
        make("true", env_file=value)


def test_children_get_the_file_over_env_and_it_is_read_again_on_reload(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text("SECRET='s3cret $NOT_EXPANDED'\nSHARED=from-file\n")
    outputs: list[dict[str, str]] = []

    async def main() -> None:
        w = make(
            f"{PRINT_ENV} && exec sleep 60",
            shell=True,
            env={"SHARED": "from-env", "ONLY_ENV": "1"},
            env_file=str(env_file),
        )

        def observe(pid: int, name: str, data: bytes) -> None:
            if name == "stdout":
                outputs.append(json.loads(data))

        w.add_output_observer(observe)
        await w.start()
        await recorder.until(lambda: len(outputs) == 1)
        first = outputs[0]
        assert first["SECRET"] == "s3cret $NOT_EXPANDED"
        assert first["SHARED"] == "from-file" and first["ONLY_ENV"] == "1"

        env_file.write_text("SECRET=rotated\n")
        await w.reload(graceful=True)
        await recorder.until(lambda: len(outputs) == 2)
        assert outputs[1]["SECRET"] == "rotated" and outputs[1]["SHARED"] == "from-env"

        serving = w.pids
        env_file.write_text("garbage line\n")
        with pytest.raises(OptionError, match=r"app\.env:1: expected KEY=VALUE"):
            await w.reload(graceful=True)
        assert w.pids == serving and w.status() == "active"  # the old process keeps serving
        await w.stop()

    run_async(main)

"""The README's examples run as written (extracted here, so they cannot drift)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_examples() -> None:
    assert len(python_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_example_runs(index: int, capsys) -> None:
    code = python_blocks()[index]
    exec(compile(code, f"README.md[python block {index}]", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    expected = {
        0: "hello from worker 1 in /tmp, GREETING=bonjour\n-15\n",
        1: "exited with 0\nline 1\nline 2\nline 3\n",
        2: "None\n4096\n",
    }
    assert out == expected[index]

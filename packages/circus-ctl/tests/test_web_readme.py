"""WEB.md's example runs and prints what WEB.md says it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tornado", reason="the dashboard needs the web extra")
pytest.importorskip("prometheus_client", reason="the dashboard needs the web extra")

WEB_MD = Path(__file__).resolve().parent.parent / "WEB.md"


def test_web_md_example_runs_and_prints_as_documented() -> None:
    text = WEB_MD.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    printed = re.search(r"prints\n\n```\n(.*?)```", text, re.S)
    assert code is not None and printed is not None
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code.group(1)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed.group(1)


def test_web_md_shows_the_screenshot() -> None:
    image = re.search(r"!\[[^\]]*\]\(([^)]+)\)", WEB_MD.read_text())
    assert image is not None
    assert (WEB_MD.parent / image.group(1)).resolve().is_file()


def test_web_md_options_table_lists_every_option() -> None:
    from circus.ctl.web._cli import parser

    table = WEB_MD.read_text().split("## Options", 1)[1].split("\n## ", 1)[0]
    first_cells = [row.split("|")[1] for row in table.splitlines() if row.startswith("| `")]
    documented = set(re.findall(r"`(--[a-z-]+)", " ".join(first_cells)))
    options = {
        flag
        for action in parser()._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag not in ("--help", "--version", "--log-level")
    }
    assert options - documented == set()

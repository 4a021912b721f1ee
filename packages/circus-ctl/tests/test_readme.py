"""The README's example runs and prints what the README says it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs_and_prints_as_documented() -> None:
    text = README.read_text()
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

"""The README's CURVE example runs and prints what the README says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_security_example_runs() -> None:
    section = README.read_text().split("## Security: CURVE keys", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    printed = re.search(r"It prints `([^`]*)`", section)
    assert code is not None and printed is not None
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code.group(1)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == printed.group(1)

"""The README's readiness example runs as written (the block is extracted, so the two cannot
drift)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_readiness_example_runs(tmp_path: Path) -> None:
    text = README.read_text()
    section = text[text.index("## Readiness and liveness") :]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert block, "the README lost its readiness example"
    script = tmp_path / "example.py"
    script.write_text(block.group(1))
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("ready {'process_pid'") for line in lines) == 2
    assert sorted(line for line in lines if line.startswith("process")) == [
        "process 1 ready serving",
        "process 2 ready serving",
    ]

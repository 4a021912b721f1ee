"""The README's example runs as written (the block is extracted, so the two cannot drift)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README lost its example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "web runs 3 processes; job said job done" in lines
    assert lines[-1].startswith("web stop {'time'")
    assert sum(line.startswith("web spawn {'process_pid'") for line in lines) == 3
    assert any(line.startswith("web start {'time'") for line in lines)

"""In a fresh venv, installing circus-process pulls psutil and nothing else."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_fresh_venv_install_pulls_only_psutil(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    # TMPDIR: uv's lock file goes to the test's own directory
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": "", "TMPDIR": str(tmp_path)}
    venv = tmp_path / "venv"
    subprocess.run(
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
        check=True,
        env=env,
        timeout=60,
    )
    python = str(venv / "bin" / "python")
    result = subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", python, str(PACKAGE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
    )
    if result.returncode != 0:
        if any(w in result.stderr.lower() for w in ("network", "connect", "dns", "offline")):
            pytest.skip(f"offline: {result.stderr.strip()[:200]}")
        pytest.fail(result.stderr)
    freeze = subprocess.run(
        [uv, "pip", "freeze", "--python", python],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=30,
    ).stdout
    names = sorted(
        line.split("==")[0].split(" @ ")[0].lower() for line in freeze.splitlines() if line.strip()
    )
    assert names == ["circus-process", "psutil"]
    check = subprocess.run(
        [python, "-c", "import circus, circus.process as p; print(p.Process.__name__)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.stdout.strip() == "Process", check.stderr

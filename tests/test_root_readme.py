"""The root README's three examples run as written.

The daemon example is run with two substitutions that keep parallel test runs apart: the
config gets ipc endpoints in tmp_path (circusctl finds them through CIRCUSCTL_ENDPOINT), and
`logs -f` (which follows until Ctrl-C) is run without `-f`, once every worker has spoken.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def _run_python(code: str, tmp_path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_process_example(tmp_path: Path) -> None:
    code = next(b for b in _blocks("python") if "from circus.process import" in b)
    assert _run_python(code, tmp_path).splitlines() == ["worker 1 says hi", "-15"]


def test_watcher_example(tmp_path: Path) -> None:
    code = next(b for b in _blocks("python") if "from circus.watcher import" in b)
    out = _run_python(code, tmp_path)
    assert out.count("web spawn") == 3 and "3 running" in out and "web stop" in out


def test_daemon_example(tmp_path: Path) -> None:
    [ini] = _blocks("ini")
    [script] = [b for b in _blocks("bash") if "circusd --daemon" in b]
    endpoint = f"ipc://{tmp_path}/ctl"
    ini = f"[circus]\nendpoint = {endpoint}\npubsub_endpoint = ipc://{tmp_path}/pub\n" + ini
    (tmp_path / "my.ini").write_text(ini)
    # the third worker's line may still be on its way: poll (bounded by the run's timeout)
    wait_lines = "until [ $(circusctl logs worker | grep -c ready) = 3 ]; do sleep 0.1; done\n"
    script = re.sub(r"(?m)^circusctl logs -f", wait_lines + "circusctl logs", script)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "CIRCUSCTL_ENDPOINT": endpoint}
    try:
        done = subprocess.run(
            ["bash", "-ec", script],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout.splitlines()
        assert "worker: active" in out and "3" in out
        assert sum("ready" in line for line in out) == 3, out  # logs: each worker's line
    finally:
        pidfile = tmp_path / "circusd.pid"
        if pidfile.exists():  # quit did not run: end the daemon (it stops its workers)
            pid = int(pidfile.read_text())
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass

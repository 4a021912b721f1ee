"""superlance's real listeners (2.0.0, with Supervisor 4.3.0, in their own venv) run as
``[eventlistener:x]`` by our ``circusd`` and act on its processes: ``crashmail`` mails when a
program exits unexpectedly, ``memmon`` restarts a program over its memory limit through the
XML-RPC API."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from circus.process.testing import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from benchkit.procs import BenchError  # noqa: E402 - bench/ is not a package
from benchkit.settings import CACHE_DIR  # noqa: E402
from benchkit.venvs import ensure_venv  # noqa: E402

pytestmark = pytest.mark.slow

CIRCUSD = str(Path(sys.executable).with_name("circusd"))
SUPERLANCE = ("supervisor-superlance", ("supervisor==4.3.0", "superlance==2.0.0"))


def supervisor_venv() -> Path:
    """Supervisor 4.3.0 + superlance 2.0.0 in their own venv (built once, under a lock)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / "supervisor-superlance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return ensure_venv(SUPERLANCE)
        except BenchError as exc:
            pytest.skip(f"cannot build the Supervisor venv: {exc}")
    raise AssertionError("unreachable")


CRASHY = (
    "import os, time\n"
    "while not os.path.exists('crash'): time.sleep(0.05)\n"
    "os.unlink('crash')\n"
    "raise SystemExit(3)"
)
HOG = "import time\ndata = b'x' * (80 << 20)\ntime.sleep(300)"
SENDMAIL = "import sys\nopen(sys.argv[1], 'a').write(sys.stdin.read() + '\\n--\\n')"

CONF = """\
[unix_http_server]
file=%(here)s/supervisor.sock

[supervisord]
logfile=%(here)s/supervisord.log
nodaemon=true

[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock

[program:crashy]
command={py} %(here)s/crashy.py
directory=%(here)s
startsecs=0

[program:hog]
command={py} %(here)s/hog.py
startsecs=0

[eventlistener:crashmail]
command={venv}/bin/crashmail -a -m ops@example.com -s "{py} %(here)s/sendmail.py %(here)s/mail.txt"
events=PROCESS_STATE_EXITED

[eventlistener:memmon]
command={venv}/bin/memmon -p hog=40MB
events=TICK_5
"""


def _with_log(folder: Path, wait: Any) -> None:
    """Run ``wait``; a failure says what circusd logged."""
    try:
        wait()
    except AssertionError as exc:
        log = (folder / "circusd.out").read_text(errors="replace")[-3000:]
        raise AssertionError(f"{exc}\ncircusd's output:\n{log}") from None


def test_crashmail_and_memmon_act_on_our_processes(tmp_path: Path) -> None:
    venv = supervisor_venv()
    (tmp_path / "crashy.py").write_text(CRASHY)
    (tmp_path / "hog.py").write_text(HOG)
    (tmp_path / "sendmail.py").write_text(SENDMAIL)
    conf = tmp_path / "supervisord.conf"
    conf.write_text(CONF.format(py="/usr/bin/env python3 -u", venv=venv))
    # circusd's own endpoints in tmp_path: Circus's default tcp ports are shared by every
    # test running at once
    with open(conf, "a") as file:
        file.write(f"\n[circus]\nendpoint = ipc://{tmp_path}/ctl\n")
        file.write(f"pubsub_endpoint = ipc://{tmp_path}/pub\n")
    mail = tmp_path / "mail.txt"

    def ctl(*args: str) -> str:
        done = subprocess.run(
            [str(venv / "bin" / "supervisorctl"), "-c", str(conf), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout

    def pid_of(name: str) -> int:
        found = re.search(rf"^{name} +RUNNING +pid (\d+),", ctl("status"), re.M)
        return int(found.group(1)) if found else 0

    with open(tmp_path / "circusd.out", "wb") as out:
        proc = subprocess.Popen([CIRCUSD, str(conf)], stdout=out, stderr=subprocess.STDOUT)
    tree: set[int] = set()
    try:
        _with_log(
            tmp_path,
            lambda: wait_until(
                lambda: (
                    pid_of("crashy") and pid_of("hog") and pid_of("crashmail") and pid_of("memmon")
                ),
                60,
                "every program and listener RUNNING",
            ),
        )
        crashed = pid_of("crashy")
        hog = pid_of("hog")
        (tmp_path / "crash").write_text("")
        wait_until(lambda: mail.exists() and "--" in mail.read_text(), 60, "crashmail's mail")
        text = mail.read_text()
        assert "To: ops@example.com" in text
        assert (
            f"Process crashy in group crashy exited unexpectedly (pid {crashed}) from state RUNNING"
        ) in text, text
        # memmon looks every 5 s (TICK_5): the hog, over 40MB, is restarted through the API
        wait_until(lambda: pid_of("hog") not in (0, hog), 90, "memmon to restart the hog")
        log = (tmp_path / "circusd.out").read_text(errors="replace")
        assert "Restarting hog:hog" in log
        assert not psutil.pid_exists(hog) or psutil.Process(hog).status() == "zombie"
        with contextlib.suppress(psutil.NoSuchProcess):
            tree = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            for pid in tree:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

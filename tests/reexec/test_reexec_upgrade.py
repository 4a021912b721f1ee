"""daemon-reexec runs whatever circus code is installed now, and refuses code that cannot
take the state over.

"Installing" a changed circus-arbiter is done the way that is robust in CI: circusd runs
with a copy of the circus.arbiter package first on ``PYTHONPATH`` (it shadows the installed
one; ``circus`` is a namespace package), and the test edits that copy between re-execs, as
an upgrade would replace the files on disk. No venv is built, no network is needed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import circus.arbiter
import pytest
from circus.process.testing import wait_until

CONFIG = """
[watcher:idle]
cmd = sleep 600
numprocesses = 3
graceful_timeout = 5
"""

MARK = """
import os as _os
if "CIRCUS_TEST_MARK" in _os.environ:
    with open(_os.environ["CIRCUS_TEST_MARK"], "a") as _fh:
        _fh.write(f"{_os.getpid()} {VERSION_MARK}\\n")
"""


def _overlay(tmp_path: Path) -> Path:
    source = Path(circus.arbiter.__file__).parent
    target = tmp_path / "overlay" / "circus" / "arbiter"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _mark(package: Path, version: str) -> None:
    """Change the installed circusd module: it notes its pid and ``version`` at import."""
    path = package / "circusd.py"
    text = path.read_text().split("\nVERSION_MARK = ")[0]
    path.write_text(f"{text}\nVERSION_MARK = {version!r}\n{MARK}")


@pytest.mark.slow
def test_changed_code_takes_over_and_bad_code_is_refused(circusd, tmp_path, monkeypatch) -> None:
    package = _overlay(tmp_path)
    mark = tmp_path / "mark"
    monkeypatch.setenv("PYTHONPATH", str(package.parent.parent))
    monkeypatch.setenv("CIRCUS_TEST_MARK", str(mark))
    daemon = circusd(CONFIG)
    wait_until(lambda: len(daemon.pids("idle")) == 3, 30, "3 idle processes")
    pids = daemon.pids("idle")
    pid = daemon.proc.pid

    # installed code that cannot load this state: refused, nothing changes
    handover = package / "_handover.py"
    good = handover.read_text()
    supported = "SUPPORTED_VERSIONS = frozenset({1})"
    assert supported in good
    handover.write_text(good.replace(supported, "SUPPORTED_VERSIONS = frozenset({2})"))
    answer = daemon.call("daemon-reexec", timeout=60)
    assert answer["status"] == "error"
    assert "state version 1 is not supported by the installed circus-arbiter" in answer["reason"]
    assert "it loads version 2" in answer["reason"]
    assert daemon.pids("idle") == pids and daemon.proc.poll() is None
    assert "daemon-reexec: exec" not in daemon.output()

    # a config file edited into one that does not load (the new image would read it): refused
    handover.write_text(good)
    config = daemon.config.read_text()
    daemon.config.write_text(config + "\n[watcher:broken]\nnumprocesses = many\n")
    answer = daemon.call("daemon-reexec", timeout=60)
    assert answer["status"] == "error" and "config file does not load" in answer["reason"]
    assert daemon.pids("idle") == pids and "daemon-reexec: exec" not in daemon.output()
    # one edited but not applied: the new image would run it half (its [circus] part)
    daemon.config.write_text(config.replace("numprocesses = 3", "numprocesses = 4"))
    answer = daemon.call("daemon-reexec", timeout=60)
    assert answer["status"] == "error" and "changed since it was loaded" in answer["reason"]
    assert daemon.pids("idle") == pids and "daemon-reexec: exec" not in daemon.output()
    daemon.config.write_text(config)

    # changed code that can: it runs in the same pid, the children are kept
    for version, generation in (("v2", 1), ("v3", 2)):
        _mark(package, version)
        answer = daemon.call("daemon-reexec", timeout=60)
        assert answer["status"] == "ok" and answer["generation"] == generation, answer
        wait_until(lambda v=version: f"{pid} {v}" in (mark.read_text() if mark.exists() else ""),
                   60, f"circusd running the {version} code")  # fmt: skip
        wait_until(lambda g=generation: f"generation {g} serving" in daemon.output(), 60, "serving")
        assert daemon.pids("idle") == pids
        assert daemon.proc.pid == pid and daemon.proc.poll() is None
    assert daemon.stop() == 0

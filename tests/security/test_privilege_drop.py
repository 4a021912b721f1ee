"""As root: a child given ``uid``/``gid`` runs its very first instruction unprivileged and
cannot get root back (setuid(0) fails; every uid/gid dropped; no supplementary root group; no
capabilities).

The programs checked are ``cat /proc/self/status`` (no interpreter runs before the user's
program: what it prints is the state at exec time) and a Python child trying to regain root.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from circus.process import Process

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

USER = "nobody"
PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
UID = pwd.getpwnam(USER).pw_uid if os.geteuid() == 0 else -1
GID = pwd.getpwnam(USER).pw_gid if os.geteuid() == 0 else -1

REGAIN = r"""
import json, os
tried = {}
for name, call in [
    ("setuid", lambda: os.setuid(0)),
    ("seteuid", lambda: os.seteuid(0)),
    ("setreuid", lambda: os.setreuid(0, 0)),
    ("setgid", lambda: os.setgid(0)),
    ("setgroups", lambda: os.setgroups([0])),
]:
    try:
        call()
        tried[name] = "succeeded"
    except PermissionError:
        tried[name] = "refused"
print(json.dumps(tried), flush=True)
"""


def _output(proc: Process) -> str:
    assert proc.stdout is not None
    data = b""
    while chunk := os.read(proc.stdout, 65536):
        data += chunk
    proc.wait(30)
    proc.close()
    return data.decode()


def _status(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


@pytest.mark.parametrize("rlimits", [None, {"nofile": 256}], ids=["plain", "with-rlimits"])
def test_ids_dropped_before_the_program_runs(rlimits: Any) -> None:
    proc = Process("cat", 1, "cat /proc/self/status", uid=USER, gid=GID, rlimits=rlimits)
    status = _status(_output(proc))
    assert proc.returncode == 0
    # real, effective, saved and filesystem ids
    assert status["Uid"].split() == [str(UID)] * 4, status["Uid"]
    assert status["Gid"].split() == [str(GID)] * 4, status["Gid"]
    groups = status["Groups"].split()
    assert "0" not in groups, groups
    assert set(groups) <= {str(g.gr_gid) for g in grp.getgrall() if USER in g.gr_mem} | {str(GID)}
    for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(status[cap], 16) == 0, (cap, status[cap])


def test_child_cannot_regain_root() -> None:
    # the system interpreter: the venv may live where nobody cannot read
    proc = Process("regain", 1, PYTHON, args=["-c", REGAIN], uid=UID, gid=GID)
    tried = json.loads(_output(proc))
    assert tried == {
        "setuid": "refused",
        "seteuid": "refused",
        "setreuid": "refused",
        "setgid": "refused",
        "setgroups": "refused",
    }


def test_circusd_watcher_with_uid_cannot_regain_root(
    tmp_path: Path, circusd: Any, e2e: Any
) -> None:
    """The same through circusd: ``uid``/``gid`` in a watcher section."""
    # the script where nobody can read it (tmp_path's parents are root-only)
    with tempfile.TemporaryDirectory() as public:
        os.chmod(public, 0o755)
        script = Path(public) / "regain.py"
        script.write_text(REGAIN + "import time\ntime.sleep(300)\n")
        script.chmod(0o644)
        out = tmp_path / "regain.out"
        daemon = circusd(
            f"[watcher:w]\ncmd = {PYTHON} {script}\nuid = {USER}\ngid = {GID}\n"
            f"stdout_stream.class = FileStream\nstdout_stream.filename = {out}\n"
        )
        e2e.wait(lambda: out.exists() and out.read_text().endswith("\n"), 15, "the report")
        daemon.stop()
    tried = json.loads(out.read_text().splitlines()[0])
    assert set(tried.values()) == {"refused"}, tried

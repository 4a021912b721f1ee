"""A root circusd's FileStream in a log dir the app's user owns (``/srv/app/logs/out.log``).

circusd opens the file as root; the app's user may have put a link there first, to a file
only root may write (``/etc/cron.d/x``, ``/root/.ssh/authorized_keys``). The program's own
output would then be appended there, as root: a root shell for whoever runs the app. The
output must never land in the link's target.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a root circusd, a nobody app)"),
]

NOBODY = 65534


def test_output_never_follows_a_link_planted_in_the_log_dir(
    circusd: Any, tmp_path: Path, e2e: Any
) -> None:
    target = tmp_path / "authorized_keys"  # root only (pytest's tree is 0700)
    target.write_text("")
    target.chmod(0o600)
    public = Path(tempfile.mkdtemp(prefix="circus-filestream-", dir="/tmp"))
    try:
        public.chmod(0o755)
        logs = public / "logs"
        logs.mkdir()
        os.chown(logs, NOBODY, NOBODY)
        os.symlink(target, logs / "out.log")  # planted by the app's user (owner of logs/)
        os.lchown(logs / "out.log", NOBODY, NOBODY)
        daemon = circusd(
            "[watcher:app]\ncmd = /bin/sh -c 'echo ssh-ed25519 ATTACKER; exec sleep 300'\n"
            f"uid = nobody\nworking_dir = /\nstdout_stream.class = FileStream\n"
            f"stdout_stream.filename = {logs}/out.log\n"
        )
        # refused (said in circusd's log), or the app ran and its line was written
        e2e.wait(lambda: "not followed" in daemon.output() or _echoed(daemon), 30, "the outcome")
        daemon.stop()
        assert "ATTACKER" not in target.read_text(), "root appended the app's output"
    finally:
        shutil.rmtree(public, ignore_errors=True)


def _echoed(daemon: Any) -> bool:
    """The app runs and is asleep after its echo (the output hub has its line)."""
    pids = daemon.pids("app")
    return bool(pids) and "sleep" in Path(f"/proc/{pids[0]}/cmdline").read_text()


def test_rotation_never_truncates_through_a_link(tmp_path: Path) -> None:
    """``max_bytes`` without backups truncates the file at each rotation: a link swapped in
    meanwhile by the owner of the log dir must not aim that truncation at root's files."""
    from circus.process.streams import FileStream

    target = tmp_path / "shadow"
    target.write_text("root:secret\n")
    target.chmod(0o600)
    public = Path(tempfile.mkdtemp(prefix="circus-filestream-", dir="/tmp"))
    try:
        public.chmod(0o755)
        logs = public / "logs"
        logs.mkdir()
        os.chown(logs, NOBODY, NOBODY)
        path = logs / "out.log"
        stream = FileStream(str(path), max_bytes=10)
        try:
            stream({"data": b"123456\n", "pid": 1, "name": "stdout"})
            path.unlink()
            os.symlink(target, path)  # the app's user, owner of logs/
            os.lchown(path, NOBODY, NOBODY)
            try:
                stream({"data": b"abcdef\n", "pid": 1, "name": "stdout"})  # rotates
            except OSError:
                pass  # refused: what matters is the target
        finally:
            stream.close()
        assert target.read_text() == "root:secret\n", "truncated through the app's link"
    finally:
        shutil.rmtree(public, ignore_errors=True)

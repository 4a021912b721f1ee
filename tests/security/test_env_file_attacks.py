"""``env_file`` of a root circusd turned into something that is not a file.

Environment files often live in the app's own directory, writable by the app's user. That
user may replace one with a FIFO (an ``open()`` that never returns without a writer) or a
link to a device (``/dev/zero``: endless): the next start of the watcher must fail with the
option's error, and circusd must keep answering.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from circus.ctl.errors import CallTimeout
from circus.process.testing import wait_until

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the daemon the attack aims at)"),
]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_env_file_swapped_for_a_fifo_or_device(circusd: Any, tmp_path: Path, kind: str) -> None:
    env = tmp_path / "app.env"
    env.write_text("GREETING=hello\n")
    daemon = circusd(f"[watcher:w]\ncmd = /bin/sleep 300\nenv_file = {env}\n")
    assert len(daemon.pids("w")) == 1
    env.unlink()
    if kind == "fifo":
        os.mkfifo(env, 0o644)
    else:
        env.symlink_to("/dev/zero")
    try:
        answer = daemon.call("restart", name="w", timeout=15)
        # the start may come after the answer: refused, and said so, or circusd is stuck
        wait_until(lambda: "not a regular file" in daemon.output(), 20, "the refusal logged")
        assert daemon.call("numwatchers", timeout=10)["status"] == "ok"
    except CallTimeout:
        pytest.fail(f"circusd stopped answering: restart of a watcher whose env_file is a {kind}")
    assert daemon.pids("w") == [], answer


def test_the_apps_user_cannot_link_its_env_file_to_root_secrets(
    circusd: Any, tmp_path: Path
) -> None:
    """circusd reads env_file as root and gives its values to the watcher's processes, here
    running as nobody: a link nobody puts in place of its own env file may lead to a file of
    nobody's (a deploy's shared .env), never to root's secrets."""
    import shutil
    import tempfile

    secret = tmp_path / "root.env"  # root only (pytest's tree is 0700)
    secret.write_text("DB_PASSWORD=rootsecret\n")
    secret.chmod(0o600)
    public = Path(tempfile.mkdtemp(prefix="circus-envfile-", dir="/tmp"))
    try:
        public.chmod(0o755)
        app = public / "app"  # the app's own dir
        app.mkdir()
        os.chown(app, 65534, 65534)
        env = app / "app.env"
        env.write_text("DB_PASSWORD=apps-own\n")
        os.chown(env, 65534, 65534)
        shared = app / "shared.env"  # a file of the app's own, reached through its link
        shared.write_text("DB_PASSWORD=shared\n")
        os.chown(shared, 65534, 65534)
        report = app / "pw"
        daemon = circusd(
            f"[watcher:w]\ncmd = /bin/sh -c 'echo $DB_PASSWORD > {report}; exec sleep 300'\n"
            f"uid = nobody\nworking_dir = /\nenv_file = {env}\n"
        )
        wait_until(lambda: report.exists() and report.read_text() == "apps-own\n", 30, "started")

        def swap(to: Path) -> dict[str, Any]:
            env.unlink()
            env.symlink_to(to)
            os.lchown(env, 65534, 65534)  # made by the app's user
            report.unlink()
            return daemon.call("restart", name="w", timeout=30)

        swap(shared)
        wait_until(lambda: report.exists() and report.read_text() == "shared\n", 30, "shared")
        swap(secret)
        wait_until(lambda: "another user's link" in daemon.output() or report.exists(), 30, "done")
        leaked = report.read_text() if report.exists() else ""
        assert "rootsecret" not in leaked, "root's secret reached nobody's process"
        assert daemon.pids("w") == []
    finally:
        shutil.rmtree(public, ignore_errors=True)

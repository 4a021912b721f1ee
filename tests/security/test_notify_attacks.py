"""The sd_notify sockets of a root circusd's processes, attacked by an unprivileged user.

A process running as ``nobody`` gets a ``$NOTIFY_SOCKET`` in a dir of its own: it may send
to it, but must not be able to put anything in the dir (a tree deeper than Python's
recursion limit, or millions of entries, would be for circusd to remove, on its loop, as
root), and a process of that user outside the process's tree must not mark it ready.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from circus.process.testing import async_wait_until

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a root daemon, a nobody child)"),
]

NOBODY = 65534


def _system_python() -> str:
    py = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.access(py, os.X_OK):
        py = "/usr/bin/python3"
    if not os.access(py, os.X_OK):
        pytest.skip("no system python for the nobody process")
    return py


def _as_nobody(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_system_python(), "-c", code, *args],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


# nobody tries to build a 3,000-deep tree in the dir of its own socket
DEEP = r"""
import os, sys
try:
    os.chdir(os.path.dirname(sys.argv[1]))
    for _ in range(3000):
        os.mkdir("d")
        os.chdir("d")
    print("built")
except OSError as exc:
    print("refused", exc.errno)
"""


def test_a_nobody_process_cannot_fill_its_notify_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from circus.watcher._notify import NotifyDir

    monkeypatch.setenv("XDG_RUNTIME_DIR", "/tmp")
    notify = NotifyDir()
    channel = notify.channel(NOBODY)
    sub = Path(channel.path).parent
    try:
        done = _as_nobody(DEEP, channel.path)
    finally:
        try:
            channel.close()
            raised = None
        except BaseException as exc:  # noqa: BLE001 - the finding is what escaped
            raised = exc
    assert done.stdout.startswith("refused"), (done.stdout, done.stderr[-300:])
    assert raised is None, f"closing the channel raised {raised!r}"
    assert not sub.exists(), f"{sub} left behind"


SEND = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1\nSTATUS=forged", sys.argv[1])
print("sent")
"""


def test_a_process_outside_the_tree_cannot_mark_it_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same user (nobody), not a descendant of the process: the datagram is dropped."""
    from circus.watcher._notify import NotifyDir

    monkeypatch.setenv("XDG_RUNTIME_DIR", "/tmp")

    async def main(victim: int) -> tuple[list[dict[str, str]], int, str]:
        notify = NotifyDir()
        channel = notify.channel(NOBODY)
        seen: list[dict[str, str]] = []
        try:
            channel.attach(victim, lambda _pid, fields: seen.append(fields))
            done = await asyncio.to_thread(_as_nobody, SEND, channel.path)
            await async_wait_until(lambda: channel.dropped >= 1, 20, "the datagram read")
            return seen, channel.dropped, done.stdout
        finally:
            channel.close()

    with subprocess.Popen(
        ["/bin/sleep", "300"], user=NOBODY, group=NOBODY, extra_groups=[], cwd="/"
    ) as victim:
        try:
            seen, dropped, out = asyncio.run(main(victim.pid))
        finally:
            victim.kill()
    assert out.strip() == "sent"
    assert seen == [] and dropped == 1

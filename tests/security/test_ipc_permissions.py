"""ipc endpoints are owner-only (mode 0600), whatever the umask circusd runs with."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest


@pytest.mark.parametrize("umask", [None, "000"], ids=["default-umask", "umask-000"])
def test_control_pubsub_and_stats_sockets_are_0600(
    tmp_path: Path, circusd: Any, umask: str | None
) -> None:
    body = f"[circus]\nstats_endpoint = ipc://{tmp_path}/stats\nstatsd = true\n"
    if umask is not None:
        body += f"umask = {umask}\n"
    daemon = circusd(body)
    for name in ("ctl", "pub", "stats"):
        path = tmp_path / name
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        assert mode == 0o600, f"{name}: {oct(mode)}"
    assert daemon.call("numwatchers")["status"] == "ok"
    daemon.stop()
    # and they are removed at exit
    assert not any((tmp_path / name).exists() for name in ("ctl", "pub", "stats"))

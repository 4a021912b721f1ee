"""Upstream Circus 0.19's Flapping plugin, run by its own ``circus-plugin`` against OUR circusd,
detects a watcher whose processes keep dying and stops it.

The plugin counts ``reap`` events and reads the watcher's ``options`` answer, taking every
``flapping.*`` key there as a per-watcher override: an answer listing our defaults
(``flapping.active = false``) switched it off for every watcher.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from circus.process.testing import wait_until

pytestmark = [pytest.mark.interop, pytest.mark.slow]

# Dies 0.2 s after it starts, respawned at once (no backoff): reaps keep coming whenever the
# plugin's subscription starts, two of them well inside its window.
CRASHER = f"{sys.executable} -c 'import time; time.sleep(0.2); raise SystemExit(3)'"


def test_upstream_flapping_plugin_stops_our_flapping_watcher(
    upstream_circus: Any, circusd: Any, tmp_path: Path
) -> None:
    daemon = circusd(
        f"""
[watcher:crasher]
cmd = {CRASHER}
autostart = false
backoff_initial = 0
graceful_timeout = 2
"""
    )
    log = tmp_path / "plugin.log"
    plugin_argv = [
        str(upstream_circus.venv / "bin" / "circus-plugin"),
        "--endpoint",
        daemon.endpoint,
        "--pubsub",
        daemon.pubsub,
        "--check-delay",
        "1",
        "--log-output",
        str(log),
        "--log-level",
        "info",
        "circus.plugins.flapping.Flapping",
    ]
    with open(tmp_path / "plugin.out", "wb") as out:
        plugin = subprocess.Popen(plugin_argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        assert daemon.call("start", name="crasher")["status"] == "ok"
        wait_until(
            lambda: daemon.call("status", name="crasher")["status"] == "stopped",
            60,
            "upstream's Flapping plugin to stop the crash-looping watcher",
        )
        wait_until(
            lambda: log.exists() and "flapping detected" in log.read_text(),
            20,
            "the plugin to log its detection",
        )
    finally:
        plugin.kill()
        plugin.wait(10)

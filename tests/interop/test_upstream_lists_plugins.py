"""Upstream's ``circusctl`` sees our ``[plugin:NAME]`` watchers as it sees its own."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

CONFIG = f"""
[watcher:w]
cmd = {sys.executable} -c 'import time; time.sleep(300)'
graceful_timeout = 5

[plugin:flapping]
use = circus.plugins.flapping.Flapping
"""


def test_upstream_circusctl_lists_the_plugin_watcher(upstream_circus: Any, circusd: Any) -> None:
    daemon = circusd(CONFIG)
    argv = [str(upstream_circus.circusctl), "--endpoint", daemon.endpoint, "--timeout", "10"]

    def run(*args: str) -> str:
        done = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done
        return done.stdout.strip()

    assert run("list") == "plugin:flapping,w"
    assert "plugin:flapping: active" in run("status").splitlines()

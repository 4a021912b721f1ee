"""circus.arbiter.config stays import-light: no zmq, tornado, psutil, asyncio or lower layers,
except the watcher's ceilings table, its option table and its parsers (standard library only:
option values, env files, probe addresses)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "upstream-0.19.ini"

# The daemon's own circus/arbiter/__init__.py may import heavy things; the config subpackage
# must not, so the probe loads it under a bare stand-in for its parent package.
PROBE = f"""
import importlib.util, sys, types
spec = importlib.util.find_spec("circus.arbiter")
parent = types.ModuleType("circus.arbiter")
parent.__path__ = list(spec.submodule_search_locations)
sys.modules["circus.arbiter"] = parent
from circus.arbiter.config import load_config
load_config({str(EXAMPLE)!r}, environ={{}})
heavy = ("zmq", "tornado", "psutil", "asyncio", "circus.watcher", "circus.sockets",
         "circus.process", "circus.ctl")
allowed = ("circus.watcher", "circus.watcher._limits", "circus.watcher._errors",
           "circus.watcher._options", "circus.watcher._option_types", "circus.watcher._convert",
           "circus.watcher._envfile", "circus.watcher._probe_spec")
print(sorted(name for name in sys.modules if name not in allowed and (
    name.split(".")[0] in heavy or any(name == h or name.startswith(h + ".") for h in heavy))))
"""


def test_loading_a_config_imports_nothing_heavy() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr

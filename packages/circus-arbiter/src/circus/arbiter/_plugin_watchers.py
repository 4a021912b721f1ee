"""``[plugin:NAME]`` sections run as upstream runs them: one singleton watcher per plugin.

Each plugin becomes a watcher named after its section (``plugin:flapping``), priority 1,
``copy_env``/``copy_path`` on, running ``python -m circus.arbiter.circus_plugin`` with the
daemon's endpoints, ``check_delay``, log level (and log file), one ``--config KEY=VALUE``
per plugin option and the plugin's class. So a plugin is listed, stopped, restarted and
respawned like any watcher, and a crashing plugin cannot take circusd down.

Only ``priority`` (a watcher option) goes to the watcher; ``use``, ``name`` and ``active``
are not plugin options; every other key goes to the plugin. With CURVE on, the plugin
connects with circusd's own key files, as the ``httpd`` dashboard does (that key is always
authorized); only the file names are on its command line, never a key.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["WATCHER_KEYS", "is_active", "plugin_watcher"]

# Keys of a plugin section that configure its watcher, not the plugin.
WATCHER_KEYS = frozenset({"priority"})
_NOT_OPTIONS = frozenset({"name", "use", "active"}) | WATCHER_KEYS
# log outputs that are the plugin process's own stdout/stderr (forwarded by circusd anyway)
_STDIO = frozenset({"-", "stdout", "stderr"})
_LEVELS = {"debug", "info", "warning", "warn", "error", "critical"}


def is_active(spec: Mapping[str, Any]) -> bool:
    """False when the section says ``active = false`` (no watcher is made for it)."""
    return spec.get("active", True) not in (False, "false", "0", "no", "off")


def plugin_watcher(
    spec: Mapping[str, Any],
    endpoint: str,
    pubsub_endpoint: str,
    check_delay: float,
    loglevel: str | None = None,
    logoutput: str | None = None,
    curve_files: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The watcher spec running the plugin ``spec`` (``{"name", "use", **options}``).

    ``name`` is the watcher's name as given (``plugin:NAME`` from a config file; upstream
    falls back to ``use`` when it is missing). ``curve_files``: circusd's ``(secret key
    file, public key file)`` when CURVE is on.
    """
    use = str(spec["use"])
    args = [
        "-P",  # not the working directory (maybe another user's) first on sys.path: root runs it
        "-m",
        "circus.arbiter.circus_plugin",
        "--endpoint",
        endpoint,
        "--pubsub",
        pubsub_endpoint,
        "--check-delay",
        str(float(check_delay)),
    ]
    if loglevel and loglevel.lower() in _LEVELS:
        level = loglevel.lower()
        args += ["--log-level", "warning" if level == "warn" else level]
    if logoutput and logoutput not in _STDIO:
        args += ["--log-output", logoutput]
    if curve_files is not None:
        args += ["--curve-key", curve_files[0], "--curve-server-key", curve_files[1]]
    for key, value in spec.items():
        if key not in _NOT_OPTIONS:
            args += ["--config", f"{key}={value}"]
    args.append(use)
    return {
        "name": str(spec.get("name") or use),
        "cmd": sys.executable,
        "args": shlex.join(args),
        "singleton": True,
        "numprocesses": 1,
        "priority": int(spec.get("priority", 1)),
        "copy_env": True,
        "copy_path": True,
    }

"""daemon-reexec attacked through circusd's working directory.

A root circusd started from a directory another user can write (``cd /srv/app && circusd
circus.ini``, the app's user owning /srv/app) must never import code from it: the console
script ``circusd`` puts its own bin dir first on ``sys.path``, not the working directory. The
dry run of a ``daemon-reexec`` is a separate interpreter of the installed code: if it ran
``python -m ...`` with the working directory first on its path, that user's
``circus/arbiter/__init__.py`` would run as root at the admin's next upgrade.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from circus.process.testing import wait_until

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a root circusd, a nobody attacker)"),
]

NOBODY = 65534

PLANTED = """\
import os
with open(os.path.join(os.path.dirname(__file__), "..", "..", "PWNED"), "w") as fh:
    fh.write("uid=%d\\n" % os.geteuid())
raise ImportError("planted")
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory under /tmp owned by nobody (the app user's checkout)."""
    path = Path(tempfile.mkdtemp(prefix="circus-cwd-attack-", dir="/tmp"))
    os.chown(path, NOBODY, NOBODY)
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_dry_run_never_imports_from_circusds_working_dir(shared_dir: Path, circusd: Any) -> None:
    daemon_class = type(circusd("", start=False))  # the e2e Daemon, run in the shared dir
    daemon = daemon_class(shared_dir, "")
    try:
        daemon.start()
        # nobody plants a circus.arbiter package in the daemon's working directory
        plant = (
            "import os\n"
            "os.makedirs('circus/arbiter', exist_ok=True)\n"
            f"open('circus/arbiter/__init__.py', 'w').write({PLANTED!r})\n"
        )
        subprocess.run(
            ["/usr/bin/python3", "-c", plant],
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            cwd=shared_dir,
            env={"PATH": "/usr/bin:/bin"},
            check=True,
            timeout=30,
        )
        assert (shared_dir / "circus/arbiter/__init__.py").exists()
        answer = daemon.call("daemon-reexec", timeout=90)
        pwned = shared_dir / "PWNED"
        assert not pwned.exists(), (
            f"the dry run ran another user's code as {pwned.read_text().strip()}: {answer}"
        )
        assert answer["status"] == "ok", answer
    finally:
        daemon.stop()


def test_plugin_watchers_never_import_from_circusds_working_dir(
    shared_dir: Path, circusd: Any
) -> None:
    """The same for the ``[plugin:x]`` watchers circusd runs as root with ``python -m``."""
    (shared_dir / "circus/arbiter").mkdir(parents=True)
    (shared_dir / "circus/arbiter/__init__.py").write_text(PLANTED)
    for path in (shared_dir / "circus", shared_dir / "circus/arbiter"):
        os.chown(path, NOBODY, NOBODY)
    daemon_class = type(circusd("", start=False))
    daemon = daemon_class(
        shared_dir,
        "[watcher:w]\ncmd = /bin/sleep 300\n\n"
        "[plugin:flapping]\nuse = circus.plugins.flapping.Flapping\n",
    )
    try:
        daemon.start()

        def plugin_connected() -> bool:
            pids = daemon.pids("plugin:flapping")
            if (shared_dir / "PWNED").exists() or not pids:
                return (shared_dir / "PWNED").exists()
            links = []
            try:
                for fd in os.listdir(f"/proc/{pids[0]}/fd"):
                    links.append(os.readlink(f"/proc/{pids[0]}/fd/{fd}"))
            except OSError:  # the process or one of its descriptors went meanwhile
                return False
            return sum(link.startswith("socket:") for link in links) >= 2

        wait_until(plugin_connected, 30, "the plugin connected (or the planted code run)")
        pwned = shared_dir / "PWNED"
        assert not pwned.exists(), f"the plugin ran another user's code as {pwned.read_text()}"
    finally:
        daemon.stop()

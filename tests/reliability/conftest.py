"""Makes ``flood`` (shared with ``tests/chaos/soak.py``) importable by these tests."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402

import pytest  # noqa: E402
from circus.process.testing import wait_until  # noqa: E402

CIRCUSD = str(Path(sys.executable).with_name("circusd"))


class QuietDaemon:
    """A circusd (one sleeping watcher) shared by a module's tests; ``endpoint`` to talk to."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.endpoint = f"ipc://{directory}/ctl"
        config = directory / "circus.ini"
        config.write_text(
            f"[circus]\nendpoint = {self.endpoint}\npubsub_endpoint = ipc://{directory}/pub\n"
            f"loglevel = info\n\n[watcher:sleeper]\n"
            f"cmd = {sys.executable} -c 'import time; time.sleep(600)'\nnumprocesses = 1\n"
        )
        self.log = directory / "circusd.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [CIRCUSD, str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=directory
            )
        sock_path = self.endpoint[len("ipc://") :]
        wait_until(self._listening(sock_path), 30, "circusd to bind its control socket")

    def _listening(self, sock_path: str) -> Callable[[], bool]:
        def listening() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"circusd did not start: {self.log.read_text()}")
            return os.path.exists(sock_path)

        return listening

    def alive(self) -> bool:
        """circusd still runs."""
        return self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM and reap circusd (SIGKILL if it hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


@pytest.fixture(scope="module")
def quiet_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuietDaemon]:
    """One circusd for the whole module (hypothesis runs many examples against it)."""
    daemon = QuietDaemon(tmp_path_factory.mktemp("daemon"))
    yield daemon
    assert daemon.stop() == 0, daemon.log.read_text()

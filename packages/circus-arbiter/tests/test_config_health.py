"""readiness/liveness options in an INI file: read through the option table, bad values and
probes naming no [socket:] are errors with file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from circus.arbiter.config import ConfigError, load_config

HEAD = """
[circus]
endpoint = ipc://{tmp}/ctl
pubsub_endpoint = ipc://{tmp}/pub

[socket:web]
host = 127.0.0.1
port = 0

[watcher:a]
cmd = sleep 100
"""


def _load(tmp_path: Path, body: str) -> dict[str, object]:
    path = tmp_path / "circus.ini"
    path.write_text(textwrap.dedent(HEAD).format(tmp=tmp_path) + textwrap.dedent(body))
    (watcher,) = load_config(str(path)).watchers
    return dict(watcher.options)


def test_health_options_are_read(tmp_path: Path) -> None:
    kwargs = _load(
        tmp_path,
        """
        readiness = http://$(circus.sockets.web)/health
        readiness_timeout = 12.5
        liveness = notify
        watchdog_sec = 3
        liveness_failures = 2
        """,
    )
    assert kwargs["readiness"] == "http://$(circus.sockets.web)/health"
    assert kwargs["liveness"] == "notify"
    from circus.watcher import Watcher

    w = Watcher("a", "sleep 1", **{k: v for k, v in kwargs.items() if k not in ("name", "cmd")})
    assert (w.settings.readiness_timeout, w.settings.watchdog_sec) == (12.5, 3.0)
    assert w.settings.liveness_failures == 2 and w.has_readiness


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("readiness = udp://x:1", "readiness = 'udp://x:1': expected notify, tcp://HOST:PORT"),
        (
            "liveness = tcp://$(circus.sockets.nope)",
            "liveness = 'tcp://$(circus.sockets.nope)': expected a [socket:NAME]",
        ),
        ("readiness_timeout = 0", "readiness_timeout = '0': expected a number of seconds >= 0.01"),
        ("liveness_failures = 0", "liveness_failures = '0': expected an integer >= 1"),
        ("watchdog_sec = -1", "watchdog_sec = '-1'"),
    ],
)
def test_bad_health_options_name_file_and_line(tmp_path: Path, line: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, line + "\n")
    assert f"circus.ini:12: [watcher:a] {words}" in str(caught.value)

"""Upstream Circus 0.19's own parser and ours agree on examples/upstream-0.19.ini.

Runs upstream's ``circus.config.get_config`` in its separate venv (built once by
``circus.ctl.testing.upstream``; skipped when it cannot be provided) and compares what both
parsers make of the same file, modulo the documented differences (module docstring of
``circus.arbiter.config``).
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from circus.arbiter.config import ConfigWarning, load_config

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "upstream-0.19.ini"
QUIRKS = Path(__file__).resolve().parent / "configs" / "quirks.ini"

DUMP = """
import json, sys
from circus.config import get_config
print(json.dumps(get_config(sys.argv[1]), default=str))
"""


@pytest.fixture(scope="module")
def upstream() -> Any:
    from circus.ctl.testing.upstream import UpstreamUnavailable, ensure_upstream

    try:
        return ensure_upstream()
    except UpstreamUnavailable as exc:
        pytest.skip(str(exc))


def _upstream_config(upstream: Any, path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [str(upstream.python), "-c", DUMP, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/bin", "HOME": "/nonexistent"},
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def upstream_config(upstream: Any) -> dict[str, Any]:
    return _upstream_config(upstream, EXAMPLE)


@pytest.mark.interop
def test_circus_section_agrees(upstream_config: dict[str, Any]) -> None:
    ours = load_config(EXAMPLE, environ={"PATH": "/bin"}).circus
    for key in ("endpoint", "pubsub_endpoint", "stats_endpoint", "check_delay", "statsd"):
        assert getattr(ours, key) == upstream_config[key], key
    assert ours.umask == upstream_config["umask"]
    assert ours.loglevel == upstream_config["loglevel"].lower()
    assert upstream_config["multicast_endpoint"] == "" and ours.multicast_endpoint is None
    for key in ("pidfile", "logoutput", "fqdn_prefix", "httpd_port", "debug", "warmup_delay"):
        assert getattr(ours, key) == upstream_config[key], key


def _signum(value: int | str) -> int:
    # json.dumps(default=str) renders a Signals member as "Signals.SIGTERM".
    if isinstance(value, int):
        return value
    return int(getattr(signal, value.rsplit(".", 1)[-1]))


def _stream(conf: dict[str, Any] | None) -> dict[str, str]:
    conf = dict(conf or {})
    conf.pop("refresh_time", None)
    if conf and "class" not in conf:
        conf["class"] = "FileStream"
    return {key: str(value) for key, value in conf.items()}


_SPECIAL = {"__name__", "env", "args", "hooks", "stop_signal", "stdout_stream", "stderr_stream"}


def assert_watchers_agree(ours: dict[str, dict[str, Any]], theirs: dict[str, Any]) -> None:
    """Every key upstream produced has the same value on our side (modulo documented fixes)."""
    assert ours.keys() == theirs.keys()
    for name, mine in ours.items():
        up = theirs[name]
        for key, value in up.items():
            if key in _SPECIAL:
                continue
            # Upstream leaves free-form values (max_age...) as strings; we type known ones.
            assert mine[key] == value or str(mine[key]) == str(value), (name, key)
        assert (mine["args"] or "") == up["args"], name
        assert mine["stop_signal"] == _signum(up["stop_signal"]), name
        assert {k: list(v) for k, v in mine["hooks"].items()} == up["hooks"], name
        # Upstream stringifies stream options and keeps utc as the text "False".
        assert _stream(mine["stdout_stream"]) == _stream(up["stdout_stream"]), name
        assert _stream(mine["stderr_stream"]) == _stream(up["stderr_stream"]), name
        # Upstream leaks __name__ into env and merges os.environ when copy_env is set.
        for key, value in mine["env"].items():
            assert up["env"][key] == value, (name, key)
        assert "__name__" in up["env"] and "__name__" not in mine["env"]
        assert "__name__" not in mine


@pytest.mark.interop
def test_watchers_agree(upstream_config: dict[str, Any]) -> None:
    ours = {w.name: w.kwargs for w in load_config(EXAMPLE, environ={"PATH": "/bin"}).watchers}
    assert_watchers_agree(ours, {w["name"]: w for w in upstream_config["watchers"]})


@pytest.mark.interop
def test_reader_quirks_agree(upstream: Any) -> None:
    theirs = _upstream_config(upstream, QUIRKS)
    with pytest.warns(ConfigWarning, match=r"quirks.ini:12: \[watcher:Dup\] numprocesses"):
        config = load_config(QUIRKS, environ={})
    assert config.circus.endpoint == theirs["endpoint"] == "tcp://127.0.0.1:5998"
    assert config.circus.check_delay == theirs["check_delay"] == 2.0
    ours = {w.name: w.kwargs for w in config.watchers}
    assert_watchers_agree(ours, {w["name"]: w for w in theirs["watchers"]})
    assert ours["Dup"]["numprocesses"] == 3
    assert ours["Dup"]["multi"] == "line one\nline two"
    assert ours["Alpha"]["cmd"] == "run 6000 6000 $(circus.env.UNKNOWN_XYZ)"


@pytest.mark.interop
def test_sockets_and_plugins_agree(upstream_config: dict[str, Any]) -> None:
    config = load_config(EXAMPLE, environ={"PATH": "/bin"})
    theirs = {s["name"]: s for s in upstream_config["sockets"]}
    assert {s.name for s in config.sockets} == theirs.keys()
    for sock in config.sockets:
        up = theirs[sock.name]
        for key in ("host", "port", "backlog", "path"):
            if key in up:
                assert str(sock.kwargs[key]) == str(up[key]), (sock.name, key)
    # The documented difference: umask is octal here, decimal upstream.
    assert theirs["input"]["umask"] == "022" and config.socket("input").kwargs["umask"] == 0o22
    plugins = {p["name"]: p for p in upstream_config["plugins"]}
    assert {f"plugin:{p.name}" for p in config.plugins} == plugins.keys()
    for plugin in config.plugins:
        up = dict(plugins[f"plugin:{plugin.name}"])
        assert plugin.use == up.pop("use")
        up.pop("name")
        up.pop("__name__")
        assert plugin.options == {key: str(value) for key, value in up.items()}

"""The [circus] section (spec/config.md §3)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from circus.arbiter.config import ConfigError, ConfigWarning, DaemonConfig, load_config


def write(tmp_path: Path, text: str, name: str = "circus.ini") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_defaults_without_a_circus_section(tmp_path: Path) -> None:
    circus = load_config(write(tmp_path, "[watcher:w]\ncmd = run\n")).circus
    assert circus == DaemonConfig()
    assert circus.endpoint == "tcp://127.0.0.1:5555"
    assert circus.pubsub_endpoint == "tcp://127.0.0.1:5556"
    assert circus.stats_endpoint == "tcp://127.0.0.1:5557"
    assert circus.multicast_endpoint is None  # our safe default: discovery off
    assert circus.check_delay == 5.0
    assert circus.warmup_delay == 0.0
    assert circus.statsd is False
    assert circus.httpd is False
    assert circus.httpd_host == "localhost"
    assert circus.httpd_port == 8080
    assert circus.umask is None
    assert circus.loglevel == "info"
    assert circus.logoutput == "-"
    assert circus.pidfile is None
    assert circus.on_crash == "adopt"
    assert circus.runtime_dir is None
    assert circus.endpoint_owner is None
    assert circus.debug is False
    assert circus.include == ()


def test_every_option_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # httpd on 0.0.0.0 needs a login token; the dashboard takes it from circusd's environment.
    monkeypatch.setenv("CIRCUSHTTPD_TOKEN", "a-token-of-sixteen-or-more")
    path = write(
        tmp_path,
        """
        [circus]
        endpoint = ipc:///tmp/x/ctrl.sock
        endpoint_owner = nobody
        unauthenticated_access = Operate
        max_connections = 200
        spawn_thread = Off
        pubsub_endpoint = tcp://127.0.0.1:7001
        stats_endpoint = tcp://127.0.0.1:7002
        statsd = yes
        statsd_close_outputs = on
        multicast_endpoint = udp://237.219.251.97:12027
        check_delay = 0.5
        warmup_delay = 0.25
        umask = 027
        pidfile = /tmp/circusd.pid
        on_crash = Replace
        runtime_dir = /run/user/1000/circus
        loglevel = DEBUG
        logoutput = syslog:///dev/log?local0
        loggerconfig = default
        debug = true
        debug_gc = 1
        httpd = true
        httpd_host = 0.0.0.0
        httpd_port = 9000
        httpd_close_outputs = true
        fqdn_prefix = prod
        stream_backend = thread
        """,
    )
    circus = load_config(path).circus
    assert circus.as_dict() == {
        "endpoint": "ipc:///tmp/x/ctrl.sock",
        "endpoint_owner": "nobody",
        "unauthenticated_access": "operate",
        "max_connections": 200,
        "spawn_thread": None,
        "pubsub_endpoint": "tcp://127.0.0.1:7001",
        "stats_endpoint": "tcp://127.0.0.1:7002",
        "statsd": True,
        "statsd_close_outputs": True,
        "multicast_endpoint": "udp://237.219.251.97:12027",
        "check_delay": 0.5,
        "warmup_delay": 0.25,
        "umask": 0o027,
        "pidfile": "/tmp/circusd.pid",
        "on_crash": "replace",
        "runtime_dir": "/run/user/1000/circus",
        "loglevel": "debug",
        "logoutput": "syslog:///dev/log?local0",
        "loggerconfig": "default",
        "debug": True,
        "debug_gc": True,
        "httpd": True,
        "httpd_host": "0.0.0.0",
        "httpd_port": 9000,
        "httpd_close_outputs": True,
        "fqdn_prefix": "prod",
        "stream_backend": "thread",
        "include": (),
        "include_dir": (),
        "extra": {},
    }


def test_empty_multicast_endpoint_disables_discovery(tmp_path: Path) -> None:
    path = write(tmp_path, "[circus]\nmulticast_endpoint =\n")
    assert load_config(path).circus.multicast_endpoint is None


def test_fractional_warmup_delay_is_accepted(tmp_path: Path) -> None:
    """Upstream refused warmup_delay = 0.5 with a fatal parse error."""
    path = write(tmp_path, "[circus]\nwarmup_delay = 0.5\n")
    assert load_config(path).circus.warmup_delay == 0.5


def test_stats_endpoint_implies_statsd_unless_explicit(tmp_path: Path) -> None:
    path = write(tmp_path, "[circus]\nstats_endpoint = tcp://127.0.0.1:7002\n")
    with pytest.warns(ConfigWarning, match="circus.ini:2: .*turns statsd on"):
        assert load_config(path).circus.statsd is True
    path = write(tmp_path, "[circus]\nstats_endpoint = tcp://127.0.0.1:7002\nstatsd = false\n")
    assert load_config(path).circus.statsd is False


def test_unknown_keys_kept_in_extra_and_typos_warned(tmp_path: Path) -> None:
    path = write(tmp_path, "[circus]\nmy_tool_key = 1\ncheck_dealy = 2\n")
    with pytest.warns(ConfigWarning, match=r"circus.ini:3: .*check_dealy.*'check_delay'") as rec:
        circus = load_config(path)
    assert len(rec) == 1
    assert circus.circus.extra == {"my_tool_key": "1", "check_dealy": "2"}
    assert circus.circus.check_delay == 5.0


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("check_delay = soon", "expected a number of seconds"),
        ("warmup_delay = -1", "expected a number of seconds >= 0"),
        ("statsd = maybe", "expected a boolean"),
        ("umask = 099", "expected an octal file mode mask"),
        ("endpoint = localhost:5555", "expected a ZeroMQ endpoint"),
        ("multicast_endpoint = 237.1.1.1", "expected udp://GROUP:PORT"),
        ("loglevel = verbose", "expected one of debug, info, warning, error, critical"),
        ("httpd_port = 70000", "expected a port number"),
        ("unauthenticated_access = write", "expected read, operate or full"),
        ("on_crash = ignore", "expected adopt or replace"),
        ("spawn_thread = on", "expected auto, off or a whole number of open descriptors"),
        ("spawn_thread = -1", "expected auto, off or a whole number of open descriptors"),
        ("spawn_thread = 4k", "expected auto, off or a whole number of open descriptors"),
    ],
)
def test_bad_values(tmp_path: Path, line: str, expected: str) -> None:
    path = write(tmp_path, f"[circus]\n# comment\n{line}\n")
    option, _, value = line.partition(" = ")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: [circus] {option} = {value!r}: ")
    assert expected in message
    assert (info.value.section, info.value.option, info.value.value) == ("circus", option, value)


def test_spawn_thread(tmp_path: Path) -> None:
    from circus.process import DEFAULT_SPAWN_THREAD_FROM

    # auto (the default) is circus.process's own default threshold
    assert DaemonConfig().spawn_thread == DEFAULT_SPAWN_THREAD_FROM == 4096
    for text, value in (("auto", 4096), ("AUTO", 4096), ("off", None), ("0", 0), ("20000", 20000)):
        path = write(tmp_path, f"[circus]\nspawn_thread = {text}\n")
        assert load_config(path).circus.spawn_thread == value, text


def test_env_expansion_in_circus_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [circus]
        endpoint = tcp://127.0.0.1:$(circus.env.myport)
        pubsub_endpoint = tcp://127.0.0.1:((circus.env.PUBPORT))
        [env]
        myport = 5999
        """,
    )
    circus = load_config(path, environ={"PUBPORT": "6001"}).circus
    assert circus.endpoint == "tcp://127.0.0.1:5999"
    assert circus.pubsub_endpoint == "tcp://127.0.0.1:6001"

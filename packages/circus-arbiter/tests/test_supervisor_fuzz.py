"""Garbage supervisord.conf files: loading one either works or raises ConfigError (never
another exception), and whatever loads converts to Circus INI that loads back the same."""

from __future__ import annotations

import warnings
from pathlib import Path

from circus.arbiter.config import ConfigError, load_config
from circus.arbiter.supervisor import ConvertError, load_supervisor, to_circus_ini
from circus.arbiter.supervisor._program import FCGI_OPTIONS, PROGRAM_OPTIONS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SECTIONS = ["supervisord", "program:a", "program:b", "fcgi-program:f", "group:g", "include",
            "program:a b", "unix_http_server", "weird", "circus"]  # fmt: skip
OPTIONS = [*PROGRAM_OPTIONS, *FCGI_OPTIONS, "programs", "files", "nodaemon", "logfile",
           "childlogdir", "user", "environment", "minfds", "loglevel", "endpoint",
           "bogus"]  # fmt: skip
VALUES = ["", "%", "%(", "%(here)s", "%(process_num)02d", "%(program_name)s_%(process_num)d",
          "%(ENV_HOME)s", "%(nope)s", "%%", "abc", "-1", "0", "1", "3", "99999999999999999999",
          "'", '"', "a=b", 'A="x,y",B=2', "A=1,B", "unexpected", "true", "no", "0o777", "022",
          "/dev/stdout", "/dev/fd/2", "NONE", "AUTO", "syslog", "tcp://127.0.0.1:9", "tcp://x",
          "unix://rel", "unix:///tmp/%(program_name)s.sock", "1MB", "2gb", "TERM", "SIGRTMIN",
          "root", "nobody", "a,b,g", "x ; y", "sh -c 'a ; b'", "$(circus.env.HOME)", "$HOME",
          "ipc:///tmp/x", "a\\", "*.conf", "../*", "\u00e9", " spaced "]  # fmt: skip

line = st.one_of(
    st.sampled_from(SECTIONS).map(lambda s: f"[{s}]"),
    st.tuples(st.sampled_from(OPTIONS), st.sampled_from(VALUES)).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.sampled_from(["; comment", "  continued", "", "command=true"]),
)
garbage = st.sampled_from(["garbage line", "[", "[]", "=x", "\t\tx"])


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(st.one_of(line, line, line, line, line, line, line, garbage), max_size=25))
def test_garbage_loads_or_is_a_config_error(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "supervisord.conf"
    path.write_text("[supervisord]\nnodaemon=true\n" + "\n".join(lines) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            config = load_supervisor(path, environ={"HOME": "/root"})
        except ConfigError as exc:
            assert str(exc).startswith(str(path)), exc  # always says where
            return
        try:
            text = to_circus_ini(config)
        except ConvertError:
            return
        ini = tmp_path / "circus.ini"
        ini.write_text(text)
        back = load_config(ini, format="circus", environ={"HOME": "/root"})
    assert back.watchers == config.config.watchers
    assert back.sockets == config.config.sockets

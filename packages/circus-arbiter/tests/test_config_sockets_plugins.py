"""[socket:NAME] (spec/config.md §5), [plugin:NAME] (§8) and references to sockets."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest
from circus.arbiter.config import ConfigError, ConfigWarning, load_config


def write(tmp_path: Path, text: str, name: str = "circus.ini") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


SOCKET_DEFAULTS = {
    "name": "web",
    "host": "localhost",
    "port": 8080,
    "family": socket.AF_INET,
    "type": socket.SOCK_STREAM,
    "proto": 0,
    "backlog": 2048,
    "path": None,
    "umask": 8,
    "replace": False,
    "interface": None,
    "so_reuseport": False,
    "blocking": False,
}


def test_socket_defaults_and_lowercase_name(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[socket:WeB]\nhost = localhost\n"))
    assert config.sockets[0].name == "web"
    assert config.sockets[0].kwargs == SOCKET_DEFAULTS
    assert config.socket("WEB") is config.sockets[0]


def test_socket_every_option(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [socket:web]
        host = ::1
        port = 0
        family = AF_INET6
        type = sock_dgram
        proto = udp
        backlog = 10
        replace = true
        interface = lo
        so_reuseport = yes
        blocking = on
        """,
    )
    assert load_config(path).sockets[0].kwargs == {
        **SOCKET_DEFAULTS,
        "host": "::1",
        "port": 0,
        "family": socket.AF_INET6,
        "type": socket.SOCK_DGRAM,
        "proto": socket.IPPROTO_UDP,
        "backlog": 10,
        "replace": True,
        "interface": "lo",
        "so_reuseport": True,
        "blocking": True,
    }


def test_unix_socket_path_and_octal_umask(tmp_path: Path) -> None:
    """Upstream read umask = 022 as decimal 22 (0o026); it is octal here."""
    path = write(tmp_path, "[socket:u]\npath = /tmp/x.sock\numask = 022\n")
    kwargs = load_config(path).sockets[0].kwargs
    assert kwargs["family"] == socket.AF_UNIX
    assert kwargs["path"] == "/tmp/x.sock"
    assert kwargs["umask"] == 0o022


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("port = http", "expected a port number between 0 and 65535"),
        ("port = 65536", "expected a port number between 0 and 65535"),
        ("family = AF_APPLETALK", "expected one of AF_INET, AF_INET6, AF_UNIX"),
        ("type = SOCK_WHATEVER", "expected one of SOCK_STREAM"),
        ("proto = nosuchproto", "expected a protocol name"),
        ("backlog = -1", "expected an integer >= 0"),
        ("umask = 9", "expected an octal file mode mask"),
        ("blocking = sometimes", "expected a boolean"),
        ("family = AF_UNIX", "AF_UNIX needs a path"),
    ],
)
def test_socket_bad_values(tmp_path: Path, line: str, expected: str) -> None:
    option, _, value = line.partition(" = ")
    path = write(tmp_path, f"[socket:s]\nhost = 127.0.0.1\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:3: [socket:s] {option} = {value!r}: ")
    assert expected in str(info.value)


def test_socket_typo_warns_and_duplicates_fail(tmp_path: Path) -> None:
    with pytest.warns(ConfigWarning, match=r"circus.ini:2: \[socket:s\] bakclog:.*'backlog'"):
        load_config(write(tmp_path, "[socket:s]\nbakclog = 1\n"))
    path = write(tmp_path, "[socket:Web]\nport = 1\n[socket:web]\nport = 2\n")
    with pytest.raises(ConfigError, match=r"circus.ini:3: \[socket:web\]: duplicate socket name"):
        load_config(path)


def test_socket_references(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [watcher:web]
        cmd = serve --fd $(circus.sockets.WEB)
        args = --other ((circus.sockets.other))
        stdin_socket = Input
        use_sockets = true
        [socket:web]
        port = 0
        [socket:other]
        port = 0
        [socket:input]
        path = /tmp/in.sock
        """,
    )
    watcher = load_config(path).watchers[0]
    assert watcher.sockets == {"web", "other", "input"}
    assert watcher.kwargs["stdin_socket"] == "input"


@pytest.mark.parametrize(
    ("lines", "line", "option"),
    [
        ("cmd = serve $(circus.sockets.nope)", 2, "cmd"),
        ("cmd = serve\nargs = ((circus.sockets.nope))", 3, "args"),
        ("cmd = serve\nstdin_socket = nope", 3, "stdin_socket"),
    ],
)
def test_unknown_socket_reference(tmp_path: Path, lines: str, line: int, option: str) -> None:
    path = write(tmp_path, f"[watcher:w]\n{lines}\nuse_sockets = true\n[socket:web]\nport = 0\n")
    with pytest.raises(ConfigError, match=rf"circus.ini:{line}: \[watcher:w\] {option} = ") as info:
        load_config(path)
    assert "socket 'nope' (known sockets: web)" in str(info.value)


def test_socket_reference_without_use_sockets_warns(tmp_path: Path) -> None:
    path = write(tmp_path, "[watcher:w]\ncmd = serve $(circus.sockets.web)\n[socket:web]\nport=0\n")
    with pytest.warns(ConfigWarning, match=r"circus.ini:2: \[watcher:w\] cmd: .*use_sockets"):
        load_config(path)


def test_plugins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [plugin:flapping]
        use = circus.plugins.flapping.Flapping
        retry_in = 3
        max_retry = 2
        [plugin:Dog]
        use = circus.plugins.watchdog:WatchDog
        priority = 4
        active = false
        numprocesses = 1
        """,
    )
    flapping, dog = load_config(path).plugins
    assert flapping.name == "flapping"
    assert flapping.use == "circus.plugins.flapping.Flapping"
    assert flapping.options == {"retry_in": "3", "max_retry": "2"}
    assert (flapping.priority, flapping.active) == (1, True)
    assert dog.name == "Dog"
    assert dog.use == "circus.plugins.watchdog:WatchDog"
    assert (dog.priority, dog.active) == (4, False)
    assert dog.options == {"priority": "4", "active": "false", "numprocesses": "1"}


@pytest.mark.parametrize(
    ("body", "line", "expected"),
    [
        ("retry_in = 3", 1, "expected a 'use = package.module.Class' option"),
        ("use = not a path", 2, "expected a dotted path"),
        ("use = a.B\npriority = first", 3, "expected an integer"),
        ("use = a.B\nactive = perhaps", 3, "expected a boolean"),
    ],
)
def test_plugin_errors(tmp_path: Path, body: str, line: int, expected: str) -> None:
    path = write(tmp_path, f"[plugin:p]\n{body}\n")
    with pytest.raises(ConfigError, match=rf"circus.ini:{line}: \[plugin:p\]") as info:
        load_config(path)
    assert expected in str(info.value)


def test_duplicate_plugins(tmp_path: Path) -> None:
    path = write(tmp_path, "[plugin:P]\nuse = a.B\n[plugin:p]\nuse = a.C\n")
    with pytest.raises(ConfigError, match=r"circus.ini:3: \[plugin:p\]: duplicate plugin name"):
        load_config(path)

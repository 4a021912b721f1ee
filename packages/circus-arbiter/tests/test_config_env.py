"""[env] / [env:PATTERNS] sections and $(circus.env.NAME) expansion (spec/config.md §7)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from circus.arbiter.config import load_config


def write(tmp_path: Path, text: str, name: str = "circus.ini") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


CONFIG = """
[watcher:Alpha]
cmd = run $(circus.env.myport)

[watcher:beta]
cmd = run $(CIRCUS.ENV.MYPORT) $(circus.env.only_os)

[watcher:gamma]
cmd = run

[env]
myport = 5999
shared = base
PATHX = $PATH:/x
MIXED = hi $HOME $lower $UNSET_VAR_XYZ
SPACED  =   padded ; comment

[env:Al*,gam?a]
myport = 6000
shared = patterned

[env:gamma]
shared = last wins
"""


def test_env_sections_patterns_and_order(tmp_path: Path) -> None:
    environ = {"PATH": "/bin", "HOME": "/root", "only_os": "from-os"}
    config = load_config(write(tmp_path, CONFIG), environ=environ)
    alpha, beta, gamma = (w.kwargs for w in config.watchers)
    base = {
        "myport": "5999",
        "shared": "base",
        "PATHX": "$PATH:/x",  # $NAME is the watcher's to expand, at start
        "MIXED": "hi $HOME $lower $UNSET_VAR_XYZ",
        "SPACED": "padded",
    }
    assert beta["env"] == base
    assert alpha["env"] == {**base, "myport": "6000", "shared": "patterned"}
    assert gamma["env"] == {**base, "myport": "6000", "shared": "last wins"}


def test_circus_env_expansion_per_watcher(tmp_path: Path) -> None:
    environ = {"only_os": "from-os", "myport": "1"}
    config = load_config(write(tmp_path, CONFIG), environ=environ)
    alpha, beta, _ = (w.kwargs for w in config.watchers)
    assert alpha["cmd"] == "run 6000"  # [env:Al*] beats [env] beats os.environ
    assert beta["cmd"] == "run 5999 from-os"  # case-insensitive token and name


def test_patterns_are_case_sensitive(tmp_path: Path) -> None:
    path = write(tmp_path, "[watcher:Web]\ncmd = x\n[env:web]\nA = 1\n[env:W*]\nB = 2\n")
    assert load_config(path, environ={}).watchers[0].kwargs["env"] == {"B": "2"}


def test_expansion_uses_raw_env_values(tmp_path: Path) -> None:
    """As upstream: $(circus.env.X) sees the env value before its $NAME expansion."""
    path = write(tmp_path, "[watcher:w]\ncmd = echo $(circus.env.where)\n[env]\nwhere = $HOME\n")
    kwargs = load_config(path, environ={"HOME": "/root"}).watchers[0].kwargs
    assert kwargs["cmd"] == "echo $HOME"
    assert kwargs["env"] == {"where": "$HOME"}


def test_expansion_everywhere(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [watcher:w]
        cmd = run
        stdout_stream.filename = $(circus.env.LOGDIR)/out.log
        custom = ((circus.env.LOGDIR))
        [socket:s]
        path = $(circus.env.LOGDIR)/s.sock
        [plugin:p]
        use = $(circus.env.PLUGIN)
        [env]
        LOGDIR = /var/log/app
        """,
    )
    config = load_config(path, environ={"PLUGIN": "my.plugins.Thing"})
    kwargs = config.watchers[0].kwargs
    assert kwargs["stdout_stream"]["filename"] == "/var/log/app/out.log"
    assert kwargs["custom"] == "/var/log/app"
    assert config.sockets[0].kwargs["path"] == "/var/log/app/s.sock"
    assert config.plugins[0].use == "my.plugins.Thing"


def test_os_environ_is_the_default(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CIRCUS_TEST_VALUE", "from-process")
    path = write(tmp_path, "[watcher:w]\ncmd = run $(circus.env.CIRCUS_TEST_VALUE)\n")
    assert load_config(path).watchers[0].kwargs["cmd"] == "run from-process"


def test_env_values_can_use_circus_env(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[watcher:w]\ncmd = run\n[env]\nbase = /opt\n[env:w]\nBIN = $(circus.env.base)/bin\n",
    )
    assert load_config(path, environ={}).watchers[0].kwargs["env"] == {
        "base": "/opt",
        "BIN": "/opt/bin",
    }


def test_circus_cpus_is_the_usable_cpu_count(tmp_path: Path) -> None:
    from circus.process import usable_cpus

    path = write(
        tmp_path,
        """
        [watcher:w]
        cmd = worker --threads $(circus.cpus)
        numprocesses = $(CIRCUS.CPUS)
        """,
    )
    (watcher,) = load_config(path).watchers
    count = usable_cpus()
    assert watcher.options["numprocesses"] == count
    assert watcher.options["cmd"] == f"worker --threads {count}"

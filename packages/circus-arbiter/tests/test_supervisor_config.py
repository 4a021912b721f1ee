"""supervisord.conf files load as Supervisor reads them: the corpus of real-world shapes
(Django + Celery + Gunicorn, Laravel queue workers in an [include] tree, a container's
multi-service config, FastCGI pools), their warnings, errors at file:line, and
``circusctl convert`` output that loads back into the same watchers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from circus.arbiter.config import ConfigError, ConfigWarning, load_config
from circus.arbiter.supervisor import (
    SupervisorConfig,
    detect_format,
    load_supervisor,
    to_circus_ini,
)
from circus.arbiter.supervisor._values import to_env

CORPUS = Path(__file__).parent / "configs" / "supervisor"
CORPUS_ENV = {"APP_PYTHON": "/usr/bin/python3", "APP_PORT": "8000", "PATH": "/usr/bin:/bin"}
_HEAD = re.compile(r"\[[^\]]*\](?: [\w.]+)?")
CIRCUSCTL = str(Path(sys.executable).with_name("circusctl"))


def _load(path: Path, environ: dict[str, str] | None = None) -> tuple[SupervisorConfig, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = load_supervisor(path, environ=CORPUS_ENV if environ is None else environ)
    assert all(issubclass(w.category, ConfigWarning) for w in caught)
    return config, [str(w.message) for w in caught]


def _where(messages: list[str]) -> set[str]:
    """``relative/file:line: [section] option`` of each warning."""
    out = set()
    for message in messages:
        location, _, rest = message.partition(": ")
        out.add(f"{os.path.relpath(location, CORPUS)}: {_HEAD.match(rest).group(0)}")  # type: ignore[union-attr]
    return out


ROOT_WARNING = set() if os.geteuid() == 0 else {"docker/supervisord.conf:9: [supervisord] user"}
EXPECTED_WARNINGS = {
    "django": {
        "django/supervisord.conf:7: [supervisord] logfile_maxbytes",
        "django/supervisord.conf:8: [supervisord] logfile_backups",
        "django/supervisord.conf:61: [program:celerybeat] stdout_capture_maxbytes",
    },
    "laravel": set(),
    "docker": ROOT_WARNING,
    "fcgi": {
        "fcgi/supervisord.conf:32: [fcgi-program:fcgiapp] stderr_logfile",
        "fcgi/supervisord.conf:10: [fcgi-program:fcgiapp] socket_owner",
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED_WARNINGS))
def test_corpus_loads_with_exactly_the_expected_warnings(name: str) -> None:
    path = CORPUS / name / "supervisord.conf"
    assert detect_format(path) == "supervisor"
    config, messages = _load(path)
    assert _where(messages) == EXPECTED_WARNINGS[name], messages
    assert config.config.supervisor is config
    assert [w.name for w in config.config.watchers] == sorted(p.namespec for p in config.processes)


def test_django_celery_gunicorn_group() -> None:
    config, _ = _load(CORPUS / "django" / "supervisord.conf")
    assert config.groups == {
        "myproject": ("myproject:celerybeat", "myproject:gunicorn", "myproject:celery")
    }
    # started in Supervisor's order: group priority, then process priority, then name
    order = sorted(config.config.watchers, key=lambda w: -w.priority)
    assert [w.name for w in order] == list(config.groups["myproject"])
    celery = config.config.watcher("myproject:celery").kwargs
    assert celery["cmd"] == "/home/django/venv/bin/celery -A myproject worker --loglevel=INFO"
    assert celery["working_dir"] == "/home/django/myproject"
    assert celery["uid"] == "www-data" and celery["gid"] == 33
    assert celery["graceful_timeout"] == 600 and celery["stop_children"] is True
    assert celery["stop_signal"] == signal.SIGTERM
    assert celery["respawn"] == "always" and celery["backoff_reset"] == "10"
    assert celery["give_up_after"] == "4" and celery["max_retry"] == 3  # startretries=3
    log = str(CORPUS / "django" / "log" / "celery-worker.log")
    assert celery["stdout_stream"]["filename"] == log
    assert celery["stderr_stream"]["filename"] == log
    assert celery["stdout_stream"]["max_bytes"] == 50 * 1024 * 1024
    gunicorn = config.config.watcher("myproject:gunicorn").kwargs
    assert gunicorn["env"]["DJANGO_SETTINGS_MODULE"] == "myproject.settings.production"
    assert gunicorn["env"]["SUPERVISOR_GROUP_NAME"] == "myproject"
    assert gunicorn["cmd"] == "/bin/sh"  # redirect_stderr: sh dups stderr onto stdout, execs
    assert gunicorn["stderr_stream"] is None
    daemon = config.config.circus
    assert (daemon.logoutput, daemon.pidfile) == ("/tmp/supervisord.log", "/tmp/supervisord.pid")
    assert not config.supervisord.nodaemon
    assert set(config.sections) == {"unix_http_server", "rpcinterface:supervisor", "supervisorctl"}
    assert config.sections["unix_http_server"].get("file") == "/tmp/supervisor.sock"


def test_laravel_workers_in_an_include_tree() -> None:
    config, _ = _load(CORPUS / "laravel" / "supervisord.conf")
    here = str(CORPUS / "laravel")
    workers = config.groups["laravel-worker"]
    assert workers == tuple(f"laravel-worker:laravel-worker_{n:02d}" for n in range(8))
    assert config.groups["horizon"] == ("horizon",)
    first = config.process("laravel-worker:laravel-worker_03")
    assert (first.group, first.name, first.process_num, first.watcher, first.wid) == (
        "laravel-worker", "laravel-worker_03", 3, "laravel-worker:laravel-worker_03", 1
    )  # fmt: skip
    # %(here)s is the folder of the file it is written in: conf.d for the included file
    kwargs = config.config.watcher(workers[0]).kwargs
    assert f"{here}/conf.d/../app/artisan" in kwargs["args"]
    assert kwargs["stdout_stream"]["filename"] == f"{here}/conf.d/../log/worker.log"
    assert kwargs["numprocesses"] == 1 and kwargs["graceful_timeout"] == 3600
    assert config.supervisord.childlogdir == f"{here}/log"
    assert config.config.circus.logoutput == f"{here}/log/supervisord.log"
    assert config.sources == (
        f"{here}/supervisord.conf", f"{here}/conf.d/horizon.conf",
        f"{here}/conf.d/laravel-worker.conf",
    )  # fmt: skip


def test_fcgi_program_is_a_socket_and_watchers_reading_it_on_stdin() -> None:
    config, _ = _load(CORPUS / "fcgi" / "supervisord.conf")
    fcgi = config.config.socket("fcgiapp").options
    assert fcgi["path"] == str(CORPUS / "fcgi" / "fcgiapp.sock")
    assert fcgi["umask"] == 0o077  # socket_mode 0700
    php = config.config.socket("php").options
    assert (php["host"], php["port"], php["backlog"]) == ("127.0.0.1", 9000, 128)
    pool = [config.config.watcher(spec).kwargs for spec in config.groups["fcgiapp"]]
    assert len(pool) == 5 and {w["stdin_socket"] for w in pool} == {"fcgiapp"}
    assert {w["stop_signal"] for w in pool} == {signal.SIGQUIT}
    assert {w["respawn"] for w in pool} == {"on-failure"}
    assert pool[0]["umask"] == 0o022 and pool[0]["env"]["A"] == "1"


def test_docker_multi_service() -> None:
    config, _ = _load(CORPUS / "docker" / "supervisord.conf")
    assert config.supervisord.nodaemon and config.config.circus.logoutput == "/dev/null"
    app = config.config.watcher("app").kwargs
    assert app["stdout_stream"] == {"class": "StdoutStream"}
    assert app["env"]["APP_GREETING"] == "hello, world"
    worker = config.config.watcher("worker:worker-2").kwargs
    assert worker["args"] is None and worker["cmd"].endswith("app.py --worker 2")
    assert worker["env"]["APP_ROLE"] == "worker-2"
    assert worker["success_exit_codes"] == "0,3" and worker["respawn"] == "on-failure"
    assert worker["stop_signal"] == signal.SIGINT and worker["graceful_timeout"] == 5
    assert worker["stderr_stream"] == {"class": "FileStream", "filename": "/dev/stderr"}
    assert "give_up_after" not in worker  # startsecs=0: running at once, never given up


@pytest.mark.parametrize("name", sorted(EXPECTED_WARNINGS))
def test_converted_ini_loads_into_the_same_watchers(name: str, tmp_path: Path) -> None:
    config, _ = _load(CORPUS / name / "supervisord.conf")
    ini = tmp_path / "circus.ini"
    ini.write_text(to_circus_ini(config))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the converted file loads without a single warning
        circus = load_config(ini, format="circus", environ=CORPUS_ENV)
    assert circus.supervisor is None
    assert circus.watchers == config.config.watchers
    assert circus.sockets == config.config.sockets
    assert circus.circus == config.config.circus


def test_circusctl_convert_prints_the_ini_and_refuses_garbage(tmp_path: Path) -> None:
    env = {**os.environ, **CORPUS_ENV, "PATH": os.environ["PATH"]}
    done = subprocess.run(
        [CIRCUSCTL, "convert", str(CORPUS / "docker" / "supervisord.conf")],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ini = tmp_path / "converted.ini"
    ini.write_text(done.stdout)
    assert "[watcher:worker:worker-1]" in done.stdout
    assert (
        load_config(ini).watchers
        == _load(CORPUS / "docker" / "supervisord.conf")[0].config.watchers
    )
    laravel = CORPUS / "laravel" / "supervisord.conf"
    done = subprocess.run([CIRCUSCTL, "convert", str(laravel)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stdout.count("[watcher:") == 9
    assert f"{laravel}:3: [unix_http_server]: not converted" in done.stderr
    bad = tmp_path / "bad.conf"
    bad.write_text("[program:x]\ncommand=true\nstartsecs=soon\n")
    done = subprocess.run(
        [CIRCUSCTL, "convert", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and f"{bad}:3: [program:x] startsecs = 'soon'" in done.stderr
    assert done.stdout == ""


def _write(tmp_path: Path, text: str, name: str = "supervisord.conf") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


HEAD = "[supervisord]\nnodaemon=true\n"
ERRORS = [
    ("[program:x]\ncommand=true\nstartsecs=abc\n", 5, "startsecs = 'abc': expected an integer"),
    ("[program:x]\ncommand=true\nnumprocs=3\n", 5, "expected %(process_num) in process_name"),
    ("[program:x]\ncommand=true\nautorestart=maybe\n", 5, "expected true, false or unexpected"),
    ("[program:x]\ncommand=true\nexitcodes=0,256\n", 5, "exit codes 0..255"),
    ("[program:x]\ncommand=true\nstopsignal=NOPE\n", 5, "expected a signal name"),
    ("[program:x]\ncommand=true\nuser=no-such-user-here\n", 5, "expected an existing user"),
    ("[program:x]\ncommand=true\nenvironment=A=1,B\n", 5, "expected KEY=value pairs"),
    ("[program:x]\ncommand=run %(nope)s\n", 4, "%(nope)s cannot be expanded"),
    ("[program:x]\ndirectory=/tmp\n", 3, "command is required"),
    ("[program:x]\ncommand=true\nstopasgroup=true\nkillasgroup=false\n", 6, "killasgroup"),
    ("[program:a b]\ncommand=true\n", 3, "expected a name without spaces"),
    ("[group:g]\nprograms=x,y\n[program:x]\ncommand=true\n", 4, "'y' names no [program:x]"),
    ("[program:x]\ncommand=true\nstdout_logfile_maxbytes=lots\n", 5, "expected a size"),
    ("[supervisord]\nloglevel=loud\n", 4, "expected one of critical"),
    ("[program:x]\ncommand=true\n[program:X]\ncommand=true\n", 3, "already used by the process"),
    ("[fcgi-program:f]\ncommand=true\nsocket=tcp://localhost\n", 5, "expected socket = tcp://"),
    ("[program:x]\ncommand=true\nstdout_logfile=/no/such/dir/x.log\n", 5, "/no/such/dir does not"),
    ("oops\n", 1, "expected a [section] header"),
]


@pytest.mark.parametrize(("body", "line", "expected"), ERRORS)
def test_invalid_values_are_errors_at_their_line(
    tmp_path: Path, body: str, line: int, expected: str
) -> None:
    text = body if body == "oops\n" else HEAD + body
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        _load(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert expected in message, message


def test_options_we_cannot_honour_warn_at_their_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        HEAD + "strip_ansi=true\n"  # 3
        "[program:x]\ncommand=true\n"  # 4, 5
        "killasgroup=true\n"  # 6
        "stdout_syslog=true\n"  # 7
        "startretries=0\n"  # 8
        "bogus=1\n"  # 9
        "environment=A=$HOME\n"  # 10
        "[unknown_section]\nk=v\n",  # 11
    )
    _, messages = _load(path)
    assert _where_abs(messages, path) == {
        "3: [supervisord] strip_ansi",
        "6: [program:x] killasgroup",
        "7: [program:x] stdout_syslog",
        "9: [program:x] bogus",
        "10: [program:x] environment",
        "11: [unknown_section]",
    }


def _where_abs(messages: list[str], path: Path) -> set[str]:
    out = set()
    for message in messages:
        assert message.startswith(f"{path}:"), message
        rest = message[len(f"{path}:") :]
        line, _, what = rest.partition(": ")
        out.add(f"{line}: {_HEAD.match(what).group(0)}")  # type: ignore[union-attr]
    return out


def test_here_is_the_folder_of_the_file_and_includes_are_relative_to_the_main_file(
    tmp_path: Path,
) -> None:
    main = _write(
        tmp_path,
        HEAD + "[include]\nfiles = sub/*.conf none/*.conf\n[program:top]\ncommand=run %(here)s\n",
        "etc/supervisord.conf",
    )
    _write(tmp_path, "[program:inner]\ncommand=run %(here)s\n[include]\nfiles=../other/*.conf\n",
           "etc/sub/inner.conf")  # fmt: skip
    _write(tmp_path, "[program:deeper]\ncommand=true\n", "etc/other/deeper.conf")
    config, messages = _load(main)
    assert config.config.watcher("top").kwargs["cmd"] == f"run {tmp_path}/etc"
    assert config.config.watcher("inner").kwargs["cmd"] == f"run {tmp_path}/etc/sub"
    assert [p.namespec for p in config.processes] == ["inner", "top"]  # deeper: not followed
    assert any("none/*.conf matches no file" in m for m in messages)
    assert any(m.startswith(f"{tmp_path}/etc/sub/inner.conf:4: [include] files: not followed")
               for m in messages)  # fmt: skip


def test_env_host_and_process_num_expansions(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[supervisord]\nnodaemon=true\nenvironment=SHARED="s"\n'
        "[program:w]\nnumprocs=2\nnumprocs_start=5\nprocess_name=%(program_name)s-%(process_num)03d\n"
        "command=run %(ENV_HOME)s %(ENV_SHARED)s %(host_node_name)s %(group_name)s %(numprocs)d "
        "%(process_num)d %%\n"
        'environment=OWN="%(process_num)d"\n'
        "directory=/srv/%(process_num)d\n",
    )
    config, _ = _load(path, {"HOME": "/home/h"})
    assert [p.namespec for p in config.processes] == ["w:w-005", "w:w-006"]
    node = os.uname().nodename
    first = config.config.watcher("w:w-005").kwargs
    assert first["cmd"] == f"run /home/h s {node} w 2 5 %"
    assert first["working_dir"] == "/srv/5"
    assert first["env"]["OWN"] == "5" and first["env"]["SHARED"] == "s"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('A="1,2",B=x', {"A": "1,2", "B": "x"}),
        ("A='it is',B=\"x=y\"", {"A": "it is", "B": "x=y"}),
        (
            "PATH=/usr/local/bin:/usr/bin,  LANG=en_US.UTF-8",
            {"PATH": "/usr/local/bin:/usr/bin", "LANG": "en_US.UTF-8"},
        ),
        ("A=1,\n    B=2", {"A": "1", "B": "2"}),
        ("", {}),
    ],
)
def test_supervisor_environment_quoting(text: str, expected: dict[str, str]) -> None:
    assert to_env(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[supervisord]\n", "supervisor"),
        ("[program:x]\ncommand=true\n", "supervisor"),
        ("[circus]\nendpoint=ipc:///x\n[program:x]\ncommand=true\n", "supervisor"),
        ("[circus]\n[watcher:x]\ncmd=true\n", "circus"),
        ("[watcher:x]\ncmd=true\n[program:y]\ncommand=true\n", "circus"),
        ("[env]\nA=1\n", "circus"),
        ("", "circus"),
    ],
)
def test_detection_by_sections(tmp_path: Path, text: str, expected: str) -> None:
    assert detect_format(_write(tmp_path, text)) == expected


def test_format_can_be_forced_and_circus_section_sets_circusd_options(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "[circus]\nendpoint = ipc:///tmp/x-ctl\nloglevel = debug\n"
        "[supervisord]\nnodaemon=true\nloglevel=warn\n[program:x]\ncommand=true\n",
    )
    config = load_config(path)
    assert config.supervisor is not None
    assert (config.circus.endpoint, config.circus.loglevel) == ("ipc:///tmp/x-ctl", "debug")
    assert config.circus.pubsub_endpoint == "tcp://127.0.0.1:5556"  # Circus's default
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forced = load_config(path, format="circus")
    assert forced.supervisor is None and forced.watchers == ()
    plain = _write(tmp_path, "[program:x]\ncommand=true\n[circus]\n", "plain.ini")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_config(plain, format="supervisor").watcher("x").kwargs["cmd"] == "true"
    assert [str(w.message) for w in caught] == [
        f"{plain}:1: no [supervisord] section (Supervisor refuses such a file); its defaults "
        "are used"
    ]


def test_a_program_cannot_run_as_another_user_than_an_unprivileged_supervisord(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, HEAD + "user=nobody\n[program:x]\ncommand=true\nuser=root\n")
    with pytest.raises(ConfigError) as info:
        _load(path)
    assert str(info.value).startswith(f"{path}:6: [program:x] user = 'root': expected nobody")
    ok = _write(tmp_path, HEAD + "user=root\n[program:x]\ncommand=true\nuser=nobody\n", "ok.conf")
    assert _load(ok)[0].config.watcher("x").kwargs["uid"] == "nobody"


def test_the_process_ceiling_stops_a_huge_file_early(tmp_path: Path) -> None:
    body = "[program:small]\ncommand=true\n[program:huge]\ncommand=true\nnumprocs=100000\n"
    path = _write(tmp_path, HEAD + body + "process_name=%(program_name)s_%(process_num)d\n")
    with pytest.raises(ConfigError) as info:
        _load(path)  # refused before a single one of those processes is planned
    assert str(info.value).startswith(
        f"{path}:7: [program:huge] numprocs = '100000': expected at most 99999 more processes"
    )


def test_an_fcgi_program_in_two_groups_shares_its_socket(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        HEAD + "[fcgi-program:f]\ncommand=true\nsocket=tcp://127.0.0.1:9\n"
        "[group:a]\nprograms=f\n[group:b]\nprograms=f\n",
    )
    config, _ = _load(path)
    assert [p.namespec for p in config.processes] == ["a:f", "b:f"]
    assert [s.name for s in config.config.sockets] == ["f"]
    assert {config.config.watcher(n).kwargs["stdin_socket"] for n in ("a:f", "b:f")} == {"f"}


def test_log_file_mapping(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o755)
    path = _write(
        tmp_path,
        f"[supervisord]\nnodaemon=true\nchildlogdir={logs}\n"
        "[program:auto]\ncommand=true\n"
        "[program:none]\ncommand=true\nstdout_logfile=NONE\nstderr_logfile=none\n"
        "[group:g]\nprograms=auto\n",
    )
    config, _ = _load(path)
    auto = config.config.watcher("g:auto").kwargs
    assert auto["stdout_stream"]["filename"] == f"{logs}/g_auto-stdout.log"
    assert auto["stderr_stream"]["filename"] == f"{logs}/g_auto-stderr.log"
    assert config.process("g:auto").stdout_logfile == f"{logs}/g_auto-stdout.log"
    none = config.config.watcher("none").kwargs
    assert none["stdout_stream"] is None and none["close_child_stdout"] is True
    assert none["close_child_stderr"] is True
    os.chmod(logs, 0o777)  # writable by anyone: not used, said so
    config, messages = _load(path)
    assert config.config.watcher("g:auto").kwargs["stdout_stream"] is None
    assert any("childlogdir: is writable by every user" in m for m in messages)


def test_circusctl_convert_never_runs_the_current_directorys_modules(tmp_path: Path) -> None:
    # a directory someone else may own: its circus/arbiter/__init__.py must not be imported
    planted = tmp_path / "circus" / "arbiter"
    planted.mkdir(parents=True)
    marker = tmp_path / "planted-code-ran"
    (planted / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[program:x]\ncommand=sleep 60\n")
    done = subprocess.run(
        [CIRCUSCTL, "convert", str(conf)], capture_output=True, text=True, timeout=60,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "[watcher:x]" in done.stdout and not marker.exists()

"""A log path through a directory another user owns, swapped for a link after the config load.

``/tmp/X/u`` belongs to the app's user (nobody); circusd (root) writes ``u/logs/out.log``.
Long after the config was read, that user replaces the real ``u/logs`` by a link to a
directory only root may write (``/etc/cron.d``): every later open, rotation or clean-up of
the log by root must not land there. Links a user may legitimately use (a deployment's
``current -> releases/42`` inside the user's own tree, root's own links) keep working.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a root circusd, a nobody app)"),
]

NOBODY = 65534
CHUNK = {"data": b"ATTACKER line\n", "pid": 1, "name": "stdout"}


@pytest.fixture
def user_tree(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """``(public/u, root_only)``: ``u`` owned by nobody in a root 0755 dir under /tmp, with a
    real ``u/logs``; ``root_only`` a 0700 directory of root's."""
    public = Path(tempfile.mkdtemp(prefix="circus-logpath-", dir="/tmp"))
    try:
        public.chmod(0o755)
        user = public / "u"
        (user / "logs").mkdir(parents=True)
        for path in (user, user / "logs"):
            os.chown(path, NOBODY, NOBODY)
        root_only = tmp_path / "cron.d"
        root_only.mkdir(mode=0o700)
        yield user, root_only
    finally:
        shutil.rmtree(public, ignore_errors=True)


def _swap_for_link(directory: Path, target: Path) -> None:
    """What the directory's owner can do at any time: move it away, put a link there."""
    directory.rename(directory.with_name(directory.name + ".old"))
    os.symlink(target, directory)
    os.lchown(directory, NOBODY, NOBODY)


def test_a_lazy_open_never_creates_the_file_through_a_swapped_component(
    user_tree: tuple[Path, Path],
) -> None:
    from circus.process.streams import FileStream

    user, root_only = user_tree
    stream = FileStream(str(user / "logs" / "out.log"))  # config loaded, file not open yet
    _swap_for_link(user / "logs", root_only)
    try:
        stream(CHUNK)
    finally:
        stream.close()
    assert os.listdir(root_only) == [], "root created the app's log in root's directory"
    assert stream.dropped[0] == len(CHUNK["data"])


def test_size_rotation_never_renames_or_writes_through_a_swapped_component(
    user_tree: tuple[Path, Path],
) -> None:
    from circus.process.streams import FileStream

    user, root_only = user_tree
    (root_only / "out.log").write_text("root's own\n")
    stream = FileStream(str(user / "logs" / "out.log"), max_bytes=20, backup_count=2)
    try:
        stream(CHUNK)
        _swap_for_link(user / "logs", root_only)
        stream(CHUNK)  # would rotate out.log -> out.log.1 and reopen
        stream(CHUNK)
    finally:
        stream.close()
    assert sorted(os.listdir(root_only)) == ["out.log"], "root rotated files in root's dir"
    assert (root_only / "out.log").read_text() == "root's own\n"


def test_timed_rotation_never_removes_old_files_through_a_swapped_component(
    user_tree: tuple[Path, Path],
) -> None:
    from circus.process.streams import TimedRotatingFileStream

    user, root_only = user_tree
    kept = ["out.log.20200101", "out.log.20200102", "out.log.20200103"]
    for name in kept:
        (root_only / name).write_text("root's own\n")
    now = [1_700_000_000.0]
    stream = TimedRotatingFileStream(
        str(user / "logs" / "out.log"), rotate_when="D", backup_count=1, clock=lambda: now[0]
    )
    try:
        stream(CHUNK)
        _swap_for_link(user / "logs", root_only)
        now[0] += 2 * 86400
        stream(CHUNK)  # rotates, then removes all rotated files but one
    finally:
        stream.close()
    assert sorted(os.listdir(root_only)) == kept, "root removed files in root's dir"


def test_a_user_link_to_the_users_own_directory_is_followed(user_tree: tuple[Path, Path]) -> None:
    """``current -> releases/42`` in the app's own tree: the deployment layout keeps working."""
    from circus.process.streams import FileStream

    user, _ = user_tree
    release = user / "releases" / "42"
    release.mkdir(parents=True)
    for path in (user / "releases", release):
        os.chown(path, NOBODY, NOBODY)
    os.symlink("releases/42", user / "current")
    os.lchown(user / "current", NOBODY, NOBODY)
    stream = FileStream(str(user / "current" / "out.log"), max_bytes=20, backup_count=1)
    try:
        stream(CHUNK)
        stream(CHUNK)  # rotated within releases/42
    finally:
        stream.close()
    assert sorted(os.listdir(release)) == ["out.log", "out.log.1"]
    assert stream.dropped == (0, 0)


def test_root_links_on_the_way_are_followed(tmp_path: Path) -> None:
    """Links only root could have made (``/var/run -> /run``, ``/dev/fd``) are followed."""
    from circus.process import open_file

    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "alias")
    fd = open_file(str(tmp_path / "alias" / "x.log"), os.O_WRONLY | os.O_CREAT)
    os.close(fd)
    assert (real / "x.log").exists()
    held = os.open(real / "x.log", os.O_RDONLY | os.O_CLOEXEC)
    try:
        # /dev/fd -> /proc/self/fd -> /proc/PID/fd, then the descriptor's own magic link
        fd = open_file(f"/dev/fd/{held}", os.O_RDONLY)
        assert os.path.sameopenfile(fd, held)
        os.close(fd)
    finally:
        os.close(held)


def test_a_link_in_a_user_dir_to_root_s_dir_is_refused_and_said(
    user_tree: tuple[Path, Path],
) -> None:
    from circus.process import open_file

    user, root_only = user_tree
    _swap_for_link(user / "logs", root_only)
    with pytest.raises(OSError) as info:
        open_file(str(user / "logs" / "out.log"), os.O_WRONLY | os.O_CREAT)
    assert "not followed" in str(info.value)
    assert os.listdir(root_only) == []


def test_a_link_in_a_group_writable_dir_is_never_followed(tmp_path: Path) -> None:
    from circus.process import open_file

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o775)
    os.chown(shared, NOBODY, NOBODY)
    own = tmp_path / "own"
    own.mkdir()
    os.chown(own, NOBODY, NOBODY)
    os.symlink(own, shared / "logs")
    with pytest.raises(OSError, match="not followed"):
        open_file(str(shared / "logs" / "out.log"), os.O_WRONLY | os.O_CREAT)


def test_a_link_loop_ends(tmp_path: Path) -> None:
    from circus.process import open_file

    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(OSError, match="too many links"):
        open_file(str(tmp_path / "a" / "x"), os.O_RDONLY)


def test_the_pidfile_never_writes_through_a_planted_temp_link(
    user_tree: tuple[Path, Path],
) -> None:
    """A pidfile in the app user's dir (``/run/app``): the temp file written before the
    rename must not be a link the user planted under a name it could guess."""
    from circus.arbiter._pidfile import Pidfile

    user, root_only = user_tree
    shadow = root_only / "shadow"
    shadow.write_text("root:secret\n")
    path = user / "logs" / "circusd.pid"
    pid = os.getpid()
    for guess in (f"{path}.{pid}.tmp", f"{user}/logs/.circusd.pid.{pid}.tmp"):
        os.symlink(shadow, guess)
        os.lchown(guess, NOBODY, NOBODY)
    pidfile = Pidfile(str(path))
    try:
        pidfile.create(pid)
    except Exception:
        pass  # refusing is fine too: what matters is the target
    finally:
        pidfile.unlink()
    assert shadow.read_text() == "root:secret\n", "root wrote its pid through the user's link"


def test_the_pidfile_never_lands_in_a_swapped_component(user_tree: tuple[Path, Path]) -> None:
    from circus.arbiter._pidfile import Pidfile, PidfileError

    user, root_only = user_tree
    pidfile = Pidfile(str(user / "logs" / "circusd.pid"))
    _swap_for_link(user / "logs", root_only)
    with pytest.raises(PidfileError, match="not followed"):
        pidfile.create()
    assert os.listdir(root_only) == []


def test_circusd_s_own_log_never_reopens_through_a_swapped_component(
    user_tree: tuple[Path, Path],
) -> None:
    """``--log-output`` in a directory a user owns: the reopen after a move (logrotate) must
    not follow the user's link."""
    import logging

    from circus.arbiter._logging import _handler

    user, root_only = user_tree
    handler = _handler(str(user / "logs" / "circusd.log"))
    record = logging.LogRecord("circus", logging.INFO, __file__, 1, "ROOTLOG", None, None)
    raise_exceptions, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        handler.emit(record)
        _swap_for_link(user / "logs", root_only)
        handler.emit(record)  # the file moved: reopened by path
    finally:
        logging.raiseExceptions = raise_exceptions
        handler.close()
    assert os.listdir(root_only) == [], "root reopened its log in root's directory"


def test_env_file_never_read_through_a_swapped_component(user_tree: tuple[Path, Path]) -> None:
    """``env_file = /srv/app/conf/app.env`` read as root for a nobody app: ``conf`` swapped
    for a link to root's directory must not hand root's secrets to the app's environment."""
    from circus.watcher import EnvFileError, read_env_files

    user, root_only = user_tree
    (user / "logs" / "app.env").write_text("MODE=app\n")
    (root_only / "app.env").write_text("DB_PASSWORD=root-secret\n")
    _swap_for_link(user / "logs", root_only)
    try:
        env = read_env_files([str(user / "logs" / "app.env")])
    except EnvFileError as exc:
        assert "not followed" in str(exc)
    else:
        assert "DB_PASSWORD" not in env, "root's secret read through the user's link"


def _hard_link_of(target: Path, directory: Path, name: str) -> Path:
    """What a user can do to any file when ``fs.protected_hardlinks`` is off."""
    link = directory / name
    try:
        os.link(target, link)
    except OSError as exc:
        pytest.skip(f"cannot hard-link across these directories: {exc}")
    return link


def test_output_never_appended_to_a_hard_link_of_root_s_file(
    user_tree: tuple[Path, Path],
) -> None:
    from circus.process.streams import FileStream

    user, root_only = user_tree
    shadow = root_only / "shadow"
    shadow.write_text("root:secret\n")
    _hard_link_of(shadow, user / "logs", "out.log")
    stream = FileStream(str(user / "logs" / "out.log"))
    try:
        stream(CHUNK)
    finally:
        stream.close()
    assert shadow.read_text() == "root:secret\n", "root appended to its own file's hard link"


def test_env_file_never_reads_a_hard_link_of_root_s_file(user_tree: tuple[Path, Path]) -> None:
    from circus.watcher import EnvFileError, read_env_files

    user, root_only = user_tree
    secret = root_only / "root.env"
    secret.write_text("DB_PASSWORD=root-secret\n")
    secret.chmod(0o600)
    _hard_link_of(secret, user / "logs", "app.env")
    with pytest.raises(EnvFileError, match="hard links"):
        read_env_files([str(user / "logs" / "app.env")])


def test_virtualenv_pth_files_never_lead_to_root_s_files(user_tree: tuple[Path, Path]) -> None:
    """``virtualenv = /srv/app/venv``, owned by the app's user: each ``*.pth`` line becomes a
    PYTHONPATH entry of the app, so a ``.pth`` linked to root's file would hand its lines
    over."""
    import sys

    from circus.watcher._env import build_env

    user, root_only = user_tree
    secret = root_only / "shadow"
    secret.write_text("root:SECRETHASH:19000\n")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = user / "venv" / "lib" / version / "site-packages"
    site.mkdir(parents=True)
    (site / "ok.pth").write_text("mypkg\n")
    os.symlink(secret, site / "evil.pth")
    for path in [user / "venv", *(p for p in site.parents if user / "venv" in p.parents), site]:
        os.lchown(path, NOBODY, NOBODY)
    os.lchown(site / "evil.pth", NOBODY, NOBODY)
    env = build_env(
        {}, copy_env=False, copy_path=False, virtualenv=str(user / "venv"), virtualenv_py_ver=None
    )
    assert "SECRETHASH" not in env["PYTHONPATH"], "root's file handed to the app"
    assert str(site / "mypkg") in env["PYTHONPATH"].split(os.pathsep)

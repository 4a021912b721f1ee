"""``circusd``: run the watchers of one INI file until told to stop (spec/features.md §2).

Signals: SIGTERM, SIGINT and SIGQUIT stop every watcher gracefully and exit 0 once all
children are gone; SIGHUP re-reads the config (``reloadconfig``); SIGWINCH is ignored. A
watcher with ``critical = true`` that gives up stops circusd the same way, exit status 3.
"""

from __future__ import annotations

# first: asyncio without ssl (OpenSSL weighs 4.5 MiB in every daemon), see the module
from . import _lean_asyncio  # noqa: F401

# isort: split

import argparse
import asyncio
import gc
import importlib.util
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["main", "check_no_upstream"]

log = logging.getLogger("circus.arbiter")

_LEVELS = ("debug", "info", "warning", "error", "critical")
SPAWN_RESERVE = 32  # descriptors a spawn never takes (see _connguard for the rest)
#: the signals circusd handles (blocked by daemon-reexec until the new image handles them)
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)


def _version() -> str:
    # imported here: importlib.metadata weighs on every daemon's start-up and RSS
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("circus-arbiter")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.1.0"


class _VersionAction(argparse.Action):
    """``--version``: the version is looked up only when asked (importlib.metadata is heavy)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(_version())  # to stdout, as argparse's own version action
        parser.exit()


def check_no_upstream() -> str | None:
    """A message when upstream Circus shares the ``circus`` import name here, else ``None``."""
    try:
        import circus
    except ImportError:  # pragma: no cover
        return None
    if getattr(circus, "__file__", None) is not None:
        return (
            f"upstream Circus is installed in this environment ({circus.__file__}); it owns the "
            "'circus' package and hides this circusd's layers. Uninstall it (pip uninstall "
            "circus) or use a separate virtualenv."
        )
    spec = importlib.util.find_spec("circus.process")
    if spec is not None and spec.submodule_search_locations is None:
        return (
            f"upstream Circus's circus/process.py is installed ({spec.origin}) and shadows "
            "circus.process; uninstall upstream Circus or use a separate virtualenv."
        )
    return None


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, told the width so that it does not import shutil to find it
    (building the parser creates one; shutil drags bz2 and lzma into every daemon)."""

    def __init__(self, prog: str) -> None:
        try:
            columns = int(os.environ["COLUMNS"])
        except (KeyError, ValueError):
            stdout = sys.__stdout__  # None when Python started without one
            try:
                columns = os.get_terminal_size(stdout.fileno() if stdout else -1).columns
            except (AttributeError, OSError, ValueError):
                columns = 80
        super().__init__(prog, width=max(columns - 2, 40))


def build_parser() -> argparse.ArgumentParser:
    """The command line, as upstream's circusd."""
    parser = argparse.ArgumentParser(
        prog="circusd", description="Run a Circus daemon.", formatter_class=_HelpFormatter
    )
    parser.add_argument("config", nargs="?", help="configuration file")
    parser.add_argument(
        "--log-level",
        dest="loglevel",
        type=str.lower,
        choices=_LEVELS,
        help="log level (overrides [circus] loglevel)",
    )
    parser.add_argument(
        "--log-output",
        dest="logoutput",
        help="log target: '-' (stdout), a file, or syslog://host:port?facility",
    )
    parser.add_argument(
        "--logger-config",
        dest="loggerconfig",
        help="a logging config file (.ini, .json, .yaml) or 'default'",
    )
    parser.add_argument("--daemon", dest="daemonize", action="store_true", help="run in background")
    parser.add_argument(
        "--format",
        choices=("auto", "circus", "supervisor"),
        default="auto",
        help="config file format: a Circus INI file or a supervisord.conf (default: auto, "
        "from its sections)",
    )
    parser.add_argument(
        "-n",
        "--nodaemon",
        action="store_true",
        help="stay in the foreground even when a supervisord.conf says nodaemon = false "
        "(as supervisord -n)",
    )
    parser.add_argument("--pidfile", dest="pidfile", help="write the pid to this file")
    parser.add_argument(
        "--version", action=_VersionAction, nargs=0, help="show the version and exit"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``circusd``; returns the exit status (also passed to ``sys.exit``)."""
    # Start-up makes a few hundred thousand objects that live as long as the daemon
    # (modules, classes, the config, then one Process per child): the cyclic collector
    # would scan them over and over while the autostart watchers spawn (~10 % of the CPU
    # before the first spawn). It is off until they are started, or until main returns.
    collecting = gc.isenabled()
    gc.disable()
    try:
        status = _main(argv, collecting)
    finally:
        if collecting:
            gc.enable()
    if argv is None:
        sys.exit(status)
    return status


def _main(argv: list[str] | None, collecting: bool = True) -> int:
    problem = check_no_upstream()
    if problem:
        print(f"circusd: {problem}", file=sys.stderr)
        return 1
    parser = build_parser()
    args = parser.parse_args(argv)
    from ._launch import launch_argv

    launched = launch_argv()  # resolved before anything changes directory
    handover = None
    if "CIRCUS_HANDOVER_FD" in os.environ:  # exec'ed by daemon-reexec: the previous image's state
        from ._handover import HandoverError
        from ._reexec import take_state

        try:
            handover = take_state()
        except HandoverError as exc:
            print(f"circusd: daemon-reexec: {exc}", file=sys.stderr)
            return 1
        if handover is not None and handover.get("config_file"):
            args.config = handover["config_file"]
    if not args.config:
        parser.print_usage()
        return 0
    # resolved now: a daemon changes directory, and daemon-reexec hands this path over
    args.config = os.path.abspath(args.config)
    systemd = None
    if "NOTIFY_SOCKET" in os.environ:  # run by systemd (Type=notify): no child inherits it
        from ._sdnotify import SystemdNotifier

        systemd = SystemdNotifier.from_environ()
        if systemd is not None and handover is not None:
            systemd.bridge()  # the previous image pinged last thing before its exec
    readiness = None
    background = args.daemonize or (
        not args.nodaemon and _supervisor_daemonizes(args.config, args.format)
    )
    if background and handover is None:
        from ._daemonize import daemonize

        readiness = daemonize()  # errors until it is serving still reach the user's terminal

    from ._logging import configure_logging
    from ._pidfile import Pidfile, PidfileError
    from .config import ConfigError, load_config

    try:
        # Loader warnings are kept until logging is configured, then logged.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            config = load_config(args.config, format=args.format)
    except ConfigError as exc:
        print(f"circusd: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"circusd: cannot read {args.config}: {exc}", file=sys.stderr)
        return 1
    daemon = config.circus
    try:
        configure_logging(
            args.loglevel or daemon.loglevel or "info",
            args.logoutput or daemon.logoutput or "-",
            args.loggerconfig or daemon.loggerconfig,
        )
    except (ValueError, OSError) as exc:
        print(f"circusd: logging: {exc}", file=sys.stderr)
        return 1
    logging.captureWarnings(True)
    for warning in caught:
        log.warning("%s", warning.message)
    if daemon.umask is not None:
        os.umask(daemon.umask)  # before the pidfile and log files are made (the arbiter again)
    _enable_subreaper()
    # Before tree tracking sweeps the cgroups of dead daemons: a crashed predecessor's
    # workers are still in theirs, which the recovery uses to stop their trees whole.
    from ._recover import claim_previous_leaves

    if handover is None:  # after daemon-reexec the previous generation is this process
        claim_previous_leaves(config)
    if handover is not None and str(handover.get("tree_tracking", "")).startswith("cgroup2:"):
        # the previous image of this pid made the cgroup subtree we are in (the handed
        # children are in its leaves): taken back as it is, or trees tracked through /proc
        from circus.process import resume_tree_tracking, set_tree_tracking

        if not resume_tree_tracking(handover["tree_tracking"]):
            set_tree_tracking("process-tree")
    if handover is not None:
        _start_tree_tracking()
    _raise_fd_limit()
    from ._launch import enable

    enable(launched)

    pidfile = None
    pidfile_path = args.pidfile or daemon.pidfile
    if pidfile_path:
        pidfile = Pidfile(pidfile_path)
        try:
            pidfile.create()
        except PidfileError as exc:
            print(f"circusd: {exc}", file=sys.stderr)
            return 1
    try:
        from ._arbiter import Arbiter

        # circusd holds the pidfile itself (written above, before anything binds)
        arbiter = Arbiter.from_config(config, pidfile=None)
        arbiter.handover = handover
        log.info("Starting master on pid %d", os.getpid())
        try:
            started = readiness.ready if readiness else None
            if handover is None:
                # Once the autostart watchers run: the cgroup subtree and the sweep of dead
                # daemons' cgroups (~10 ms) are not what a user waits for after `circusd
                # my.ini`. A watcher with `stop_children` makes the subtree at its first spawn.
                started = _also(started, _start_tree_tracking)
            if collecting:
                started = _also(started, gc.enable)
            asyncio.run(_serve(arbiter, started, systemd))
        except Exception as exc:
            log.error("circusd failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            print(f"circusd: {exc}", file=sys.stderr)
            return 1
    finally:
        if pidfile is not None:
            pidfile.unlink()
    return arbiter.exit_status  # 0, or 3 when a critical watcher gave up


def _supervisor_daemonizes(path: str, fmt: str) -> bool:
    """A supervisord.conf whose ``[supervisord] nodaemon`` is false (Supervisor's default)
    runs in the background, as ``circusd --daemon`` does."""
    if fmt == "circus":
        return False
    from .supervisor._detect import detect_format

    if fmt == "auto" and detect_format(path) != "supervisor":
        return False
    from .config import ConfigError
    from .supervisor._loader import load_supervisor

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reported by the real load below
            return not load_supervisor(path).supervisord.nodaemon
    except (ConfigError, OSError):
        return False  # the real load below reports the problem in the foreground


async def _serve(
    arbiter: object, started: Callable[[], None] | None = None, systemd: Any = None
) -> None:
    from ._arbiter import Arbiter

    assert isinstance(arbiter, Arbiter)
    loop = asyncio.get_running_loop()
    link: asyncio.Task[None] | None = None
    if systemd is not None:  # READY=1, STATUS=, WATCHDOG=1, STOPPING=1 (see _sdnotify)
        arbiter.systemd = systemd
        arbiter.watcher_set.observers.append(systemd.changed)
        up = asyncio.Event()
        link = asyncio.ensure_future(systemd.run(arbiter, up))
        started = _also(started, up.set)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        loop.add_signal_handler(signum, arbiter.request_quit)
    loop.add_signal_handler(signal.SIGHUP, arbiter.request_reload)
    # a daemon-reexec blocks these across its exec: one sent meanwhile is handled now
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
    signal.signal(signal.SIGWINCH, signal.SIG_IGN)
    from ._reaper import watch_orphans

    unwatch_orphans = watch_orphans(loop)
    try:
        await arbiter.run(started)
    finally:
        if link is not None:
            link.cancel()
            await asyncio.gather(link, return_exceptions=True)
        unwatch_orphans()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
            loop.remove_signal_handler(signum)


def _also(first: Callable[[], None] | None, then: Callable[[], None]) -> Callable[[], None]:
    def both() -> None:
        if first is not None:
            first()
        then()

    return both


def _raise_fd_limit() -> None:
    # Every child costs circusd a pidfd and its pipes, every client a socket: the soft
    # RLIMIT_NOFILE goes up to the hard limit (children get the old soft limit back), and
    # spawning stops short of the last descriptors, which libzmq cannot run out of.
    from circus.process import raise_nofile_limit, set_fd_reserve

    before, now = raise_nofile_limit()
    if now != before:
        log.info("descriptor limit raised from %d to %d (children get %d)", before, now, before)
    else:
        log.info("descriptor limit: %d", now)
    set_fd_reserve(SPAWN_RESERVE)


def _enable_subreaper() -> None:
    # Orphaned grandchildren (double-forked by a worker) are re-parented to circusd instead of
    # init, so the process layer can find and reap them.
    try:
        from circus.process import enable_subreaper
    except ImportError:  # pragma: no cover - older process layer
        return
    try:
        enable_subreaper()
    except OSError as exc:  # pragma: no cover - not Linux
        log.debug("cannot become a child subreaper: %s", exc)


def _start_tree_tracking() -> None:
    # Decided once the daemon serves (a `stop_children` watcher's first spawn may have
    # decided it already), not left to the first such spawn, so that the cgroups a
    # SIGKILLed circusd left beside ours are swept soon, and the log says how trees are
    # stopped.
    try:
        from circus.process import tree_tracking, tree_tracking_reason
    except ImportError:  # pragma: no cover - older process layer
        return
    where = tree_tracking()
    reason = tree_tracking_reason()
    log.info("process trees tracked by %s%s", where, f" ({reason})" if reason else "")


if __name__ == "__main__":  # pragma: no cover
    main()

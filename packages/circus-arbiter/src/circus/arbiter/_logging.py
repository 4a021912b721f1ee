"""circusd's logging: --log-level, --log-output, --logger-config (spec/features.md §2)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

__all__ = ["configure_logging", "LOG_FORMAT", "LOG_DATE_FORMAT"]

LOG_FORMAT = "%(asctime)s %(name)s[%(process)d] [%(levelname)s] %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class FdHandler(logging.Handler):
    """Log records to fd 1 or 2 through the writer thread worker output is forwarded by
    (circus.arbiter._forward), so a terminal or pipe that stops reading never stalls the
    daemon's loop, and log lines stay in order with forwarded worker lines. When that
    writer has been closed (at shutdown), records are written directly.
    """

    def __init__(self, fd: int, name: str) -> None:
        from ._forward import forwardable

        super().__init__()
        self.fd = fd
        self.stream_name = name
        # /dev/null or closed (``--daemon``): decided once, as for forwarded output
        self._writes = forwardable(fd) is not None
        self._writer: Any = None

    def _live_writer(self) -> Any:
        from ._forward import shared_writer

        if self._writer is None or not self._writer.accepting:
            self._writer = shared_writer(self.fd, self.stream_name)
        return self._writer

    def emit(self, record: logging.LogRecord) -> None:
        if not self._writes:
            return
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            writer = self._live_writer()
            if writer is None or not writer.put(data):
                while data:
                    data = data[os.write(self.fd, data) :]
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Nothing buffered here: the writer thread writes as soon as it can."""

    def close(self) -> None:
        """At interpreter exit: let the writer finish (one second at most)."""
        if self._writer is not None:
            self._writer.close(1.0)
        super().close()


def _handler(output: str) -> logging.Handler:
    if output in ("-", "stdout"):
        return FdHandler(1, "stdout")
    if output == "stderr":
        return FdHandler(2, "stderr")
    # logging.handlers (and what it pulls in) is imported only by the outputs that need it:
    # a daemon logging to stdout keeps its resident size down.
    if output.startswith("syslog://"):
        from logging.handlers import SysLogHandler
        from urllib.parse import urlparse

        url = urlparse(output)
        facility = SysLogHandler.facility_names.get(url.query or "user", SysLogHandler.LOG_USER)
        if url.netloc:
            address: str | tuple[str, int] = (url.hostname or "localhost", url.port or 514)
        else:
            address = url.path or "/dev/log"
        return SysLogHandler(address=address, facility=facility)
    from logging.handlers import WatchedFileHandler

    from circus.process import open_file

    class LogFileHandler(WatchedFileHandler):
        """Reopened when moved (logrotate), the path walked each time without following
        another user's link (circus.process ``open_file``): a log dir some user may change
        never makes root append its log elsewhere."""

        def emit(self, record: logging.LogRecord) -> None:
            try:
                self.reopenIfNeeded()
            except OSError:  # refused or gone: said on stderr, never raised to the logger
                self.handleError(record)
                return
            logging.FileHandler.emit(self, record)

        def _open(self) -> Any:
            fd = open_file(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                return open(fd, "a", encoding=self.encoding, errors=self.errors)  # noqa: SIM115
            except BaseException:
                os.close(fd)
                raise

    return LogFileHandler(output)


def configure_logging(
    level: str = "info", output: str = "-", logger_config: str | None = None
) -> None:
    """Configure the root logger once for circusd.

    ``logger_config`` (``.ini``, ``.json``, ``.yaml``) replaces everything else; ``default``
    means the built-in setup.

    Raises:
        ValueError: an unknown level or an unreadable logger config.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    if logger_config and logger_config != "default":
        from logging import config

        if logger_config.endswith((".ini", ".cfg", ".conf")):
            config.fileConfig(logger_config, disable_existing_loggers=False)
            return
        if logger_config.endswith(".json"):
            with open(logger_config, encoding="utf-8") as fh:
                config.dictConfig(json.load(fh))
            return
        if logger_config.endswith((".yaml", ".yml")):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError as exc:
                raise ValueError("a YAML logger config needs PyYAML installed") from exc
            with open(logger_config, encoding="utf-8") as fh:
                config.dictConfig(yaml.safe_load(fh))
            return
        raise ValueError(f"logger config {logger_config!r}: expected .ini, .json or .yaml")
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    handler = _handler(output)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    root.addHandler(handler)
    root.setLevel(numeric)

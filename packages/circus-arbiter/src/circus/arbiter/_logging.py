"""circusd's logging: --log-level, --log-output, --logger-config (spec/features.md §2)."""

from __future__ import annotations

import json
import logging
import sys

__all__ = ["configure_logging", "LOG_FORMAT", "LOG_DATE_FORMAT"]

LOG_FORMAT = "%(asctime)s %(name)s[%(process)d] [%(levelname)s] %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def _handler(output: str) -> logging.Handler:
    if output in ("-", "stdout"):
        return logging.StreamHandler(sys.stdout)
    if output == "stderr":
        return logging.StreamHandler(sys.stderr)
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

    # External rotation (logrotate) safe: the file is reopened when moved.
    return WatchedFileHandler(output)


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

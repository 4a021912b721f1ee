"""Creating watchers from keyword dicts, translating the watcher layer's errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errors import MessageError

__all__ = ["make_watcher", "watcher_error"]


def make_watcher(spec: Mapping[str, Any]) -> Any:
    """A ``circus.watcher.Watcher`` from ``{"name", "cmd", **options}``.

    Raises:
        MessageError: the watcher layer rejected an option (its message is kept).
    """
    from circus.watcher import UnknownOptionError, Watcher

    options = dict(spec)
    name = options.pop("name", None)
    cmd = options.pop("cmd", None)
    if not name or not isinstance(name, str):
        raise MessageError("a watcher needs a name")
    if not cmd:
        raise MessageError(f"watcher {name!r}: 'cmd' is missing")
    custom = dict(options.pop("custom_options", None) or {})
    # Free-form keys of a config section (upstream keeps them verbatim) become the
    # watcher's custom options; the watcher names each unknown key in turn.
    for _ in range(len(options) + 1):
        try:
            return Watcher(name, cmd, custom_options=custom, **options)
        except UnknownOptionError as exc:
            if exc.option not in options:
                raise watcher_error(exc) from exc
            custom[exc.option] = options.pop(exc.option)
        except Exception as exc:
            raise watcher_error(exc) from exc
    raise MessageError(f"watcher {name!r}: cannot be created")  # pragma: no cover


def watcher_error(exc: BaseException) -> MessageError:
    """The errno-3 answer for an exception raised by the watcher layer on bad input."""
    return MessageError(str(exc) or type(exc).__name__)

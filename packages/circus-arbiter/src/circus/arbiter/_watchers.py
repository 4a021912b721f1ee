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
    from circus.watcher import HookError, UnknownOptionError, Watcher

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
        except HookError as exc:
            raise _hook_error(exc, options.get("hooks")) from exc
        except Exception as exc:
            raise watcher_error(exc) from exc
    raise MessageError(f"watcher {name!r}: cannot be created")  # pragma: no cover


def _hook_error(exc: Any, hooks: Any) -> MessageError:
    """A hook that does not import: where a config file wrote it when it came from one
    (``file:line: [watcher:x] hooks.name = 'text': expected ...``), else the layer's words."""
    option = str(getattr(exc, "option", ""))
    spec = hooks.get(option.removeprefix("hooks.")) if isinstance(hooks, Mapping) else None
    located = getattr(spec, "error", None)  # a config's HookSpec knows its file and line
    if not callable(located):
        return watcher_error(exc)
    return MessageError(str(located(f"expected {exc.expected}")))


def watcher_error(exc: BaseException) -> MessageError:
    """The errno-3 answer for an exception raised by the watcher layer on bad input."""
    return MessageError(str(exc) or type(exc).__name__)

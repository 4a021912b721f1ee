"""``set`` of several options at once: all checked before any is applied, applied together,
and what they cost paid once (one graceful reload, one resize).

Setting ``stdout_stream.class`` then ``stdout_stream.filename`` one key at a time reloaded
the watcher twice, the first time onto a nameless file stream; a bad key after good ones left
the good ones applied. Here the whole set becomes one new options object (every value
converted, cross-option rules checked on the result, a changed stream built once to see its
options are good), installed in one step under the watcher's lock. A running watcher's new
streams are opened and its environment built before anything else happens: if either
fails, the old options are put back and nothing was changed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import OptionError, WatcherError
from ._options import OPTIONS, SETTABLE_PREFIXES, Effect, convert, fold, not_settable, unknown
from ._reload import trim
from ._settings import install
from ._values import WatcherOptions

if TYPE_CHECKING:
    from ._watcher import Watcher

__all__ = ["Change", "apply_options", "plan_options"]

_STREAMS = ("stdout_stream", "stderr_stream")


@dataclass(frozen=True)
class Change:
    """What one ``set`` makes of a watcher's options: the new options and what they cost."""

    settings: WatcherOptions
    reload: bool  # a key whose change needs new processes (cmd, env, a stream...)
    resize: bool  # numprocesses given


def _option_of(key: str) -> str:
    """The option a ``set`` key changes (``rlimit_X``: ``rlimits``; ``stdout_stream.X``:
    ``stdout_stream``; ``hooks.X``: ``hooks``)."""
    if key.startswith("rlimit_"):
        return "rlimits"
    if key.startswith(("stdout_stream.", "stderr_stream.", "hooks.")):
        return key.partition(".")[0]
    return key


def plan_options(w: Watcher, options: Mapping[str, Any]) -> Change:
    """The options ``w`` would have after ``set`` of ``options``; changes nothing.

    Raises:
        UnknownOptionError: a key names no option, or one that cannot change at run time.
        OptionError: a bad value, a stream whose options its class refuses, or a result
            that breaks a cross-option rule (``singleton`` with more processes...).
    """
    current = w.settings
    custom: dict[str, Any] = {}
    keys: dict[str, Any] = {}
    for key, value in options.items():
        if not isinstance(key, str):
            raise unknown(repr(key))
        if key in current.custom and key not in OPTIONS:
            custom[key] = value
            continue
        spec = OPTIONS.get(_option_of(key))
        if spec is None:
            raise unknown(key)
        if not spec.settable and not key.startswith(SETTABLE_PREFIXES):
            raise not_settable(key)
        keys[key] = value
    values: dict[str, Any] = {}
    reload = resize = False
    for name, raw in fold(keys).items():
        if name not in keys and isinstance(raw, Mapping):  # prefixed keys merge into it
            now = current.get(name)
            raw = {**(now if isinstance(now, Mapping) else {}), **raw}
        values[name] = convert(name, raw)
        effect = OPTIONS[name].effect
        reload = reload or effect is Effect.RELOAD
        resize = resize or effect is Effect.RESIZE
    settings = current.replace_many(values)
    for key, value in custom.items():
        settings = settings.with_custom(key, value)
    for name in _STREAMS:
        if name in values and values[name] != current.get(name):
            _try_stream(name, values[name])
    return Change(settings, reload, resize)


def _try_stream(name: str, conf: Any) -> None:
    """Build the stream ``conf`` asks for and drop it, so a class refusing its options is
    found now; not opened (nothing is created). A file stream without a file name is not
    built: it would make a temporary file."""
    if not isinstance(conf, Mapping):
        return  # a stream object: used as given
    from circus.process import StreamError
    from circus.process.streams import FileStream, load_stream, resolve_stream_class

    options = dict(conf)
    try:
        cls = resolve_stream_class(options.pop("class", "FileStream"))
        if isinstance(cls, type) and issubclass(cls, FileStream) and not options.get("filename"):
            return
        load_stream(cls, **options)
    except StreamError as exc:
        raise OptionError(name, dict(conf), f"options its class takes ({exc})") from None


async def apply_options(w: Watcher, options: Mapping[str, Any]) -> None:
    """``set``: check every option of ``options``, then apply them together and pay once what
    they cost: one graceful reload of a running watcher when any key needs new processes,
    its process count adjusted when ``numprocesses`` is among them. Emits one ``updated``.

    Raises:
        UnknownOptionError, OptionError: as :func:`plan_options` (nothing changed).
        OptionError: an ``env_file`` or the ``virtualenv`` cannot be read for the reload
            (nothing changed).
        WatcherError: a changed stream cannot be opened for the reload (nothing changed).
        RolloutError: with readiness, a new process was not ready (the new options stay,
            the old processes not yet replaced keep running).
    """
    async with w._get_lock():
        change = plan_options(w, options)
        old = w.settings
        running = w.status() == "active"
        install(w, change.settings)
        reload = change.reload and running
        if reload and not w.settings.send_hup:
            try:
                _ready_for_reload(w)
            except Exception:
                install(w, old)
                raise
        if not reload:  # a resize alone: told once the count is reached
            if change.resize and w._life.running:
                await trim(w)
            w._emit("updated", {"time": time.time()})
            return
        w._emit("updated", {"time": time.time()})
        if change.resize and w._life.running and w.numprocesses < len(w._procs):
            await trim(w)  # fewer first: no process is replaced only to be stopped
        await w._reload_locked(graceful=True)
        if change.resize and w._life.running:
            await trim(w)


def _ready_for_reload(w: Watcher) -> None:
    """Build the children's environment and open the changed streams, as the reload will:
    a failure here leaves every process as it was."""
    w._inputs.env()
    try:
        w._output.refresh()
    except Exception as exc:
        raise WatcherError(f"watcher {w.name!r}: cannot open its streams: {exc}") from exc

"""Hooks: resolution of dotted paths and calls that can never wedge the watcher.

Semantics follow shared/spec/config.md §4.4:

* a hook is called with keyword arguments ``watcher``, ``arbiter``, ``hook_name`` plus the
  hook's own (``pid``; ``pid, signum``; ``process_pid, time[, exit_code, process_status]``;
  ``pid, stats``);
* a falsy return value (``False`` or ``None``, as upstream) means "refuse": ``before_start``
  aborts the start, ``after_start`` stops the watcher, ``before_spawn``/``after_spawn`` kill
  the process and stop the watcher, ``before_signal`` suppresses the signal (SIGKILL is
  always sent);
* an exception counts as a refusal unless the hook is flagged ``ignore_errors``; exceptions
  of ``before_stop, after_stop, before_signal, after_signal, extended_stats`` are always
  ignored;
* each call emits ``hook_success`` (ran without raising) or ``hook_failure`` (raised).

Ours: a synchronous hook runs in its own daemon thread and an async hook is awaited, both
bounded by ``hook_timeout``; a hook that overruns counts as having raised ``TimeoutError``.
A thread cannot be killed, so an overrunning sync hook keeps its thread until it returns;
the watcher goes on. Sync hooks therefore must not touch the watcher directly (use
``loop.call_soon_threadsafe``) -- or be written as ``async def``.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _convert as cv
from ._errors import HookError
from ._options import HOOK_NAMES

if TYPE_CHECKING:
    from ._watcher import Watcher

ALWAYS_IGNORED = frozenset(
    {"before_stop", "after_stop", "before_signal", "after_signal", "extended_stats"}
)

Emit = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Hook:
    """A resolved hook: the callable, whether its errors are ignored, and how it was given."""

    name: str
    func: Callable[..., Any]
    ignore_errors: bool
    spec: Any


class _Unresolvable(Exception):
    pass


def resolve_callable(path: str) -> Callable[..., Any]:
    """Import ``pkg.mod.func`` or ``pkg.mod:func`` (attribute paths allowed after ``:``).

    Raises:
        HookError: the path does not import or does not name a callable.
    """
    try:
        return _import(path)
    except _Unresolvable as exc:
        raise HookError("hooks", path, f"an importable callable ({exc})") from None


def _import(path: str) -> Callable[..., Any]:
    path = path.strip()
    if ":" in path:
        module_name, _, attr_path = path.partition(":")
        candidates = [(module_name, attr_path)]
    else:
        parts = path.split(".")
        candidates = [
            (".".join(parts[:i]), ".".join(parts[i:])) for i in range(len(parts) - 1, 0, -1)
        ]
    error: Exception | None = None
    for module_name, attr_path in candidates:
        try:
            target: Any = importlib.import_module(module_name)
        except ImportError as exc:
            error = error or exc
            continue
        try:
            for attr in attr_path.split("."):
                target = getattr(target, attr)
        except AttributeError as exc:
            error = exc
            continue
        if callable(target):
            return target  # type: ignore[no-any-return]
        error = TypeError(f"{path!r} is not callable")
    raise _Unresolvable(str(error))


def resolve(name: str, spec: Any) -> Hook:
    """Turn one hook spec into a :class:`Hook`.

    Accepted specs: a callable; ``"pkg.mod.func"``/``"pkg.mod:func"`` optionally followed by
    ``", true"`` (ignore errors); a ``(callable_or_path, ignore_errors)`` pair.

    Raises:
        HookError: unknown hook name, bad spec, or a path that does not import.
    """
    option = f"hooks.{name}"
    if name not in HOOK_NAMES:
        raise HookError(option, spec, f"a hook name among {', '.join(HOOK_NAMES)}")
    target: Any = spec
    ignore: Any = False
    if isinstance(spec, tuple | list):
        if len(spec) != 2:
            raise HookError(option, spec, "a (target, ignore_errors) pair")
        target, ignore = spec
    elif isinstance(spec, str) and "," in spec:
        target, _, ignore = spec.partition(",")
    try:
        ignore_errors = cv.parse_bool(ignore)
    except (TypeError, ValueError):
        raise HookError(option, spec, "a true/false ignore_errors flag after the comma") from None
    if isinstance(target, str):
        try:
            func = _import(target)
        except _Unresolvable as exc:
            raise HookError(option, spec, f"an importable callable ({exc})") from None
    elif callable(target):
        func = target
    else:
        raise HookError(option, spec, "a callable or a dotted path 'pkg.mod.func'")
    return Hook(name, func, ignore_errors, spec)


def resolve_all(specs: Mapping[str, Any]) -> dict[str, Hook]:
    """Resolve every hook of a ``hooks`` option."""
    return {name: resolve(name, spec) for name, spec in specs.items()}


def _run_in_thread(func: Callable[..., Any], kwargs: dict[str, Any]) -> asyncio.Future[Any]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return  # timed out and cancelled meanwhile
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        try:
            result, error = func(**kwargs), None
        except BaseException as exc:  # reported through the future
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop was closed while the hook ran: nobody waits any more

    threading.Thread(target=target, name=f"hook-{kwargs.get('hook_name')}", daemon=True).start()
    return future


async def call_hook(hook: Hook, kwargs: dict[str, Any], limit: float, emit: Emit) -> bool:
    """Call ``hook`` with ``kwargs``, bounded by ``limit`` seconds; True = the caller goes on.

    Emits ``hook_success`` or ``hook_failure`` through ``emit``.
    """
    try:
        if inspect.iscoroutinefunction(hook.func):
            result = await asyncio.wait_for(hook.func(**kwargs), limit)
        else:
            result = await asyncio.wait_for(_run_in_thread(hook.func, kwargs), limit)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, limit)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        text = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        emit("hook_failure", {"name": hook.name, "time": time.time(), "error": text})
        return hook.ignore_errors or hook.name in ALWAYS_IGNORED
    emit("hook_success", {"name": hook.name, "time": time.time()})
    return bool(result)


class HookRunner:
    """The resolved hooks of one watcher, called with upstream's keyword arguments
    (``watcher``, ``arbiter``, ``hook_name``, plus the hook's own) and ``hook_timeout``."""

    def __init__(self, watcher: Watcher, hooks: dict[str, Hook]) -> None:
        self._watcher = watcher
        self.hooks = hooks

    def __contains__(self, name: object) -> bool:
        return name in self.hooks

    def any_of(self, *names: str) -> bool:
        """True when at least one of ``names`` is configured."""
        hooks = self.hooks
        # most watchers have none: no generator made per death and per respawn
        return bool(hooks) and any(name in hooks for name in names)

    def specs(self) -> dict[str, Any]:
        """``{name: spec as given}`` (what ``get hooks`` answers)."""
        return {name: hook.spec for name, hook in self.hooks.items()}

    async def call(self, name: str, **kwargs: Any) -> bool:
        """Call hook ``name`` if configured; True when the caller may go on."""
        hook = self.hooks.get(name)
        if hook is None:
            return True
        w = self._watcher
        kwargs.update(watcher=w, arbiter=w.arbiter, hook_name=name)
        return await call_hook(hook, kwargs, w.settings.hook_timeout, w._emit)

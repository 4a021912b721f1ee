"""Command dispatch: name → handler, the ``waiting`` rule, casts (spec/protocol.md §1.4–1.6).

A handler is ``handler(ctx, props)`` (``ctx``: a :class:`~._context.CommandContext`); it
validates and looks things up synchronously (so errors are answered even without ``waiting``)
and returns either a result dict or an awaitable of one for the long part. Without
``waiting`` the long part runs in the background and the answer is a bare ok, exactly as
upstream; with ``waiting`` the answer carries its result.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from circus.ctl.protocol import COMMANDS as COMMANDS_TABLE
from circus.ctl.protocol import Errno

from ._authz import SECRET_READS, check, hide_secrets, may_read_secrets
from ._errors import CommandError
from ._props import opt_bool

if TYPE_CHECKING:
    from ._context import CommandContext

__all__ = ["run_command", "command", "COMMANDS", "background_running"]

log = logging.getLogger("circus.arbiter")

Result = dict[str, Any] | None
Handler = Callable[["CommandContext", Mapping[str, Any]], "Result | Awaitable[Result]"]

COMMANDS: dict[str, Handler] = {}

_background: set[asyncio.Task[Any]] = set()


def command(name: str) -> Callable[[Handler], Handler]:
    """Register a handler under a (lowercase) command name."""

    def register(func: Handler) -> Handler:
        COMMANDS[name] = func
        return func

    return register


async def run_command(
    ctx: CommandContext, name: str, props: Mapping[str, Any], peer: Any = None
) -> dict[str, Any]:
    """Run one validated request (see :func:`circus.ctl.protocol.decode_request`).

    ``peer`` (a ``MessagePeer`` or ``PeerIdentity``) must have the right to run it (see
    ``_authz``); ``None``: a caller inside circusd. The check runs before the handler, so
    a refused request changes nothing.

    Returns the result mapping for the answer (empty for a bare ok).

    Raises:
        CommandError: with the errno the answer must carry (``Refused``: errno 3).
    """
    _load_handlers()
    key = name.lower()
    handler = COMMANDS.get(key)
    if handler is None:
        raise CommandError(f"unknown command: {name!r}", Errno.UNKNOWN_COMMAND)
    check(ctx.daemon, peer, key, props)
    # Only the protocol's "waitable" commands may answer before their work is done.
    spec = COMMANDS_TABLE.get(key)
    waiting = opt_bool(props, "waiting", False) or spec is None or not spec.waitable
    outcome = handler(ctx, props)
    if not inspect.isawaitable(outcome):
        result = dict(outcome or {})
        if key in SECRET_READS and not may_read_secrets(ctx.daemon, peer):
            result = hide_secrets(result)
        return result
    if waiting:
        return dict(await outcome or {})
    task = asyncio.ensure_future(outcome)
    _background.add(task)
    task.add_done_callback(_report_background)
    return {}


def background_running() -> bool:
    """Whether a command answered before its work was done (no ``waiting``) still works."""
    return bool(_background)


def _report_background(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("background command failed: %s", exc, exc_info=exc)


def _load_handlers() -> None:
    # The handler modules register themselves on import; imported lazily to avoid a cycle
    # with the arbiter module.
    if not COMMANDS:
        from . import _cmd_read, _cmd_reexec, _cmd_write  # noqa: F401

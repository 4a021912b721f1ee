"""The ``daemon-reexec`` command: circusd re-executes itself with the installed code, its
children, sockets and watcher state carried over (see ``_reexec``). Admin only: it is not
in any of ``_authz``'s lower classes."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from ._commands import command

if TYPE_CHECKING:
    from ._context import CommandContext


@command("daemon-reexec")
def daemon_reexec(ctx: CommandContext, props: Mapping[str, Any]) -> Awaitable[dict[str, Any]]:
    """Check that the installed code loads the state (a dry run), answer, then switch.

    The answer (``pid``, ``generation``, ``watchers``, ``processes``) comes from the running
    image before the exec; an error answer means nothing changed.
    """
    from ._reexec import prepare

    return prepare(ctx.daemon)

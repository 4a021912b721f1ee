"""Who may do what on the control channel.

Three roles, decided per request from the peer's identity (:mod:`._peers`):

* **admin**: uid 0, circusd's own effective uid, a CURVE-authorized key, or a caller inside
  circusd. Everything.
* **owner**: the uid named by ``[circus] endpoint_owner``. Reads, operates every watcher
  (start, stop, restart one, reload, signal, kill, incr, decr, rm, quit) and changes what
  runs (``add``, ``set``) only for watchers that run as the owner: uid the owner's, group
  one of the owner's groups, and only with the options in :data:`OWNER_OPTIONS`. Options that
  make circusd itself act (hooks, stream classes and their files, rlimits, circusd's
  environment or sockets) are refused, as are ``reloadconfig`` and the whole-arbiter
  ``restart`` (which re-reads the config file).
* **anyone else** (another uid, or a peer that cannot be identified): what
  ``[circus] unauthenticated_access`` grants: ``read`` (the default), ``operate``, or
  ``full`` (upstream's behaviour: anything, logged as a warning).

:func:`check` is called before a command's handler runs, so a refused request changes
nothing. A refusal is an errno 3 answer (as upstream's ``endpoint_owner`` refusal) naming the
command, the right it needs and who the peer was seen as; it is logged at WARNING, at most
:data:`LOG_BURST` lines a minute.

This module is the gate (:func:`check`, :func:`authorize`) and the names the rest of circusd
imports; the rule's parts live beside it: the rights and what each command needs
(:mod:`._rights`), who is granted what (:mod:`._policy`), what an owner may change
(:mod:`._ownerrules`), what read-only peers are not shown (:mod:`._secretreads`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._ownerrules import OWNER_OPTIONS, WatcherIds, owner_change
from ._peers import IN_PROCESS, MessagePeer, PeerIdentity
from ._policy import Policy, runs_as
from ._rights import ACCESS_CHOICES, OPERATE_COMMANDS, Refused, Right, needed_right, parse_access
from ._secretreads import HIDDEN, SECRET_READS, hide_secrets, may_read_secrets

if TYPE_CHECKING:
    from ._arbiter import Arbiter

__all__ = [
    "ACCESS_CHOICES",
    "HIDDEN",
    "SECRET_READS",
    "OPERATE_COMMANDS",
    "OWNER_OPTIONS",
    "Policy",
    "Refused",
    "Right",
    "announce",
    "authorize",
    "check",
    "hide_secrets",
    "may_read_secrets",
    "needed_right",
    "parse_access",
    "runs_as",
]

log = logging.getLogger("circus.arbiter")

#: Refusals logged per minute; the rest are counted and reported once the minute is over.
LOG_BURST = 10
_LOG_INTERVAL = 60.0


def authorize(
    policy: Policy,
    who: PeerIdentity,
    command: str,
    props: Mapping[str, Any],
    watcher_ids: WatcherIds,
) -> None:
    """Refuse what ``who`` may not do; return quietly otherwise. Pure: reads only its
    arguments (and the passwd/group databases for names).

    ``watcher_ids(name)``: the ``(uid, gid)`` options of the watcher ``name`` (``None``: no
    such watcher; the command's handler then answers that).

    Raises:
        Refused: with a reason naming the command, the right and the peer.
    """
    need = needed_right(command, props)
    granted = policy.granted(who)
    if granted >= need:
        if need is Right.CHANGE and granted is Right.CHANGE:
            owner_change(policy, who, command, props, watcher_ids)
        return
    raise Refused(
        f"permission denied: {command!r} needs the {need.words()} right; "
        f"{who.describe()} is {_role(policy, who)} and may {granted.words()}"
        + _others_note(policy, who)
        + _tcp_hint(policy, who, command, props)
    )


def _tcp_hint(policy: Policy, who: PeerIdentity, command: str, props: Mapping[str, Any]) -> str:
    """What root or circusd's user refused on loopback tcp can do instead: the rule is the
    daemon's, the fix is the client's endpoint (or a signal, for a config reload)."""
    if not (who.via == "tcp" and (policy.is_admin(who) or policy.is_owner(who))):
        return ""
    reread = command == "reloadconfig" or (command == "restart" and not props.get("name"))
    return "; send it through an ipc:// control endpoint or with a CURVE key" + (
        " (or send circusd SIGHUP, which re-reads the config)" if reread else ""
    )


def _role(policy: Policy, who: PeerIdentity) -> str:
    if who.via == "tcp" and (policy.is_admin(who) or policy.is_owner(who)):
        return "seen on tcp without CURVE, where a uid never grants more than operating,"
    if policy.is_owner(who):
        return "the endpoint_owner"
    return "neither circusd's user nor its endpoint_owner"


def _others_note(policy: Policy, who: PeerIdentity) -> str:
    if policy.is_owner(who) or (who.via == "tcp" and policy.is_admin(who)):
        return ""
    return f" ([circus] unauthenticated_access = {policy.unauthenticated})"


class _Limited:
    """At most ``burst`` warnings per ``interval`` seconds; the rest counted and reported."""

    def __init__(self, burst: int, interval: float) -> None:
        self.burst = burst
        self.interval = interval
        self._since = time.monotonic()
        self._count = 0
        self._dropped = 0

    def warning(self, message: str) -> None:
        now = time.monotonic()
        if now - self._since >= self.interval:
            if self._dropped:
                log.warning("%d more refused control requests were not logged", self._dropped)
            self._since, self._count, self._dropped = now, 0, 0
        if self._count < self.burst:
            self._count += 1
            log.warning("%s", message)
        else:
            self._dropped += 1


_refusals = _Limited(LOG_BURST, _LOG_INTERVAL)


def check(
    arbiter: Arbiter,
    peer: MessagePeer | PeerIdentity | None,
    command: str,
    props: Mapping[str, Any],
) -> None:
    """The gate :func:`run_command` passes every request through before its handler.

    ``peer`` ``None``: a caller inside circusd (admin). A read-only command returns at once,
    without asking who the peer is.

    Raises:
        Refused: logged at WARNING (rate-limited).
    """
    need = needed_right(command, props)
    if peer is None or (need is Right.READ and command not in SECRET_READS):
        return
    who = peer if isinstance(peer, PeerIdentity) else peer.identity()
    if who is IN_PROCESS or who.key is not None:
        return
    if who.via != "tcp" and who.uid in (0, os.geteuid()):
        return  # an admin: no need to look the owner up
    if command in SECRET_READS:
        if command == "logs" and not may_read_secrets(arbiter, who):
            raise _refuse(
                "refused: permission denied: 'logs' needs the operate right; "
                f"{who.describe()} may read"
            )
        return
    policy = Policy.of(arbiter)
    try:
        authorize(policy, who, command, props, lambda name: _watcher_ids(arbiter, name))
    except Refused as exc:
        _refusals.warning(f"refused: {exc.reason}")
        raise


def _refuse(message: str) -> Refused:
    _refusals.warning(message)
    return Refused(message.removeprefix("refused: "))


def _watcher_ids(arbiter: Arbiter, name: str) -> tuple[object, object] | None:
    watcher = arbiter.table.find(name)
    if watcher is None:
        return None
    get = getattr(watcher, "get_opt", None)
    if not callable(get):
        return getattr(watcher, "uid", None), getattr(watcher, "gid", None)
    return get("uid"), get("gid")


def announce(arbiter: Any) -> None:
    """Log a WARNING when ``unauthenticated_access = full`` (at start and on each reload)."""
    access = getattr(arbiter, "unauthenticated_access", "read")
    if access == "full":
        log.warning(
            "[circus] unauthenticated_access = full: ANY local user who can connect to %s may "
            "run any command as circusd's user (upstream Circus's behaviour)",
            getattr(arbiter, "endpoint", "the control endpoint"),
        )
    elif access == "operate":
        log.info(
            "[circus] unauthenticated_access = operate: any local user who can connect may "
            "start, stop, signal and remove watchers"
        )

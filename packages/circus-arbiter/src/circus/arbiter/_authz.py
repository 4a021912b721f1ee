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
"""

from __future__ import annotations

import enum
import grp
import logging
import os
import pwd
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from circus.ctl.protocol import COMMANDS

from ._errors import MessageError
from ._peers import IN_PROCESS, MessagePeer, PeerIdentity

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

ACCESS_CHOICES = ("read", "operate", "full")


class Right(enum.IntEnum):
    """What a request needs, and what a peer is granted (each includes those below it)."""

    READ = 1
    OPERATE = 2
    CHANGE = 3  # add/set, checked option by option for an owner
    ADMIN = 4

    def words(self) -> str:
        """How answers and logs name it."""
        return _WORDS[self]


_WORDS = {
    Right.READ: "read",
    Right.OPERATE: "operate",
    Right.CHANGE: "change what runs",
    Right.ADMIN: "admin",
}

_GRANTED_TO_OTHERS = {"read": Right.READ, "operate": Right.OPERATE, "full": Right.ADMIN}

#: Commands that act on what is configured without changing it.
OPERATE_COMMANDS = frozenset(
    {"start", "stop", "restart", "reload", "signal", "kill", "incr", "decr", "rm", "quit"}
)
_CHANGE_COMMANDS = frozenset({"add", "set"})

#: Options an owner may give to ``add``/``set`` for a watcher that runs as the owner; plus
#: ``flapping.*``, and ``uid``/``gid`` naming the owner and one of its groups. Everything
#: else is refused: ``hooks``/``hooks.*``/``hook_timeout`` (hooks run inside circusd),
#: ``stdout_stream``/``stderr_stream`` and their ``.*`` keys (circusd opens and writes the
#: files), ``rlimit_*`` (set by circusd before it drops privileges), ``copy_env``,
#: ``copy_path``, ``virtualenv``, ``env_file`` (circusd's environment, files read by circusd),
#: ``use_sockets``, ``stdin_socket``, ``on_demand`` (sockets circusd bound), and any option not
#: named here (custom keys included).
OWNER_OPTIONS = frozenset(
    {
        "cmd",
        "args",
        "executable",
        "working_dir",
        "shell",
        "shell_args",
        "env",
        "numprocesses",
        "warmup_delay",
        "send_hup",
        "stop_signal",
        "stop_children",
        "graceful_timeout",
        "singleton",
        "max_age",
        "max_age_variance",
        "respawn",
        "max_retry",
        "retry_in",
        "success_exit_codes",
        "backoff_initial",
        "backoff_factor",
        "backoff_max",
        "backoff_reset",
        "give_up_after",
        "autostart",
        "priority",
        "umask",
        "close_child_stdin",
        "close_child_stdout",
        "close_child_stderr",
    }
)
# The watcher's flapping settings (other ``flapping.*`` keys would be custom options).
_FLAPPING = frozenset(
    {
        "flapping.active",
        "flapping.attempts",
        "flapping.window",
        "flapping.retry_in",
        "flapping.max_retry",
    }
)
# What circus.watcher fills in an ``env`` value from circusd's own environment (``$HOME``):
# given by the owner, it would read what ``copy_env`` is refused for.
_CIRCUSD_ENV_REF = re.compile(r"\$[A-Z]")
# Refused unless false: asking for none of it is harmless.
_OFF_ONLY = frozenset({"copy_env", "copy_path", "use_sockets", "on_demand"})
_CIRCUSD_ACTS = ("hooks", "hook_timeout", "stdout_stream", "stderr_stream", "rlimit")

#: Refusals logged per minute; the rest are counted and reported once the minute is over.
LOG_BURST = 10
_LOG_INTERVAL = 60.0


class Refused(MessageError):
    """A request the peer has no right to make (errno 3, as upstream's endpoint_owner check)."""


def parse_access(text: object) -> str:
    """``unauthenticated_access``: one of :data:`ACCESS_CHOICES` (any case).

    Raises:
        ValueError: anything else.
    """
    value = str(text).strip().lower()
    if value not in ACCESS_CHOICES:
        raise ValueError(text)
    return value


def needed_right(command: str, props: Mapping[str, Any]) -> Right:
    """The right ``command`` needs: read-only commands of the protocol table need
    :attr:`Right.READ`; ``restart`` without a name (the whole arbiter, config re-read),
    ``reloadconfig``, ``ipython`` and any command not classified need :attr:`Right.ADMIN`."""
    spec = COMMANDS.get(command)
    if spec is not None and spec.read_only:
        return Right.READ
    if command == "restart" and props.get("name") is None:
        return Right.ADMIN
    if command in OPERATE_COMMANDS:
        return Right.OPERATE
    if command in _CHANGE_COMMANDS:
        return Right.CHANGE
    return Right.ADMIN


@dataclass(frozen=True)
class Policy:
    """The settings the rule reads.

    Args:
        unauthenticated: ``[circus] unauthenticated_access``.
        owner_uid: the ``endpoint_owner``'s uid, if any.
        owner_groups: the owner's primary and supplementary gids.
        circusd_uid: circusd's effective uid (admin, besides 0).
        circusd_gid: circusd's effective gid (what a child without ``gid`` keeps when its
            ``uid`` has no passwd entry, or when it has no ``uid`` either).
    """

    unauthenticated: str = "read"
    owner_uid: int | None = None
    owner_groups: frozenset[int] = frozenset()
    circusd_uid: int = 0
    circusd_gid: int = 0

    @classmethod
    def of(cls, arbiter: Any) -> Policy:
        """The arbiter's current policy (``endpoint_owner`` looked up now)."""
        owner = _owner_uid(getattr(arbiter, "endpoint_owner", None))
        return cls(
            unauthenticated=getattr(arbiter, "unauthenticated_access", "read"),
            owner_uid=owner,
            owner_groups=_groups_of(owner) if owner is not None else frozenset(),
            circusd_uid=os.geteuid(),
            circusd_gid=os.getegid(),
        )

    def is_admin(self, who: PeerIdentity) -> bool:
        """Admin: a caller inside circusd, a CURVE key, uid 0 or circusd's own uid."""
        if who.via == "in-process" or who.key is not None:
            return True
        return who.uid is not None and who.uid in (0, self.circusd_uid)

    def is_owner(self, who: PeerIdentity) -> bool:
        """The ``endpoint_owner``'s uid."""
        return self.owner_uid is not None and who.uid == self.owner_uid

    def granted(self, who: PeerIdentity) -> Right:
        """The most ``who`` may do (an owner's CHANGE is checked option by option).

        A loopback tcp peer's uid is looked up from the fd a message came in on, when the
        message is handled; a connection closed meanwhile leaves that fd number to the next
        one, so the uid is *advisory*: it never grants more than :attr:`Right.OPERATE`.
        Changing what runs over tcp takes CURVE (or ``unauthenticated_access = full``).
        """
        others = _GRANTED_TO_OTHERS.get(self.unauthenticated, Right.READ)
        if who.via == "tcp" and who.key is None:
            if self.is_admin(who) or self.is_owner(who):
                return max(Right.OPERATE, others)
            return others
        if self.is_admin(who):
            return Right.ADMIN
        if self.is_owner(who):
            return max(Right.CHANGE, others)
        return others

    def runs_as_owner(self, ids: tuple[int | None, int | None]) -> bool:
        """Whether a process with these resolved ``(uid, gid)`` is the owner's."""
        uid, gid = ids
        return self.owner_uid is not None and uid == self.owner_uid and gid in self.owner_groups


def _owner_uid(owner: str | None) -> int | None:
    if not owner:
        return None
    owner = str(owner)
    if owner.isdigit():
        return int(owner)
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        return None


def _groups_of(uid: int) -> frozenset[int]:
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return frozenset()  # no passwd entry: no group can be shown to be the owner's
    try:
        return frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except OSError:
        return frozenset({entry.pw_gid})


def runs_as(uid: object, gid: object, policy: Policy) -> tuple[int | None, int | None]:
    """The ``(uid, gid)`` a child with these ``uid``/``gid`` options runs as, resolved as
    circus.process does it: no ``uid``: circusd's; no ``gid``: the user's primary group, or
    circusd's gid for a numeric uid without a passwd entry (or without a uid). ``None`` for
    a name that does not resolve (such a child would not start)."""
    primary: int | None = None
    if uid is None:
        uid_num: int | None = policy.circusd_uid
    else:
        uid_num = _as_id(uid)
        try:
            entry = pwd.getpwuid(uid_num) if uid_num is not None else pwd.getpwnam(str(uid))
        except (KeyError, OverflowError):
            pass
        else:
            uid_num, primary = entry.pw_uid, entry.pw_gid
    if gid is None:
        gid_num: int | None = primary if primary is not None else policy.circusd_gid
    else:
        gid_num = _as_id(gid)
        if gid_num is None:
            try:
                gid_num = grp.getgrnam(str(gid)).gr_gid
            except KeyError:
                gid_num = None
    return uid_num, gid_num


def _as_id(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value.strip())
    return None  # a name ("²" is a digit, not a number: int() refuses it)


WatcherIds = Callable[[str], "tuple[object, object] | None"]


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
            _owner_change(policy, who, command, props, watcher_ids)
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


def _owner_change(
    policy: Policy,
    who: PeerIdentity,
    command: str,
    props: Mapping[str, Any],
    watcher_ids: WatcherIds,
) -> None:
    name = props.get("name")
    options = props.get("options")
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        return  # malformed: the handler refuses it
    prefix = f"permission denied: {command!r} of watcher {name!r} by the endpoint_owner"
    for key, value in options.items():
        reason = _owner_option_refusal(key, value)
        if reason is not None:
            raise Refused(f"{prefix} ({who.describe()}): {reason}")
    if command == "set":
        current = watcher_ids(name) if isinstance(name, str) else None
        if current is None:
            return  # no such watcher: the handler answers that
        ids = runs_as(current[0], current[1], policy)
        if not policy.runs_as_owner(ids):
            raise Refused(
                f"{prefix} ({who.describe()}): the watcher runs as {_ids_text(ids)}; the "
                "endpoint_owner may only change watchers that run as itself"
            )
        uid, gid = options.get("uid", current[0]), options.get("gid", current[1])
    else:
        if "uid" not in options:
            raise Refused(
                f"{prefix} ({who.describe()}): without a uid it would run as circusd's user; "
                f"give uid = {policy.owner_uid}"
            )
        uid, gid = options.get("uid"), options.get("gid")
    ids = runs_as(uid, gid, policy)
    if not policy.runs_as_owner(ids):
        raise Refused(
            f"{prefix} ({who.describe()}): it would run as {_ids_text(ids)}; the endpoint_owner "
            f"may only run processes as uid {policy.owner_uid} with one of its own groups"
        )


def _owner_option_refusal(key: object, value: object) -> str | None:
    if not isinstance(key, str):
        return f"option {key!r} is not one an owner may set"
    if key == "env" and isinstance(value, Mapping):
        for name, text in value.items():
            if isinstance(text, str) and _CIRCUSD_ENV_REF.search(text):
                return (
                    f"env {str(name)[:100]!r} = {text[:100]!r}: a $NAME in an env value is "
                    "filled from circusd's own environment; only an admin may use it"
                )
        return None
    if key in OWNER_OPTIONS or key in ("uid", "gid") or key in _FLAPPING:
        return None
    if key in _OFF_ONLY and value is False:
        return None
    if key.startswith(_CIRCUSD_ACTS):
        return (
            f"option {key!r} makes circusd itself act (as its own user); only an admin may set it"
        )
    if key in _OFF_ONLY or key in ("virtualenv", "virtualenv_py_ver", "stdin_socket"):
        return (
            f"option {key!r} gives the watcher circusd's environment or sockets; only an "
            "admin may set it"
        )
    return f"option {key!r} is not one an owner may set"


def _ids_text(ids: tuple[int | None, int | None]) -> str:
    uid, gid = ids
    return f"uid {'?' if uid is None else uid}, gid {'?' if gid is None else gid}"


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


#: Read commands whose answer holds what the kernel keeps from other users: a watcher's
#: environment (``options``, ``get``: its values are hidden) and its output (``logs``:
#: refused). Shown to peers with the operate right or more.
SECRET_READS = frozenset({"options", "get", "logs"})

HIDDEN = "<hidden>"
"""What ``options``/``get`` show for each environment value to a read-only peer."""


def may_read_secrets(arbiter: Any, peer: MessagePeer | PeerIdentity | None) -> bool:
    """Whether ``peer`` may see watchers' environment values and output lines."""
    if peer is None:
        return True
    who = peer if isinstance(peer, PeerIdentity) else peer.identity()
    if who is IN_PROCESS or who.key is not None:
        return True
    return Policy.of(arbiter).granted(who) >= Right.OPERATE


def hide_secrets(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` of ``options``/``get`` with every environment value replaced by
    :data:`HIDDEN` (the names stay: they say what is configured, not its value)."""
    options = result.get("options")
    if isinstance(options, dict):
        env = options.get("env")
        if isinstance(env, dict):
            options = {**options, "env": dict.fromkeys(env, HIDDEN)}
            result = {**result, "options": options}
    return result


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

"""What the ``endpoint_owner`` may change with ``add``/``set``: the options it may give,
and that the watcher runs, and will run, as the owner with one of its groups."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ._peers import PeerIdentity
from ._policy import Policy, runs_as
from ._rights import Refused

__all__ = ["OWNER_OPTIONS", "WatcherIds", "owner_change"]

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

WatcherIds = Callable[[str], "tuple[object, object] | None"]


def owner_change(
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

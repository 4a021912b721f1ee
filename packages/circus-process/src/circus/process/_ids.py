"""Validation of the options that become kernel settings: ids, umask, rlimits, working dir."""

from __future__ import annotations

import grp
import os
import pwd
import resource
from collections.abc import Mapping
from dataclasses import dataclass

from ._errors import SpawnError

__all__ = [
    "Identity",
    "can_raise_hard_limits",
    "parse_rlimits",
    "parse_umask",
    "resolve_identity",
    "check_working_dir",
    "open_working_dir",
]

_INFINITY_WORDS = {"", "-1", "infinity", "unlimited", "inf"}


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the child runs as; None fields mean "keep the parent's"."""

    uid: int | None = None
    gid: int | None = None
    username: str | None = None
    groups: tuple[int, ...] | None = None


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def resolve_identity(uid: int | str | None, gid: int | str | None) -> Identity:
    """Resolve ``uid``/``gid`` given by name or number, in the parent, before any fork.

    ``gid`` defaults to the user's primary group; supplementary groups are the user's
    (what ``initgroups`` would set). A numeric id with no passwd/group entry is accepted
    (containers often have none); an unknown *name* raises SpawnError. Without root, asking
    for one's own ids is a no-op, and anything else raises SpawnError naming the option.
    """
    if uid is None and gid is None:
        return Identity()
    username: str | None = None
    uid_num: int | None = None
    primary: int | None = None
    if uid is not None:
        uid_num = _as_int(uid)
        try:
            entry = pwd.getpwuid(uid_num) if uid_num is not None else pwd.getpwnam(str(uid))
        except KeyError:
            if uid_num is None:
                raise SpawnError("uid", uid, "no such user") from None
            if uid_num < 0:
                raise SpawnError("uid", uid, "a uid cannot be negative") from None
        else:
            uid_num, username, primary = entry.pw_uid, entry.pw_name, entry.pw_gid
    gid_num: int | None = None
    if gid is not None:
        gid_num = _as_int(gid)
        if gid_num is None:
            try:
                gid_num = grp.getgrnam(str(gid)).gr_gid
            except KeyError:
                raise SpawnError("gid", gid, "no such group") from None
        elif gid_num < 0:
            raise SpawnError("gid", gid, "a gid cannot be negative")
    elif primary is not None:
        gid_num = primary
    groups: tuple[int, ...] | None = None
    if uid_num is not None:
        if username is not None and gid_num is not None:
            groups = tuple(os.getgrouplist(username, gid_num))
        else:
            groups = (gid_num,) if gid_num is not None else ()
    if os.geteuid() != 0:
        # Only root may switch identity: same ids are a no-op, others are refused here,
        # before forking, instead of failing in the child.
        if uid_num is not None and uid_num != os.geteuid():
            raise SpawnError("uid", uid, "changing user needs root")
        if gid_num is not None and gid_num != os.getegid():
            raise SpawnError("gid", gid, "changing group needs root")
        return Identity()
    return Identity(uid_num, gid_num, username, groups)


def parse_umask(umask: int | str | None) -> int:
    """Return the umask as an int (strings are octal, as in ``022``), or -1 for "inherit"."""
    if umask is None:
        return -1
    if isinstance(umask, bool):
        raise SpawnError("umask", umask, "expected an octal mode such as 0o022")
    if isinstance(umask, int):
        value = umask
    elif isinstance(umask, str):
        text = umask.strip().lower().removeprefix("0o")
        try:
            value = int(text, 8) if text else -2
        except ValueError:
            raise SpawnError("umask", umask, "expected an octal mode such as 022") from None
    else:
        raise SpawnError("umask", umask, "expected an octal mode such as 0o022")
    if not 0 <= value <= 0o777:
        raise SpawnError("umask", umask, "must be between 0 and 0o777")
    return value


@dataclass(frozen=True, slots=True)
class RLimit:
    """One resource limit to set in the child (soft = hard = value)."""

    name: str
    resource: int
    value: int


def can_raise_hard_limits() -> bool:
    """Whether this process holds CAP_SYS_RESOURCE (root in a container may not)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> 24 & 1)
    except OSError:
        pass
    return os.geteuid() == 0


def parse_rlimits(rlimits: Mapping[str, object] | None) -> tuple[RLimit, ...]:
    """Validate ``{name: value}`` (names case-insensitive, ``rlimit_`` prefix allowed).

    Empty, None, -1, ``infinity`` or ``unlimited`` mean RLIM_INFINITY. Raises SpawnError with
    option ``rlimit_<name>`` for an unknown name, a bad value, or (without root) a value
    above the current hard limit.
    """
    if not rlimits:
        return ()
    out = []
    privileged = can_raise_hard_limits()
    for raw_name, raw_value in rlimits.items():
        name = str(raw_name).lower().removeprefix("rlimit_")
        option = f"rlimit_{name}"
        res = getattr(resource, f"RLIMIT_{name.upper()}", None)
        if not isinstance(res, int):
            raise SpawnError(option, raw_value, f"unknown resource limit {raw_name!r}")
        if raw_value is None or (
            isinstance(raw_value, str) and raw_value.strip().lower() in _INFINITY_WORDS
        ):
            value = resource.RLIM_INFINITY
        else:
            num = _as_int(raw_value)
            if num is None or num < -1:
                raise SpawnError(option, raw_value, "expected an integer >= 0, or empty/-1")
            value = resource.RLIM_INFINITY if num == -1 else num
        if not privileged:
            hard = resource.getrlimit(res)[1]
            above = hard != resource.RLIM_INFINITY and (
                value == resource.RLIM_INFINITY or value > hard
            )
            if above and res != resource.RLIMIT_NOFILE:
                raise SpawnError(
                    option, raw_value, f"above the hard limit {hard} (needs CAP_SYS_RESOURCE)"
                )
            if above:
                value = hard
        out.append(RLimit(name, res, value))
    return tuple(out)


def _may_search(st: os.stat_result, uid: int, gids: set[int]) -> bool:
    """Whether the mode bits of directory ``st`` let ``uid`` with groups ``gids`` enter it."""
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & 0o100)
    if st.st_gid in gids:
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)


def _searchable_by(path: str, uid: int, gids: set[int]) -> bool:
    """Whether every directory on ``path`` can be entered by ``uid`` with groups ``gids``.

    The path's symlinks are resolved first: the directories checked are the ones a
    ``chdir`` walks through, not the names of the links.
    """
    current = os.path.realpath(path)
    while True:
        if not _may_search(os.stat(current), uid, gids):
            return False
        parent = os.path.dirname(current)
        if parent == current:
            return True
        current = parent


def _gids(identity: Identity) -> set[int]:
    gids = set(identity.groups or ())
    if identity.gid is not None:
        gids.add(identity.gid)
    return gids


def open_working_dir(working_dir: str, identity: Identity) -> int:
    """An ``O_PATH`` descriptor of the directory ``working_dir`` names, for a child that
    runs as ``identity`` (whose ``uid`` is set).

    The child changes directory while still root, so what it enters must be what that user
    could enter. The path is resolved, then walked from ``/`` one component at a time
    without following any symlink, checking each directory's mode bits for the user: a
    component swapped for a symlink after the check is refused, and the descriptor pins
    the directory that was checked. The caller closes it.

    Raises:
        SpawnError: on ``working_dir`` (a directory the user cannot enter, or gone).
    """
    assert identity.uid is not None
    uid, gids = identity.uid, _gids(identity)
    flags = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
    real = os.path.realpath(working_dir)
    fd = os.open("/", flags)
    try:
        for part in [p for p in real.split("/") if p] + [None]:
            if not _may_search(os.fstat(fd), uid, gids):
                raise SpawnError(
                    "working_dir", working_dir, f"directory not searchable by uid {uid}"
                )
            if part is None:
                return fd
            new = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = new
    except OSError as exc:
        os.close(fd)
        raise SpawnError("working_dir", working_dir, exc.strerror or str(exc), exc.errno) from None
    except BaseException:
        os.close(fd)
        raise
    raise AssertionError("unreachable")  # pragma: no cover


def check_working_dir(
    working_dir: str | os.PathLike[str] | None, identity: Identity | None = None
) -> str | None:
    """Return the working dir as a str after checking the child will be able to enter it.

    The child changes directory before dropping privileges, so for a ``uid`` switch the
    check is made for that user (mode bits of every directory the resolved path goes
    through), not for us; :func:`open_working_dir` checks again at the fork.
    """
    if working_dir is None:
        return None
    path = os.fspath(working_dir)
    if not os.path.isdir(path):
        raise SpawnError("working_dir", working_dir, "no such directory")
    if not os.access(path, os.X_OK):
        raise SpawnError("working_dir", working_dir, "directory not searchable")
    if (
        identity is not None
        and identity.uid is not None
        and not _searchable_by(path, identity.uid, _gids(identity))
    ):
        raise SpawnError(
            "working_dir", working_dir, f"directory not searchable by uid {identity.uid}"
        )
    return path

"""Who is granted what: the settings the authorization rule reads, and the ids a child
would run as (resolved as circus.process resolves them)."""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from typing import Any

from ._peers import PeerIdentity
from ._rights import GRANTED_TO_OTHERS, Right

__all__ = ["Policy", "runs_as"]


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
        others = GRANTED_TO_OTHERS.get(self.unauthenticated, Right.READ)
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

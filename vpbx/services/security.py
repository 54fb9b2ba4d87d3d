"""Brute-force bans: list them, lift one (`vpbx security bans`, `vpbx security unban ADDR`).

Rule: the decisions (who is banned, for how long) are vpbx.domain.security's and are made by the watcher in
`vpbx serve`; here the stored bans are read and lifted. Making a lifted ban effective in Asterisk (rewriting the ACL
and reloading res_pjsip) is the edge's job: vpbx.asterisk.security.apply.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from vpbx.domain.errors import NotFoundError
from vpbx.domain.security import Ban, address
from vpbx.domain.timestamps import to_iso, utc_now

if TYPE_CHECKING:
    from vpbx.storage.store import Store


def as_row(ban: Ban) -> dict[str, Any]:
    """A ban as `vpbx security bans` shows it."""
    return {"address": ban.address, "logins": list(ban.logins), "failures": ban.failures, "reason": ban.reason,
            "banned_at": to_iso(ban.banned_at), "until": to_iso(ban.until)}


def bans(store: Store, now: datetime | None = None) -> list[Ban]:
    """The bans in force now (an expired one is not listed, even before the watcher has closed it)."""
    return store.bans.active(now or utc_now())


def unban(store: Store, addr: str, now: datetime | None = None) -> Ban:
    """Lift the ban of `addr` at once (its failures are forgotten: the watcher starts it from zero)."""
    addr = address(addr)
    ban = store.bans.lift(addr, now or utc_now())
    if ban is None:
        raise NotFoundError(f"address {addr} is not banned; `vpbx security bans` lists the bans in force")
    return ban

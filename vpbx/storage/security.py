"""Storage of brute-force bans (vpbx.domain.security): table `security_bans`.

Rules: the only SQL for that table; returns domain Ban records. A ban is one row, kept after it ends: `lifted_at`
(when) and `lifted_by` ("expired" or "unban") close it; at most one open row per address (a unique index). A ban is
in force while it is open and `until` is in the future; timestamps are vpbx's ISO-8601 UTC text, so they compare as
text.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from vpbx.domain.security import Ban
from vpbx.domain.timestamps import from_iso, to_iso
from vpbx.storage.rows import Repo

LIFTED_EXPIRED = "expired"
LIFTED_UNBAN = "unban"


def _ban(row: Any) -> Ban:
    address, logins, failures, reason, banned_at, until = row
    return Ban(address=address, logins=tuple(json.loads(logins)), failures=int(failures),
               banned_at=from_iso(banned_at), until=from_iso(until), reason=reason)


_COLUMNS = "address, logins, failures, reason, banned_at, until"


class BanRepo(Repo):
    """Bans of addresses that failed SIP authentication too often."""

    def add(self, ban: Ban) -> None:
        """Store a new ban; an open row of the same address (an expired one the watcher had not closed yet) is
        closed first."""
        with self.write():
            self.conn.execute("UPDATE security_bans SET lifted_at = ?, lifted_by = ? "
                              "WHERE address = ? AND lifted_at IS NULL",
                              [to_iso(ban.banned_at), LIFTED_EXPIRED, ban.address])
            self.conn.execute(f"INSERT INTO security_bans ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                              [ban.address, json.dumps(list(ban.logins)), ban.failures, ban.reason,
                               to_iso(ban.banned_at), to_iso(ban.until)])

    def active(self, now: datetime) -> list[Ban]:
        """The bans in force at `now`, oldest first."""
        cur = self.conn.execute(f"SELECT {_COLUMNS} FROM security_bans WHERE lifted_at IS NULL AND until > ? "
                                "ORDER BY banned_at, address", [to_iso(now)])
        return [_ban(r) for r in cur]

    def lift(self, address: str, now: datetime) -> Ban | None:
        """Close the ban of `address` that is in force at `now` (an administrator's unban); None when there is none."""
        with self.write():
            row = self.conn.execute(f"SELECT id, {_COLUMNS} FROM security_bans WHERE address = ? "
                                    "AND lifted_at IS NULL AND until > ?", [address, to_iso(now)]).fetchone()
            if row is None:
                return None
            self.conn.execute("UPDATE security_bans SET lifted_at = ?, lifted_by = ? WHERE id = ?",
                              [to_iso(now), LIFTED_UNBAN, row[0]])
        return _ban(row[1:])

    def expire(self, now: datetime) -> list[Ban]:
        """Close every open ban whose time is up at `now` (lifted_at = its until); returns them."""
        with self.write():
            rows = self.conn.execute(f"SELECT id, {_COLUMNS} FROM security_bans WHERE lifted_at IS NULL "
                                     "AND until <= ? ORDER BY until, address", [to_iso(now)]).fetchall()
            for row in rows:
                self.conn.execute("UPDATE security_bans SET lifted_at = until, lifted_by = ? WHERE id = ?",
                                  [LIFTED_EXPIRED, row[0]])
        return [_ban(r[1:]) for r in rows]

    def history(self, address: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Every ban, newest first (open and closed), as dicts."""
        where, args = ("WHERE address = ?", [address]) if address else ("", [])
        cur = self.conn.execute(f"SELECT {_COLUMNS}, lifted_at, lifted_by FROM security_bans {where} "
                                "ORDER BY banned_at DESC, id DESC LIMIT ?", [*args, limit])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) | {"logins": json.loads(r[1])} for r in cur]

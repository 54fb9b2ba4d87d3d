"""Storage of phone numbers.

Rule: the only SQL for these tables; returns domain records or plain dicts; one transaction per change.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Sequence

from vpbx.domain.errors import ConflictError, NotFoundError
from vpbx.domain.records import Number
from vpbx.storage.rows import Repo, from_row, now_iso, to_row


class NumberRepo(Repo):
    """Phone numbers: the inventory, their routing columns and lifecycle state."""

    def add(self, number: Number) -> Number:
        return self.add_many([number])[0]

    def add_many(self, numbers: Sequence[Number]) -> list[Number]:
        with self.write():
            for n in numbers:
                if self._exists("numbers", "number", n.number):
                    raise ConflictError(f"number {n.number} already exists; change it with `vpbx number set {n.number} ...`")
                if n.trunk and not self._exists("trunks", "name", n.trunk):
                    raise NotFoundError(f"trunk {n.trunk} not found (for number {n.number}); add it with `vpbx trunk add {n.trunk} ...`")
                self.db["numbers"].insert({**to_row(n), "created_at": now_iso()})
        return list(numbers)

    def get(self, number: str) -> Number:
        return self._get("numbers", "number", number, Number, "number", "list numbers with `vpbx number list`")

    def find(self, number: str) -> Number | None:
        try:
            return self.get(number)
        except NotFoundError:
            return None

    def search(self, category: str | None = None, type: str | None = None, city: str | None = None,
                     operator: str | None = None, contains: str | None = None, status: str | None = None,
                     account: str | None = None) -> list[Number]:
        where, args = [], []
        for col, val in (("category", category), ("type", type), ("status", status), ("account", account)):
            if val:
                where.append(f"{col} = ?")
                args.append(val)
        for col, val in (("city", city), ("operator", operator)):
            if val:
                where.append(f"{col} LIKE ?")
                args.append(f"%{val}%")
        if contains:
            where.append("instr(number, ?) > 0")
            args.append(contains)
        rows = self.db["numbers"].rows_where(" AND ".join(where) or None, args, order_by="number")
        return [from_row(Number, r) for r in rows]

    def update(self, numbers: Sequence[str], **changes: Any) -> list[Number]:
        """Apply the same changes to several numbers in one transaction (all or nothing)."""
        out = []
        with self.write():
            for num in numbers:
                current = self.get(num)
                updated = replace(current, **changes)
                if updated.trunk and not self._exists("trunks", "name", updated.trunk):
                    raise NotFoundError(f"trunk {updated.trunk} not found; add it with `vpbx trunk add {updated.trunk} ...`")
                row = to_row(updated)
                self.db["numbers"].update(num, {k: row[k] for k in changes})
                out.append(updated)
        return out

    def users(self, number: str) -> list[str]:
        users = [f"SIP account {r[0]} (caller ID)" for r in
                 self.conn.execute("SELECT login FROM sip_accounts WHERE caller_id = ?", [number])]
        for dest_table, col in (("groups", "members"),):
            for (name, members) in self.conn.execute(f"SELECT name, {col} FROM {dest_table}"):
                if f"tel:{number}" in json.loads(members):
                    users.append(f"group {name}")
        for (name, options) in self.conn.execute("SELECT name, options FROM ivrs"):
            if any(dest == f"tel:{number}" for _d, dest in json.loads(options)):
                users.append(f"IVR {name}")
        return users

    def remove(self, number: str) -> None:
        with self.write():
            held = self.get(number)
            if held.account:
                raise ConflictError(f"number {number} is held by account {held.account} ({held.status}); "
                                    f"release it first with `vpbx number release {number}`")
            users = self.users(number)
            if users:
                raise ConflictError(f"number {number} is still used by {', '.join(users)}; change those first")
            self.db["numbers"].delete(number)

    def held_by(self, account: str, statuses: Sequence[str] | None = None) -> list[Number]:
        where, args = "account = ?", [account]
        if statuses:
            where += f" AND status IN ({', '.join('?' for _ in statuses)})"
            args += list(statuses)
        return [from_row(Number, r) for r in self.db["numbers"].rows_where(where, args, order_by="connected_on, number")]

    def with_status(self, *statuses: str) -> list[Number]:
        where = f"status IN ({', '.join('?' for _ in statuses)})"
        return [from_row(Number, r) for r in self.db["numbers"].rows_where(where, list(statuses), order_by="number")]

    def due(self, day: str) -> list[Number]:
        """Held numbers whose paid period ends before `day` (YYYY-MM-DD): due for renewal."""
        return [from_row(Number, r) for r in self.db["numbers"].rows_where(
            "status IN ('active', 'suspended', 'pending_documents') AND paid_until IS NOT NULL AND paid_until < ?",
            [day], order_by="number")]

    def status_counts(self) -> list[dict[str, Any]]:
        return [{"status": s, "numbers": n} for s, n in
                self.conn.execute("SELECT status, count(*) FROM numbers GROUP BY status ORDER BY status")]

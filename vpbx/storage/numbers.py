"""Storage of phone numbers: the inventory, each number's routing columns and its lifecycle state.

Rules: the only SQL for table `numbers`; returns Number records; every change is one transaction (several numbers
change all together or not at all). Refusals that protect the data (a duplicate, an unknown trunk, removing a
number something still names) are here; the lifecycle's rules (who may hold a number, when) are in
vpbx.services.lifecycle.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

from vpbx.domain.destinations import Destination
from vpbx.domain.errors import ConflictError, DestinationError, NotFoundError
from vpbx.domain.records import Number
from vpbx.storage.routing import destination_users
from vpbx.storage.rows import Repo, now_iso, to_row


class NumberRepo(Repo):
    """Phone numbers: the inventory, their routing columns and lifecycle state."""

    def add(self, number: Number) -> Number:
        return self.add_many([number])[0]

    def add_many(self, numbers: Sequence[Number]) -> list[Number]:
        """Insert new numbers in one transaction (all or none): one lookup per 500 numbers for duplicates, one per
        trunk named, and one `executemany` (an import of 100 000 rows is a few seconds, not one INSERT each)."""
        with self.write():
            for start in range(0, len(numbers), 500):
                chunk = [n.number for n in numbers[start:start + 500]]
                marks = ",".join("?" * len(chunk))
                taken = self.conn.execute(f"SELECT number FROM numbers WHERE number IN ({marks}) ORDER BY number",
                                          chunk).fetchone()
                if taken:
                    raise ConflictError(f"number {taken[0]} already exists; "
                                        f"change it with `vpbx number set {taken[0]} ...`")
            for trunk in dict.fromkeys(n.trunk for n in numbers if n.trunk):
                if not self._exists("trunks", "name", trunk):
                    first = next(n.number for n in numbers if n.trunk == trunk)
                    raise NotFoundError(f"trunk {trunk} not found (for number {first}); "
                                        f"add it with `vpbx trunk add {trunk} ...`")
            if numbers:
                cols = [f.name for f in fields(Number)]
                sql = (f"INSERT INTO numbers ({', '.join(cols)}, created_at) "
                       f"VALUES ({', '.join('?' * (len(cols) + 1))})")
                stamp = now_iso()
                self.conn.executemany(sql, (_values(n, cols, stamp) for n in numbers))
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
        where: list[str] = []
        args: list[str] = []
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
        return self._records("numbers", Number, " AND ".join(where) or None, args, order_by="number")

    def update(self, numbers: Sequence[str], **changes: Any) -> list[Number]:
        """Apply the same changes to several numbers in one transaction (all or nothing)."""
        out: list[Number] = []
        with self.write():
            for num in numbers:
                current = self.get(num)
                updated = replace(current, **changes)
                if updated.trunk and not self._exists("trunks", "name", updated.trunk):
                    raise NotFoundError(f"trunk {updated.trunk} not found; "
                                        f"add it with `vpbx trunk add {updated.trunk} ...`")
                row = to_row(updated)
                self._table("numbers").update(num, {k: row[k] for k in changes})
                out.append(updated)
        return out

    def used_by(self, number: str) -> list[str]:
        """What still names `number`: SIP accounts showing it as caller ID, ring groups and IVR menus dialling it."""
        users = [f"SIP account {r[0]} (caller ID)" for r in
                 self.conn.execute("SELECT login FROM sip_accounts WHERE caller_id = ? ORDER BY login", [number])]
        try:
            target = Destination("tel", number)
        except DestinationError:              # not E.164: no group or IVR can dial it
            return users
        return users + destination_users(self.conn, target, numbers=False)

    def remove(self, number: str) -> None:
        with self.write():
            held = self.get(number)
            if held.account:
                raise ConflictError(f"number {number} is held by account {held.account} ({held.status}); "
                                    f"release it first with `vpbx number release {number}`")
            users = self.used_by(number)
            if users:
                raise ConflictError(f"number {number} is still used by {', '.join(users)}; change those first")
            self._table("numbers").delete(number)

    def held_by(self, account: str, statuses: Sequence[str] | None = None) -> list[Number]:
        where, args = "account = ?", [account]
        if statuses:
            where += f" AND status IN ({', '.join('?' for _ in statuses)})"
            args += list(statuses)
        return self._records("numbers", Number, where, args, order_by="connected_on, number")

    def with_status(self, *statuses: str) -> list[Number]:
        where = f"status IN ({', '.join('?' for _ in statuses)})"
        return self._records("numbers", Number, where, statuses, order_by="number")

    def due(self, day: str) -> list[Number]:
        """Held numbers whose paid period ends before `day` (YYYY-MM-DD): due for renewal."""
        return self._records(
            "numbers", Number,
            "status IN ('active', 'suspended', 'pending_documents') AND paid_until IS NOT NULL AND paid_until < ?",
            [day], order_by="number")

    def credit_due(self, day: str) -> list[Number]:
        """Paid numbers on a plan whose monthly call credit is refilled on or before `day` (YYYY-MM-DD)."""
        return self._records(
            "numbers", Number,
            "status IN ('active', 'suspended', 'pending_documents') AND plan IS NOT NULL "
            "AND credit_renews_on IS NOT NULL AND credit_renews_on <= ?",
            [day], order_by="number")

    def status_counts(self) -> list[dict[str, Any]]:
        return [{"status": s, "numbers": n} for s, n in
                self.conn.execute("SELECT status, count(*) FROM numbers GROUP BY status ORDER BY status")]


def _values(n: Number, cols: Sequence[str], stamp: str) -> list[Any]:
    """One Number as the INSERT's parameters (what `to_row` stores, without a deep copy per row)."""
    out: list[Any] = []
    for col in cols:
        value = getattr(n, col)
        if isinstance(value, tuple):
            value = json.dumps(list(value))
        elif isinstance(value, bool):
            value = int(value)
        out.append(value)
    out.append(stamp)
    return out

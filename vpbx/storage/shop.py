"""Storage of the number shop's paperwork.

Rule: the only SQL for these tables; returns domain records or plain dicts; one transaction per change.
"""
from __future__ import annotations

import json
from typing import Any

from vpbx.domain.errors import NotFoundError
from vpbx.storage.rows import Repo, now_iso


class ShopRepo(Repo):
    """The number shop's paperwork: end users' documents, the waitlist, billing runs."""

    def add_document(self, number: str, account: str | None, filename: str, path: str, sha256: str, size: int) -> int:
        with self.write():
            self.store.numbers.get(number)
            return int(self.db["documents"].insert({
                "number": number, "account": account, "filename": filename, "path": path, "sha256": sha256,
                "size": size, "added_at": now_iso()}).last_pk)

    def list_documents(self, number: str | None = None) -> list[dict[str, Any]]:
        where, args = ("number = ?", [number]) if number else (None, [])
        return list(self.db["documents"].rows_where(where, args, order_by="id"))

    def add_waitlist(self, account: str, country: str, city: str, type: str) -> dict[str, Any]:
        with self.write():
            self.store.accounts.get(account)
            pk = self.db["waitlist"].insert({"account": account, "country": country, "city": city, "type": type,
                                             "created_at": now_iso()}).last_pk
            return dict(next(self.db["waitlist"].rows_where("id = ?", [pk])))

    def list_waitlist(self, open_only: bool = False) -> list[dict[str, Any]]:
        return list(self.db["waitlist"].rows_where("notified_at IS NULL" if open_only else None, order_by="id"))

    def remove_waitlist(self, entry_id: int) -> None:
        with self.write():
            if not self.conn.execute("DELETE FROM waitlist WHERE id = ?", [entry_id]).rowcount:
                raise NotFoundError(f"waitlist entry {entry_id} not found; list them with `vpbx waitlist list`")

    def close_waitlist(self, entry_id: int, number: str) -> bool:
        """Mark an entry notified about `number`; False if it already was (so it is mailed once)."""
        with self.write():
            return self.conn.execute("UPDATE waitlist SET notified_at = ?, notified_number = ? "
                                     "WHERE id = ? AND notified_at IS NULL", [now_iso(), number, entry_id]).rowcount == 1

    def record_billing_run(self, run_date: str, summary: dict[str, Any]) -> None:
        with self.write():
            self.conn.execute("INSERT OR REPLACE INTO billing_runs (run_date, ran_at, summary) VALUES (?, ?, ?)",
                              [run_date, now_iso(), json.dumps(summary)])

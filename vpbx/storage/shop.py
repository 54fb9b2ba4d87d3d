"""Storage of the number shop's paperwork: end users' documents, the waitlist, the record of billing runs.

Rules: the only SQL for these tables; returns plain dicts; every change is one transaction. A waitlist entry is
marked notified at most once (`mark_waitlist_notified` is a compare-and-set), so its e-mail is queued once even when
two billing runs or imports race.
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
            cur = self.conn.execute(
                "INSERT INTO documents (number, account, filename, path, sha256, size, added_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", [number, account, filename, path, sha256, size, now_iso()])
            return int(cur.lastrowid or 0)

    def list_documents(self, number: str | None = None) -> list[dict[str, Any]]:
        where, args = ("number = ?", [number]) if number else (None, [])
        return list(self._table("documents").rows_where(where, args, order_by="id"))

    def move_documents(self, paths: dict[int, str]) -> None:
        """Point documents (by id) at their files' new paths (a restore into another directory); one transaction."""
        with self.write():
            for doc_id, path in paths.items():
                if not self.conn.execute("UPDATE documents SET path = ? WHERE id = ?", [path, doc_id]).rowcount:
                    raise NotFoundError(f"document {doc_id} not found; list them with `vpbx document list`")

    def add_waitlist(self, account: str, country: str, city: str, type: str) -> dict[str, Any]:
        with self.write():
            self.store.accounts.get(account)
            pk = self._table("waitlist").insert({"account": account, "country": country, "city": city, "type": type,
                                                "created_at": now_iso()}).last_pk
            return dict(next(self._table("waitlist").rows_where("id = ?", [pk])))

    def list_waitlist(self, open_only: bool = False) -> list[dict[str, Any]]:
        return list(self._table("waitlist").rows_where("notified_at IS NULL" if open_only else None, order_by="id"))

    def remove_waitlist(self, entry_id: int) -> None:
        with self.write():
            if not self.conn.execute("DELETE FROM waitlist WHERE id = ?", [entry_id]).rowcount:
                raise NotFoundError(f"waitlist entry {entry_id} not found; list them with `vpbx waitlist list`")

    def mark_waitlist_notified(self, entry_id: int, number: str) -> bool:
        """Mark an entry notified about `number`; False if it already was (so it is mailed once)."""
        with self.write():
            cur = self.conn.execute("UPDATE waitlist SET notified_at = ?, notified_number = ? "
                                    "WHERE id = ? AND notified_at IS NULL", [now_iso(), number, entry_id])
            return cur.rowcount == 1

    def record_billing_run(self, run_date: str, summary: dict[str, Any]) -> None:
        with self.write():
            self.conn.execute("INSERT OR REPLACE INTO billing_runs (run_date, ran_at, summary) VALUES (?, ?, ?)",
                              [run_date, now_iso(), json.dumps(summary)])

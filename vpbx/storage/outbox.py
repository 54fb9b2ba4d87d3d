"""Storage of e-mail outbox.

Rule: the only SQL for these tables; returns domain records or plain dicts; one transaction per change.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from vpbx.domain.errors import NotFoundError
from vpbx.storage.rows import Repo, now_iso


class OutboxRepo(Repo):
    """E-mail outbox: voicemail messages and notices, kept until delivered."""

    def add_voicemail(self, recording: str, call_id: str, number: str, caller: str, emails: Sequence[str],
                      duration: float) -> None:
        """Put a recorded message in the outbox (kept until delivered)."""
        with self.write():
            self.db["voicemails"].insert({"recording": recording, "call_id": call_id, "number": number, "caller": caller,
                                          "emails": json.dumps(list(emails)), "duration": duration,
                                          "created_at": now_iso()}, ignore=True)

    def list_voicemails(self, undelivered_only: bool = False) -> list[dict[str, Any]]:
        where = "delivered_at IS NULL" if undelivered_only else None
        return list(self.db["voicemails"].rows_where(where, order_by="created_at"))

    def voicemail(self, recording: str) -> dict[str, Any] | None:
        rows = list(self.db["voicemails"].rows_where("recording = ?", [recording]))
        return rows[0] if rows else None

    def due_voicemails(self, now: str) -> list[dict[str, Any]]:
        """Undelivered messages whose next attempt is due at ISO time `now` (oldest first)."""
        return list(self.db["voicemails"].rows_where(
            "delivered_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= ?)", [now], order_by="created_at"))

    def claim_voicemail(self, recording: str, now: str, lease_until: str) -> dict[str, Any] | None:
        """Take a due message for one delivery attempt (next_attempt_at := lease_until), so that two senders never
        send it at the same time; None if it is delivered, unknown or not due (someone else holds it)."""
        with self.write():
            cur = self.conn.execute(
                "UPDATE voicemails SET next_attempt_at = ? WHERE recording = ? AND delivered_at IS NULL "
                "AND (next_attempt_at IS NULL OR next_attempt_at <= ?)", [lease_until, recording, now])
            return self.voicemail(recording) if cur.rowcount == 1 else None

    def mark_voicemail_delivered(self, recording: str, delivered_at: str | None = None,
                                 note: str | None = None) -> None:
        """Delivered (attempts counts this try too); `note` e.g. recipients the server refused."""
        with self.write():
            self.conn.execute(
                "UPDATE voicemails SET delivered_at = ?, attempts = attempts + 1, last_error = ?, "
                "next_attempt_at = NULL WHERE recording = ?", [delivered_at or now_iso(), note, recording])

    def mark_voicemail_failed(self, recording: str, error: str, next_attempt_at: str) -> None:
        with self.write():
            self.conn.execute(
                "UPDATE voicemails SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                "WHERE recording = ? AND delivered_at IS NULL", [error, next_attempt_at, recording])

    def retry_voicemails(self, recording: str | None = None) -> int:
        """Make undelivered messages (all, or one) due now; returns how many."""
        with self.write():
            if recording is not None and not self._exists("voicemails", "recording", recording):
                raise NotFoundError(f"voicemail {recording} not found; list them with `vpbx voicemail list`")
            where, args = "delivered_at IS NULL", []
            if recording is not None:
                where, args = where + " AND recording = ?", [recording]
            return self.conn.execute(f"UPDATE voicemails SET next_attempt_at = NULL WHERE {where}", args).rowcount

    def queue_mail(self, recipient: str, subject: str, body: str) -> int:
        with self.write():
            return int(self.db["mail_outbox"].insert({"recipient": recipient, "subject": subject, "body": body,
                                                      "created_at": now_iso()}).last_pk)

    def list_mail(self, unsent_only: bool = False) -> list[dict[str, Any]]:
        return list(self.db["mail_outbox"].rows_where("sent_at IS NULL" if unsent_only else None, order_by="id"))

    def mark_mail(self, mail_id: int, error: str | None) -> None:
        with self.write():
            if error is None:
                self.conn.execute("UPDATE mail_outbox SET sent_at = ?, attempts = attempts + 1, last_error = NULL "
                                  "WHERE id = ?", [now_iso(), mail_id])
            else:
                self.conn.execute("UPDATE mail_outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                                  [error, mail_id])

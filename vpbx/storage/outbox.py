"""Storage of the one e-mail outbox: voicemail messages and notices (connection, waitlist), kept until delivered.

Rules: the only SQL for table `outbox`; a message leaves it only by being delivered (`mark_delivered`), never by a
failure. Three columns say what a sender may do with an undelivered message:

    next_attempt_at   backoff: not tried before this instant (NULL: due now); `make_due` clears it
    leased_until      a sender is trying it until this instant; `claim` takes the lease only when nobody holds one
                      and the message is due, so two senders (the engine's loop, a CLI command, two engines)
                      never send one message at the same time; `mark_*` and `release` end the lease
    delivered_at      set once; a delivered message is never claimed again

What a message says and how it is sent is decided in vpbx.services.outbox; the clock is the caller's (`now`).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vpbx.domain.errors import NotFoundError
from vpbx.storage.rows import Repo, now_iso

KINDS = ("voicemail", "notice")


@dataclass(frozen=True)
class OutboxMessage:
    """One e-mail waiting in (or delivered from) the outbox.

    kind 'notice': `subject` and `body` are the text as queued. kind 'voicemail': `recording` names Asterisk's stored
    recording (and the spool copy); `number`, `caller`, `duration` and `created_at` are what its e-mail says.
    """

    id: int
    kind: str
    recipients: tuple[str, ...]
    created_at: str
    subject: str | None = None
    body: str | None = None
    recording: str | None = None
    call_id: str | None = None
    number: str | None = None
    caller: str | None = None
    duration: float | None = None
    next_attempt_at: str | None = None
    leased_until: str | None = None
    attempts: int = 0
    last_error: str | None = None
    delivered_at: str | None = None


_COLUMNS = ("id", "kind", "recipients", "created_at", "subject", "body", "recording", "call_id", "number", "caller",
            "duration", "next_attempt_at", "leased_until", "attempts", "last_error", "delivered_at")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM outbox"
_UNDELIVERED_DUE = "delivered_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= :now)"
_UNLEASED = "(leased_until IS NULL OR leased_until <= :now)"


def _message(row: Sequence[Any]) -> OutboxMessage:
    data = dict(zip(_COLUMNS, row, strict=True))
    data["recipients"] = tuple(json.loads(data["recipients"]))
    return OutboxMessage(**data)


class OutboxRepo(Repo):
    """The e-mail outbox: queue, claim with a lease, mark delivered or failed."""

    # ---- queueing ---------------------------------------------------------------------------------------------
    def queue_voicemail(self, recording: str, call_id: str, number: str, caller: str, recipients: Sequence[str],
                        duration: float) -> None:
        """Put a recorded message in the outbox; queueing one recording twice keeps the first."""
        with self.write():
            self.conn.execute(
                "INSERT OR IGNORE INTO outbox (kind, recipients, recording, call_id, number, caller, duration, "
                "created_at) VALUES ('voicemail', ?, ?, ?, ?, ?, ?, ?)",
                [json.dumps(list(recipients)), recording, call_id, number, caller, float(duration), now_iso()])

    def queue_notice(self, recipients: Sequence[str], subject: str, body: str) -> int:
        """Put a notice in the outbox; returns its id."""
        with self.write():
            cur = self.conn.execute(
                "INSERT INTO outbox (kind, recipients, subject, body, created_at) VALUES ('notice', ?, ?, ?, ?)",
                [json.dumps(list(recipients)), subject, body, now_iso()])
            return int(cur.lastrowid or 0)

    # ---- reading ----------------------------------------------------------------------------------------------
    def get(self, message_id: int) -> OutboxMessage | None:
        row = self.conn.execute(f"{_SELECT} WHERE id = ?", [message_id]).fetchone()
        return _message(row) if row else None

    def find_voicemail(self, recording: str) -> OutboxMessage | None:
        row = self.conn.execute(f"{_SELECT} WHERE recording = ?", [recording]).fetchone()
        return _message(row) if row else None

    def messages(self, kind: str | None = None, undelivered_only: bool = False) -> list[OutboxMessage]:
        """Messages (of one kind, or all) oldest first."""
        where, args = [], []
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if undelivered_only:
            where.append("delivered_at IS NULL")
        sql = _SELECT + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY created_at, id"
        return [_message(r) for r in self.conn.execute(sql, args)]

    def due(self, now: str, kinds: Sequence[str] = KINDS) -> list[OutboxMessage]:
        """Undelivered messages of `kinds` whose backoff is over at ISO time `now` and that nobody holds, oldest
        first. Reading is not taking: `claim` each before trying it."""
        args: dict[str, str] = {"now": now, **{f"kind{i}": k for i, k in enumerate(kinds)}}
        sql = (f"{_SELECT} WHERE {_UNDELIVERED_DUE} AND {_UNLEASED} "
               f"AND kind IN ({', '.join(f':kind{i}' for i in range(len(kinds))) or 'NULL'}) ORDER BY created_at, id")
        return [_message(r) for r in self.conn.execute(sql, args)]

    # ---- one delivery attempt -----------------------------------------------------------------------------------
    def claim(self, message_id: int, now: str, lease_until: str) -> OutboxMessage | None:
        """Take a due message for one delivery attempt (leased_until := lease_until); None if it is delivered,
        unknown, not due yet, or another sender holds its lease."""
        with self.write():
            cur = self.conn.execute(
                f"UPDATE outbox SET leased_until = :until WHERE id = :id AND {_UNDELIVERED_DUE} AND {_UNLEASED}",
                {"until": lease_until, "id": message_id, "now": now})
            return self.get(message_id) if cur.rowcount == 1 else None

    def mark_delivered(self, message_id: int, delivered_at: str, note: str | None = None) -> None:
        """The SMTP server accepted it (this try counts as an attempt); `note` e.g. recipients the server refused."""
        with self.write():
            self.conn.execute(
                "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, last_error = ?, next_attempt_at = NULL, "
                "leased_until = NULL WHERE id = ? AND delivered_at IS NULL", [delivered_at, note, message_id])

    def mark_failed(self, message_id: int, error: str, next_attempt_at: str) -> None:
        """This try failed: count it, keep the reason, and back off until `next_attempt_at`."""
        with self.write():
            self.conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, leased_until = NULL "
                "WHERE id = ? AND delivered_at IS NULL", [error, next_attempt_at, message_id])

    def release(self, message_id: int) -> None:
        """Give a claimed message back untried (e.g. the engine is stopping): no attempt counted, due as before."""
        with self.write():
            self.conn.execute("UPDATE outbox SET leased_until = NULL WHERE id = ?", [message_id])

    def make_due(self, kind: str | None = None, recording: str | None = None) -> int:
        """End the backoff of undelivered messages (all, of one kind, or one voicemail recording): they are due now.
        A lease is left alone (whoever holds it is trying already). Returns how many."""
        with self.write():
            if recording is not None and not self._exists("outbox", "recording", recording):
                raise NotFoundError(f"voicemail {recording} not found; list them with `vpbx voicemail list`")
            where, args = ["delivered_at IS NULL"], []
            if kind is not None:
                where.append("kind = ?")
                args.append(kind)
            if recording is not None:
                where.append("recording = ?")
                args.append(recording)
            return self.conn.execute(f"UPDATE outbox SET next_attempt_at = NULL WHERE {' AND '.join(where)}",
                                     args).rowcount

    # ---- the CLI's views (`vpbx voicemail list`, `vpbx notices list`: their columns predate the one outbox) --------
    def list_voicemails(self, undelivered_only: bool = False) -> list[dict[str, Any]]:
        return [{"recording": m.recording, "call_id": m.call_id, "number": m.number, "caller": m.caller,
                 "emails": json.dumps(list(m.recipients)), "duration": m.duration, "created_at": m.created_at,
                 "delivered_at": m.delivered_at, "attempts": m.attempts, "last_error": m.last_error,
                 "next_attempt_at": m.next_attempt_at}
                for m in self.messages("voicemail", undelivered_only)]

    def list_notices(self, unsent_only: bool = False) -> list[dict[str, Any]]:
        return [{"id": m.id, "recipient": ", ".join(m.recipients), "subject": m.subject, "body": m.body,
                 "created_at": m.created_at, "sent_at": m.delivered_at, "attempts": m.attempts,
                 "last_error": m.last_error}
                for m in sorted(self.messages("notice", unsent_only), key=lambda m: m.id)]

"""Storage of call recordings: one row per recorded call; the audio itself is a file (vpbx.services.recordings).

Rules: the only SQL for table `recordings`; returns Recording records; every change is one transaction. A call has at
most one recording (call_id is unique): `put` adds it or replaces the audio facts of the one it has, keeping its id.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vpbx.domain.errors import NotFoundError
from vpbx.storage.rows import Repo, now_iso

__all__ = ["Recording", "RecordingRepo"]


@dataclass(frozen=True)
class Recording:
    id: int
    call_id: str
    name: str                   # Asterisk's recording name
    number: str
    caller: str
    started_at: str             # ISO-8601 UTC: when the recorded call was answered
    duration: float             # seconds
    bytes: int
    sha256: str
    path: str                   # the WAV file
    created_at: str
    expires_at: str | None      # ISO-8601 UTC; None: kept until removed


_COLUMNS = ("id", "call_id", "name", "number", "caller", "started_at", "duration", "bytes", "sha256", "path",
            "created_at", "expires_at")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM recordings"


def _record(row: Sequence[Any]) -> Recording:
    return Recording(*row)


class RecordingRepo(Repo):
    """Call recordings (one row per recorded call)."""

    def put(self, *, call_id: str, name: str, number: str, caller: str, started_at: str, duration: float,
            size: int, sha256: str, path: str, expires_at: str | None) -> tuple[Recording, Recording | None]:
        """Add the recording of `call_id`, or replace the audio facts of the one it has (same id); returns
        (the recording now, the one it replaced or None)."""
        with self.write():
            old = self.for_call(call_id)
            values = [name, number, caller, started_at, duration, size, sha256, path, expires_at]
            if old is None:
                self.conn.execute("INSERT INTO recordings (name, number, caller, started_at, duration, bytes, sha256, "
                                  "path, expires_at, call_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                  [*values, call_id, now_iso()])
            else:
                self.conn.execute("UPDATE recordings SET name = ?, number = ?, caller = ?, started_at = ?, "
                                  "duration = ?, bytes = ?, sha256 = ?, path = ?, expires_at = ? WHERE call_id = ?",
                                  [*values, call_id])
            new = self.for_call(call_id)
            assert new is not None
            return new, old

    def get(self, rec_id: int) -> Recording:
        row = self.conn.execute(f"{_SELECT} WHERE id = ?", [rec_id]).fetchone()
        if row is None:
            raise NotFoundError(f"recording {rec_id} not found; list them with `vpbx recording list`")
        return _record(row)

    def for_call(self, call_id: str) -> Recording | None:
        row = self.conn.execute(f"{_SELECT} WHERE call_id = ?", [call_id]).fetchone()
        return _record(row) if row else None

    def ids_for_calls(self, call_ids: Iterable[str]) -> dict[str, int]:
        """call_id -> recording id, for the calls of `call_ids` that have a recording."""
        wanted = list(dict.fromkeys(call_ids))
        out: dict[str, int] = {}
        for i in range(0, len(wanted), 500):        # SQLite's limit on bound parameters is 999 on old builds
            chunk = wanted[i:i + 500]
            sql = f"SELECT call_id, id FROM recordings WHERE call_id IN ({', '.join('?' for _ in chunk)})"
            out.update({call_id: rec_id for call_id, rec_id in self.conn.execute(sql, chunk)})
        return out

    def search(self, number: str | None = None, since: str | None = None, limit: int | None = None
               ) -> list[Recording]:
        """Newest first; `since` is an ISO-8601 UTC instant or day the recording started at or after."""
        where: list[str] = []
        args: list[Any] = []
        if number:
            where.append("number = ?")
            args.append(number)
        if since:
            where.append("started_at >= ?")
            args.append(since)
        sql = f"{_SELECT}{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY started_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [_record(r) for r in self.conn.execute(sql, args)]

    def expired(self, now: str) -> list[Recording]:
        """Recordings whose retention ended at or before `now` (ISO-8601 UTC), oldest first."""
        return [_record(r) for r in self.conn.execute(
            f"{_SELECT} WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at, id", [now])]

    def paths(self) -> set[str]:
        """Every file a recording row names."""
        return {r[0] for r in self.conn.execute("SELECT path FROM recordings")}

    def delete(self, rec_ids: Sequence[int]) -> None:
        with self.write():
            self.conn.executemany("DELETE FROM recordings WHERE id = ?", [[i] for i in rec_ids])

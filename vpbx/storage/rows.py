"""Row <-> record conversion and the base of every repository.

Rule: repositories share the Store's one connection and its one transaction discipline (`Store.write`); a record
crosses this boundary as a frozen domain dataclass (tuples stored as JSON text, booleans as 0/1), never as a row a
caller could mutate back into the database.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any, TypeVar

import sqlite_utils
from sqlite_utils.db import Table

from vpbx.domain.errors import NotFoundError
from vpbx.domain.timestamps import utc_now_iso

if TYPE_CHECKING:
    from vpbx.storage.store import Store

# Endpoint names asterisk-conf/ defines itself (uri: destinations dial out through vpbx-external).
RESERVED_ENDPOINTS = frozenset({"vpbx-external", "anonymous"})

R = TypeVar("R")

_JSON_TUPLES = {"forward_to", "vm_emails", "members", "codecs", "allow_countries", "allow_prefixes"}
_BOOLEANS = {"register", "extensions", "requires_documents", "srtp", "record_calls"}


def now_iso() -> str:
    """The time every `created_at` / `*_at` column is stamped with (vpbx.domain.timestamps' one format)."""
    return utc_now_iso()


def to_row(record: Any) -> dict[str, Any]:
    row = asdict(record)
    for key, value in list(row.items()):
        if key in _JSON_TUPLES or key == "options":
            row[key] = json.dumps([list(v) if isinstance(v, (tuple, list)) and key == "options" else v for v in value])
        elif isinstance(value, bool):
            row[key] = int(value)
    return row


def from_row(cls: type[R], row: dict[str, Any]) -> R:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]  # every record class is a dataclass
    data = {k: v for k, v in row.items() if k in names}
    for key in list(data):
        if key in _JSON_TUPLES:
            data[key] = tuple(json.loads(data[key] or "[]"))
        elif key == "options":
            data[key] = tuple(tuple(pair) for pair in json.loads(data[key] or "[]"))
        elif key in _BOOLEANS:
            data[key] = bool(data[key])
    return cls(**data)


class Repo:
    """One aggregate's tables, on the Store's connection."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def conn(self) -> sqlite3.Connection:
        return self.store.conn

    @property
    def db(self) -> sqlite_utils.Database:
        return self.store.db

    def _table(self, name: str) -> Table:
        return self.store.db.table(name)

    def write(self) -> AbstractContextManager[Store]:
        return self.store.write()

    def _get(self, table: str, key: str, value: str, cls: type[R], what: str, fix: str) -> R:
        rows = list(self._table(table).rows_where(f"{key} = ?", [value]))
        if not rows:
            raise NotFoundError(f"{what} {value} not found; {fix}")
        return from_row(cls, rows[0])

    def _records(self, table: str, cls: type[R], where: str | None = None, args: Sequence[Any] = (), *,
                 order_by: str) -> list[R]:
        """The rows of `table` matching `where` (SQL, `?` for each of `args`), in `order_by` order, as records."""
        return [from_row(cls, r) for r in self._table(table).rows_where(where, list(args), order_by=order_by)]

    def _insert(self, table: str, record: Any, **columns: Any) -> None:
        """Insert `record` (plus any other `columns`) as a new row of `table`, stamped `created_at` now."""
        self._table(table).insert({**to_row(record), **columns, "created_at": now_iso()})

    def _exists(self, table: str, key: str, value: str) -> bool:
        return bool(self.conn.execute(f"SELECT 1 FROM {table} WHERE {key} = ?", [value]).fetchone())

    def _scalar(self, sql: str, args: list[Any] | tuple[Any, ...] = ()) -> Any:
        """The first column of the first row (None when there is no row)."""
        row = self.conn.execute(sql, args).fetchone()
        return row[0] if row else None

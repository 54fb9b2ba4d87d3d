"""Row <-> record conversion and the base of every repository.

Rule: repositories share one connection and one transaction discipline (Store.write).
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ContextManager

import sqlite_utils

from vpbx.domain.errors import NotFoundError

if TYPE_CHECKING:
    from vpbx.storage.store import Store

# Endpoint names asterisk-conf/ defines itself (uri: destinations dial out through vpbx-external).
RESERVED_ENDPOINTS = frozenset({"vpbx-external", "anonymous"})


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


_JSON_TUPLES = {"forward_to", "vm_emails", "members"}


def to_row(record: Any) -> dict[str, Any]:
    row = asdict(record)
    for key, value in list(row.items()):
        if key in _JSON_TUPLES or key == "options":
            row[key] = json.dumps([list(v) if isinstance(v, (tuple, list)) and key == "options" else v for v in value])
        elif isinstance(value, bool):
            row[key] = int(value)
    return row


def from_row(cls: type, row: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    data = {k: v for k, v in row.items() if k in names}
    for key in list(data):
        if key in _JSON_TUPLES:
            data[key] = tuple(json.loads(data[key] or "[]"))
        elif key == "options":
            data[key] = tuple(tuple(pair) for pair in json.loads(data[key] or "[]"))
        elif key in ("register", "extensions", "requires_documents"):
            data[key] = bool(data[key])
    return cls(**data)


class Repo:
    """One aggregate's tables, on the Store's connection."""

    def __init__(self, store: "Store") -> None:
        self.store = store

    @property
    def conn(self) -> sqlite3.Connection:
        return self.store.conn

    @property
    def db(self) -> sqlite_utils.Database:
        return self.store.db

    def write(self) -> ContextManager["Store"]:
        return self.store.write()

    def _get(self, table: str, key: str, value: str, cls: type, what: str, fix: str) -> Any:
        rows = list(self.db[table].rows_where(f"{key} = ?", [value]))
        if not rows:
            raise NotFoundError(f"{what} {value} not found; {fix}")
        return from_row(cls, rows[0])

    def _exists(self, table: str, key: str, value: str) -> bool:
        return bool(self.conn.execute(f"SELECT 1 FROM {table} WHERE {key} = ?", [value]).fetchone())

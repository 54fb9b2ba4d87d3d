"""The Store: one SQLite database (WAL, foreign keys on), its transactions, and one repository per aggregate.

Rules: every change is one `BEGIN IMMEDIATE` transaction (`Store.write`); repositories (`store.numbers`, `store.calls`,
`store.accounts`, ...) hold the SQL of their tables and return domain records, never rows.
"""
from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils

from vpbx.storage.calls import CallRepo
from vpbx.storage.ledger import AccountRepo, RateRepo
from vpbx.storage.numbers import NumberRepo
from vpbx.storage.outbox import OutboxRepo
from vpbx.storage.routing import GroupRepo, IvrRepo, SipAccountRepo, TrunkRepo
from vpbx.storage.schema import migrations
from vpbx.storage.shop import ShopRepo

BUSY_TIMEOUT_S = 30.0


class Store:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self.numbers = NumberRepo(self)
        self.sip_accounts = SipAccountRepo(self)
        self.trunks = TrunkRepo(self)
        self.groups = GroupRepo(self)
        self.ivrs = IvrRepo(self)
        self.calls = CallRepo(self)
        self.outbox = OutboxRepo(self)
        self.accounts = AccountRepo(self)
        self.rates = RateRepo(self)
        self.shop = ShopRepo(self)

    @classmethod
    def open(cls, path: Path | str) -> "Store":
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():  # SIP and trunk passwords live here: owner-only from the first byte
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S)
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        store = cls(conn)
        store._retrying(lambda: conn.execute("PRAGMA journal_mode = WAL"))
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        with store.write():
            migrations.apply(store.db)
        return store

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _retrying(fn: Any, attempts: int = 50) -> Any:
        for attempt in range(attempts):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))

    @contextlib.contextmanager
    def write(self) -> Iterator["Store"]:
        """One write transaction, taken with BEGIN IMMEDIATE so concurrent writers wait instead of deadlocking."""
        if self.conn.in_transaction:
            yield self
            return
        self._retrying(lambda: self.conn.execute("BEGIN IMMEDIATE"))
        try:
            yield self
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def schema_version(self) -> list[str]:
        return [m.name for m in migrations.applied(self.db)]

    def database_path(self) -> Path | None:
        """The database file (None for an in-memory database): the voicemail spool lives next to it."""
        for _seq, name, file in self.conn.execute("PRAGMA database_list"):
            if name == "main":
                return Path(file) if file else None
        return None

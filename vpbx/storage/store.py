"""The Store: one SQLite database (WAL, foreign keys on), its transactions, and one repository per aggregate.

Rules: every change is one `BEGIN IMMEDIATE` transaction (`Store.write`), so a writer takes the write lock before it
reads and two writers queue instead of deadlocking; waiting for the lock is SQLite's own busy handler
(`busy_timeout`, 30 s), never a sleep-and-retry loop here. Repositories (`store.numbers`, `store.calls`,
`store.outbox`, ...) hold the SQL of their tables and return domain records or plain dicts, never live rows.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from vpbx.storage.calls import CallRepo
from vpbx.storage.ledger import AccountRepo, RateRepo
from vpbx.storage.numbers import NumberRepo
from vpbx.storage.outbox import OutboxRepo
from vpbx.storage.routing import GroupRepo, IvrRepo, SipAccountRepo, TrunkRepo
from vpbx.storage.schema import migrations
from vpbx.storage.shop import ShopRepo

__all__ = ["BUSY_TIMEOUT_S", "Store", "migrations"]

BUSY_TIMEOUT_S = 30.0
WAL_SWITCH_ATTEMPTS = 50


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
    def open(cls, path: Path | str) -> Store:
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():  # SIP and trunk passwords live here: owner-only from the first byte
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        # `timeout` installs SQLite's busy handler: a statement that meets a lock waits for it up to 30 s
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            _use_wal(conn)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            store = cls(conn)
            with store.write():
                migrations.apply(store.db)
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[Store]:
        """One write transaction, taken with BEGIN IMMEDIATE so concurrent writers wait (busy_timeout) for the
        lock instead of deadlocking; nested calls join the transaction already open."""
        if self.conn.in_transaction:
            yield self
            return
        self.conn.execute("BEGIN IMMEDIATE")
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


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode (persistent: a no-op once the file is WAL).

    The one statement SQLite's busy handler does not cover: the switch reads the file (a shared lock) and then needs
    an exclusive lock, and SQLite refuses to wait while holding the shared lock when another connection holds the
    write lock - waiting could deadlock - so it fails at once with "database is locked". That happens on a file that
    is not WAL yet (a fresh one) while another connection writes to it, e.g. two `vpbx` commands creating the same
    database. Then: wait for every other lock to go with BEGIN EXCLUSIVE (taken from no lock, so the busy handler does
    wait, up to busy_timeout) and try again. No sleeps; each round some connection gets its switch through.
    """
    for attempt in range(WAL_SWITCH_ATTEMPTS):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or attempt == WAL_SWITCH_ATTEMPTS - 1:
                raise
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("ROLLBACK")

"""The Store: one SQLite database (WAL, foreign keys on), its transactions, and one repository per aggregate.

Rules: every change is one `BEGIN IMMEDIATE` transaction (`Store.write`), so a writer takes the write lock before it
reads and two writers queue instead of deadlocking; waiting for the lock is SQLite's own busy handler
(`busy_timeout`, 30 s), never a sleep-and-retry loop here. Repositories (`store.numbers`, `store.calls`,
`store.outbox`, ...) hold the SQL of their tables and return domain records or plain dicts, never live rows.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from vpbx import __version__
from vpbx.config import make_dirs, shown
from vpbx.domain.errors import ConfigError, ConflictError
from vpbx.storage.blocklist import BlocklistRepo
from vpbx.storage.calls import CallRepo
from vpbx.storage.ledger import AccountRepo, RateRepo
from vpbx.storage.numbers import NumberRepo
from vpbx.storage.outbox import OutboxRepo
from vpbx.storage.recordings import RecordingRepo
from vpbx.storage.routing import GroupRepo, IvrRepo, SipAccountRepo, TrunkRepo
from vpbx.storage.schedules import ScheduleRepo
from vpbx.storage.schema import migrations
from vpbx.storage.security import BanRepo
from vpbx.storage.shop import ShopRepo

__all__ = ["BUSY_TIMEOUT_S", "CODE_SCHEMA", "MIGRATION_NAMES", "Store", "migrations"]

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
WAL_SWITCH_ATTEMPTS = 50
# the schema version this code writes: the number of migrations it knows (m001 ... m006 -> 6, and so on)
MIGRATION_NAMES = tuple(m.name for m in migrations.pending(sqlite_utils.Database(memory=True)))
CODE_SCHEMA = len(MIGRATION_NAMES)


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
        self.bans = BanRepo(self)
        self.schedules = ScheduleRepo(self)
        self.blocklist = BlocklistRepo(self)
        self.recordings = RecordingRepo(self)

    @classmethod
    def open(cls, path: Path | str, shown_as: Path | None = None) -> Store:
        """Open (creating) the database and apply pending migrations; an upgrade of an existing database is logged
        as one warning naming `shown_as` (default `path`: a restore migrates a staged copy under its final name)."""
        path = Path(path)
        where = f"database {shown(shown_as or path)}"
        fix = "point --db / VPBX_DB (or [vpbx] db in the config) at a vpbx database or at a new file"
        try:
            if str(path) != ":memory:":
                make_dirs(path.parent)
                if path.is_dir():
                    raise ConfigError(f"{where} is a directory; {fix}")
                if not path.exists():  # SIP and trunk passwords live here: owner-only from the first byte
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            # `timeout` installs SQLite's busy handler: a statement that meets a lock waits for it up to 30 s
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S)
        except (OSError, ValueError) as exc:     # ValueError: a NUL in the path
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(f"{where} cannot be created or opened ({reason}); {fix}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            _use_wal(conn)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            store = cls(conn)
            with store.write():
                before = _schema_of(store.db, str(path))
                migrations.apply(store.db)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _UNUSABLE:
                raise
            raise ConfigError(f"{where} cannot be used ({exc}): it is not an SQLite database, or not readable and "
                              f"writable by this user; {fix}") from None
        except BaseException:
            conn.close()
            raise
        if 0 < before < CODE_SCHEMA:    # a fresh database (schema 0) is created silently
            log.warning("database %s upgraded from schema %d to %d", shown_as or path, before, CODE_SCHEMA)
        return store

    @classmethod
    def open_readonly(cls, path: Path) -> Store:
        """Open an existing database file to read it only: no migration, no WAL switch, nothing written (a backup's
        copy); ConflictError when its schema is newer than this code's."""
        conn = sqlite3.connect(f"file:{urllib.parse.quote(str(Path(path).absolute()))}?mode=ro", uri=True,
                               timeout=BUSY_TIMEOUT_S)
        try:
            store = cls(conn)
            _schema_of(store.db, str(path))
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

    def backup_to(self, target: Path) -> int:
        """Copy the whole database into the new file `target` with SQLite's online backup API, as one consistent
        snapshot: the copy is made in one step inside one read transaction, so it holds every transaction committed
        before it began and none after; in WAL mode the engine keeps writing meanwhile. The copy is a self-contained
        rollback-journal file (no -wal beside it), mode 0600, checked with `PRAGMA quick_check`; returns its schema
        version."""
        if self.conn.in_transaction:
            raise ConflictError("cannot back up the database inside a write transaction; back it up on its own")
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        dest = sqlite3.connect(str(target))
        try:
            self.conn.backup(dest)     # pages=-1: every page in one step, one snapshot
            dest.execute("PRAGMA journal_mode = DELETE")
            problems = [row[0] for row in dest.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise ConflictError(f"the backup copy of database {self.database_path()} fails SQLite's check "
                                    f"({'; '.join(problems[:3])}); run `sqlite3 DB 'PRAGMA integrity_check'` on it")
            return _schema_of(sqlite_utils.Database(dest), str(target))
        finally:
            dest.close()

    def database_path(self) -> Path | None:
        """The database file (None for an in-memory database): the voicemail spool lives next to it."""
        for _seq, name, file in self.conn.execute("PRAGMA database_list"):
            if name == "main":
                return Path(file) if file else None
        return None


# SQLite result codes (primary) that mean "this file cannot be our database" rather than "try again"
_UNUSABLE = {sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM,
             sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_AUTH}


def _schema_of(db: sqlite_utils.Database, where: str) -> int:
    """The schema version of an open database: how many of vpbx's migrations it has (0: a fresh file). A migration
    this vpbx does not know means a newer vpbx wrote it: ConflictError, nothing touched."""
    applied = [m.name for m in migrations.applied(db)]
    unknown = [name for name in applied if name not in MIGRATION_NAMES]
    if unknown:
        raise ConflictError(f"database {where} has schema {len(applied)} (migration {unknown[0]} is unknown here), "
                            f"newer than this vpbx {__version__} reads (schema {CODE_SCHEMA}); upgrade vpbx, or "
                            f"restore a backup made before the upgrade")
    return len(applied)


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

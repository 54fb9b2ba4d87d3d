"""vpbx.storage.store: migrations, pragmas, file mode, and concurrent writers from separate `vpbx` processes."""
from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils

from vpbx.domain.records import Number, SipAccount, Trunk
from vpbx.storage.store import Store, migrations

VPBX = Path(sys.executable).with_name("vpbx")
FIRST_MIGRATIONS = ["m001_foundation", "m002_routing_and_calls"]


def registered() -> list[str]:
    return [m.name for m in migrations.pending(sqlite_utils.Database(memory=True))]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def count(db: Path, table: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


# ---- migrations ----------------------------------------------------------------------------------------------
def test_migrations_recorded(tmp_path: Path) -> None:
    names = registered()
    assert names[:2] == FIRST_MIGRATIONS
    with Store.open(tmp_path / "v.db") as store:
        assert store.schema_version() == names
        assert migrations.pending(store.db) == []
        assert {"numbers", "sip_accounts", "trunks"} <= set(store.db.table_names())
    con = sqlite3.connect(tmp_path / "v.db")
    rows = con.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = 'vpbx' ORDER BY id").fetchall()
    con.close()
    assert [r[0] for r in rows] == names


def test_reopen_applies_nothing_twice(tmp_path: Path) -> None:
    with Store.open(tmp_path / "v.db") as store:
        store.numbers.add(Number("+380441234567", category="gold"))
    for _ in range(3):
        with Store.open(tmp_path / "v.db") as store:
            assert store.schema_version() == registered()
            assert [n.number for n in store.numbers.search()] == ["+380441234567"]
    assert count(tmp_path / "v.db", "_sqlite_migrations") == len(registered())


def test_old_schema_is_upgraded_keeping_data(tmp_path: Path) -> None:
    db_path = tmp_path / "old.db"
    db = sqlite_utils.Database(db_path)
    migrations.apply(db, stop_before=FIRST_MIGRATIONS[1])
    db.execute("INSERT INTO numbers (number, channels, direction, type, category, created_at) "
               "VALUES ('+380441234567', 6, 'both', 'geographic', 'gold', '2024-01-01T00:00:00+00:00')")
    db.conn.commit()
    db.close()
    with Store.open(db_path) as store:
        assert store.schema_version() == registered()
        n = store.numbers.get("+380441234567")
        assert (n.channels, n.direction, n.route, n.forward_to, n.fallback) == (6, "both", None, (), "hangup")


# ---- pragmas and file mode -----------------------------------------------------------------------------------
def test_wal_and_foreign_keys(tmp_path: Path) -> None:
    with Store.open(tmp_path / "v.db") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        with pytest.raises(sqlite3.IntegrityError):
            with store.write():
                store.conn.execute("INSERT INTO sip_accounts (login, password, domain, caller_id, channels, created_at) "
                                   "VALUES ('x', 'p', 'd', '+380449999999', 1, 'now')")
        assert store.sip_accounts.all() == []
    con = sqlite3.connect(tmp_path / "v.db")  # WAL is persistent: a plain connection sees it too
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_foreign_keys_guard_trunk_and_caller_id(tmp_path: Path) -> None:
    with Store.open(tmp_path / "v.db") as store:
        store.trunks.add(Trunk("prov", "sip.example.net", "u", "pw"))
        store.numbers.add(Number("+380441234567", trunk="prov", category="gold"))
        store.sip_accounts.add(SipAccount("alice", "p" * 24, caller_id="+380441234567"))
        with pytest.raises(sqlite3.IntegrityError):
            with store.write():
                store.conn.execute("DELETE FROM trunks WHERE name = 'prov'")
        with pytest.raises(sqlite3.IntegrityError):
            with store.write():
                store.conn.execute("DELETE FROM numbers WHERE number = '+380441234567'")
        assert [t.name for t in store.trunks.all()] == ["prov"]
        assert [n.number for n in store.numbers.search()] == ["+380441234567"]


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_db_file_mode_0600(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        db = tmp_path / "sub" / "v.db"
        with Store.open(db) as store:
            store.trunks.add(Trunk("prov", "sip.example.net", "u", "pw"))
            assert mode(db) == 0o600
            wal = db.with_name("v.db-wal")
            assert wal.exists() and mode(wal) == 0o600
            shm = db.with_name("v.db-shm")
            assert shm.exists() and mode(shm) == 0o600
    finally:
        os.umask(old)
    assert mode(db) == 0o600


def test_failed_write_rolls_back(tmp_path: Path) -> None:
    with Store.open(tmp_path / "v.db") as store:
        store.numbers.add(Number("+380441234567", category="gold"))
        with pytest.raises(Exception):
            store.numbers.add_many([Number("+380442718459"), Number("+380441234567")])
        assert [n.number for n in store.numbers.search()] == ["+380441234567"]


# ---- concurrency: separate processes -------------------------------------------------------------------------
def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VPBX_CONFIG", "VPBX_DB")}
    env["HOME"] = str(tmp_path)  # no ~/.config/vpbx/vpbx.toml leaks in
    return env


def _add_concurrently(tmp_path: Path, db: Path, n: int = 20) -> list[tuple[int, str]]:
    procs = [subprocess.Popen([str(VPBX), "--db", str(db), "number", "add", f"+3804412345{i:02d}", "--json"],
                              cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(n)]
    out = []
    for p in procs:
        _stdout, stderr = p.communicate(timeout=120)
        out.append((p.returncode, stderr))
    return out


def _numbers(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute("SELECT number FROM numbers ORDER BY number")]
    finally:
        con.close()


@pytest.mark.timeout(300)
def test_20_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    Store.open(db).close()
    results = _add_concurrently(tmp_path, db)
    assert [rc for rc, _ in results] == [0] * 20, [e for rc, e in results if rc]
    assert _numbers(db) == [f"+3804412345{i:02d}" for i in range(20)]


@pytest.mark.timeout(300)
def test_20_concurrent_writers_on_a_new_db_race_the_migrations(tmp_path: Path) -> None:
    db = tmp_path / "new" / "v.db"
    assert not db.exists()
    results = _add_concurrently(tmp_path, db)
    assert [rc for rc, _ in results] == [0] * 20, [e for rc, e in results if rc]
    assert _numbers(db) == [f"+3804412345{i:02d}" for i in range(20)]
    assert count(db, "_sqlite_migrations") == len(registered())
    assert mode(db) == 0o600

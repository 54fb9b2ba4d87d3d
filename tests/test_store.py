"""vpbx.storage.store: migrations, pragmas, file mode, and concurrent writers from separate `vpbx` processes."""
from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlite_utils

from vpbx.domain.errors import ConflictError
from vpbx.domain.records import Group, Ivr, Number, SipAccount, Trunk
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


def test_sip_accounts_from_before_codecs_get_the_defaults(tmp_path: Path) -> None:
    db_path = tmp_path / "old.db"
    db = sqlite_utils.Database(db_path)
    migrations.apply(db, stop_before="m007_sip_codecs_and_dtmf")
    db.execute("INSERT INTO sip_accounts (login, password, domain, channels, created_at) "
               "VALUES ('alice', 'alice-password-1', 'vpbx.local', 2, '2024-01-01T00:00:00+00:00')")
    db.conn.commit()
    db.close()
    with Store.open(db_path) as store:
        a = store.sip_accounts.get("alice")
        assert (a.codecs, a.dtmf, a.channels) == ((), "rfc4733", 2)


def test_one_outbox_migration_keeps_every_voicemail_and_notice(tmp_path: Path) -> None:
    """A database made with the schema before m006 (two outboxes) upgrades to the one outbox: every row is kept, what
    `vpbx voicemail list` and `vpbx notices list` show is unchanged, notices keep their ids."""
    db_path = tmp_path / "old.db"
    db = sqlite_utils.Database(db_path)
    migrations.apply(db, stop_before="m006_one_outbox")
    voicemails = [  # delivered; failing with backoff; never tried; lease-era value in next_attempt_at
        ("vm-a", "c1", "+380441234567", "+14155550123", '["office@example.com"]', 12.5, "2026-01-01T10:00:00+00:00",
         "2026-01-01T10:00:07+00:00", 1, None, None),
        ("vm-b", "c2", "+380441234567", "", '["office@example.com", "boss@example.com"]', 3.0,
         "2026-01-02T10:00:00+00:00", None, 4, "SMTP server smtp.example.com:25 (none) unreachable",
         "2026-01-02T10:02:00+00:00"),
        ("vm-c", "c3", "+380441234568", "+74951112233", '["x@example.com"]', 61.0, "2026-01-03T10:00:00+00:00",
         None, 0, None, None)]
    db.conn.executemany("INSERT INTO voicemails (recording, call_id, number, caller, emails, duration, created_at, "
                        "delivered_at, attempts, last_error, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        voicemails)
    notices = [(3, "acme@example.com", "Number +380441234567 is connected", "Paid.\n", "2026-01-01T09:00:00+00:00",
                "2026-01-01T09:00:01+00:00", 1, None),
               (7, "beta@example.com", "A number you wait for is available: +380441234568", "Order it.\n",
                "2026-01-03T09:00:00+00:00", None, 2, "SMTP is not configured ([smtp] host in vpbx.toml)")]
    db.conn.executemany("INSERT INTO mail_outbox (id, recipient, subject, body, created_at, sent_at, attempts, "
                        "last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", notices)
    db.conn.commit()
    old_voicemails = list(db["voicemails"].rows_where(order_by="created_at"))
    old_notices = list(db["mail_outbox"].rows_where(order_by="id"))
    db.close()

    with Store.open(db_path) as store:
        assert store.schema_version() == registered()
        assert store.outbox.list_voicemails() == old_voicemails
        assert store.outbox.list_notices() == old_notices
        assert [r["recording"] for r in store.outbox.list_voicemails(undelivered_only=True)] == ["vm-b", "vm-c"]
        assert [r["id"] for r in store.outbox.list_notices(unsent_only=True)] == [7]
        assert {"voicemails", "mail_outbox"}.isdisjoint(store.db.table_names())
        assert len(store.outbox.messages()) == 5
        b = store.outbox.find_voicemail("vm-b")
        assert b is not None and (b.kind, b.recipients, b.leased_until) == (
            "voicemail", ("office@example.com", "boss@example.com"), None)
        assert [m.id for m in store.outbox.messages("voicemail")] == [8, 9, 10]   # after the notices' ids
        new = store.outbox.queue_notice(["acme@example.com"], "New", "Body\n")
        assert new == 11
        # what was due stays due, what backs off still does; the delivered ones are never offered again
        due = [m.recording or m.id for m in store.outbox.due("2026-01-02T10:01:00+00:00")]
        assert due == [7, "vm-c", new]
        assert [m.recording or m.id for m in store.outbox.due("2026-01-02T10:02:00+00:00")] == ["vm-b", 7, "vm-c", new]


# ---- pragmas and file mode -----------------------------------------------------------------------------------
def test_wal_and_foreign_keys(tmp_path: Path) -> None:
    with Store.open(tmp_path / "v.db") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        with pytest.raises(sqlite3.IntegrityError):
            with store.write():
                store.conn.execute("INSERT INTO sip_accounts (login, password, domain, caller_id, channels, "
                                   "created_at) VALUES ('x', 'p', 'd', '+380449999999', 1, 'now')")
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
        with pytest.raises(ConflictError, match="already exists"):
            store.numbers.add_many([Number("+380442718459"), Number("+380441234567")])
        assert [n.number for n in store.numbers.search()] == ["+380441234567"]


# ---- waiting for the lock is SQLite's busy handler ---------------------------------------------------------------
def _hold_write_lock(db: Path, seconds: float, held: threading.Event) -> None:
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    held.set()
    time.sleep(seconds)
    con.execute("COMMIT")
    con.close()


def test_a_writer_waits_for_the_lock_instead_of_failing(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    with Store.open(db) as store:
        held = threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(db, 0.5, held))
        holder.start()
        held.wait(5)
        started = time.monotonic()
        store.numbers.add(Number("+380441234567"))
        waited = time.monotonic() - started
        holder.join()
        assert waited >= 0.4, "the write went through while another connection held the lock"
        assert [n.number for n in store.numbers.search()] == ["+380441234567"]
    assert not hasattr(Store, "_retrying"), "no sleep-and-retry loop: busy_timeout does the waiting"


def test_switching_a_fresh_file_to_wal_waits_for_a_lock(tmp_path: Path) -> None:
    """`PRAGMA journal_mode = WAL` needs an exclusive lock; on a fresh (rollback-journal) file another connection's
    write transaction makes it wait - through the same busy handler - instead of failing or silently staying in
    rollback mode."""
    db = tmp_path / "v.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE scratch (x)")
    con.commit()
    con.close()
    held = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(db, 0.5, held))
    holder.start()
    held.wait(5)
    started = time.monotonic()
    with Store.open(db) as store:
        waited = time.monotonic() - started
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.schema_version() == registered()
    holder.join()
    assert waited >= 0.4


# ---- what still names an object (parsed destinations) ---------------------------------------------------------
def test_what_names_an_object_compares_parsed_destinations(tmp_path: Path) -> None:
    with Store.open(tmp_path / "v.db") as store:
        store.numbers.add_many([Number("+380441234567"), Number("+380441234568"), Number("+380441234569")])
        store.sip_accounts.add(SipAccount("alice", "p" * 24, caller_id="+380441234567"))
        store.sip_accounts.add(SipAccount("alice2", "p" * 24))
        store.groups.add(Group("sales", ("sip:alice", "tel:+380441234568")))
        store.groups.add(Group("sales2", ("sip:alice2",)))
        store.ivrs.add(Ivr("main", "welcome", (("1", "sip:alice"), ("2", "group:sales"), ("3", "tel:+380441234568"),
                                               ("9", "ivr:main"))))
        store.numbers.update(["+380441234567"], route="sip:alice")
        store.numbers.update(["+380441234569"], route="ivr:main", forward_to=("sip:alice", "sip:alice2"))
        # text that merely contains the name (alice2, sales2, a tel: prefix) does not count
        assert store.sip_accounts.used_by("alice") == ["IVR main", "group sales", "number +380441234567",
                                                       "number +380441234569"]
        assert store.sip_accounts.used_by("alice2") == ["group sales2", "number +380441234569"]
        assert store.numbers.used_by("+380441234567") == ["SIP account alice (caller ID)"]
        assert store.numbers.used_by("+380441234568") == ["IVR main", "group sales"]
        assert store.numbers.used_by("+38044123456") == []
        with pytest.raises(ConflictError, match="group sales is still used by IVR main; change those first"):
            store.groups.remove("sales")
        with pytest.raises(ConflictError, match="IVR main is still used by number \\+380441234569;"):
            store.ivrs.remove("main")          # its own `9 -> ivr:main` option does not count
        with pytest.raises(ConflictError, match="SIP account alice is still used by IVR main, group sales, number "):
            store.sip_accounts.remove("alice")
        with store.write():                    # a stored string that does not parse names nothing
            store.conn.execute("UPDATE groups SET members = ? WHERE name = 'sales2'", ['["sip:alice2\\n"]'])
        assert store.sip_accounts.used_by("alice2") == ["number +380441234569"]


def test_a_call_record_is_finished_only_with_its_end(tmp_path: Path) -> None:
    with Store.open(tmp_path / "v.db") as store:
        store.calls.add("c1", "+380441234567", "+14155550123", started_at="2026-01-01T10:00:00+00:00")
        store.calls.note_node("c1", "ivr:main", restarts=1)
        with pytest.raises(ValueError, match="ended_at"):
            store.calls.finish("c1", disposition="answered")
        assert [r["call_id"] for r in store.calls.unfinished()] == ["c1"]
        store.calls.finish("c1", ended_at="2026-01-01T10:01:00+00:00", disposition="answered", billsec=55)
        assert store.calls.unfinished() == []
        row = store.calls.get("c1")
        assert row is not None and (row["node"], row["restarts"], row["billsec"]) == ("ivr:main", 1, 55)


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

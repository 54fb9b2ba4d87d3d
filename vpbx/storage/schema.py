"""The database schema: sqlite-utils Migrations, applied in order when a Store opens.

Rule: a schema change is a new migration, never an edit of an applied one.
"""
from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

migrations = Migrations("vpbx")


@migrations()
def m001_foundation(db: sqlite_utils.Database) -> None:
    db.execute("""CREATE TABLE trunks (
        name TEXT PRIMARY KEY, server TEXT NOT NULL, port INTEGER NOT NULL, login TEXT NOT NULL,
        password TEXT NOT NULL, transport TEXT NOT NULL, register INTEGER NOT NULL, created_at TEXT NOT NULL)""")
    db.execute("""CREATE TABLE numbers (
        number TEXT PRIMARY KEY, channels INTEGER NOT NULL CHECK (channels >= 4),
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out', 'both')),
        trunk TEXT REFERENCES trunks(name), comment TEXT NOT NULL DEFAULT '', type TEXT NOT NULL,
        city TEXT NOT NULL DEFAULT '', operator TEXT NOT NULL DEFAULT '', country TEXT NOT NULL DEFAULT '',
        category TEXT NOT NULL, language TEXT NOT NULL DEFAULT 'en', created_at TEXT NOT NULL)""")
    db.execute("""CREATE TABLE sip_accounts (
        login TEXT PRIMARY KEY, password TEXT NOT NULL, domain TEXT NOT NULL,
        caller_id TEXT REFERENCES numbers(number), channels INTEGER NOT NULL, created_at TEXT NOT NULL)""")


@migrations()
def m002_routing_and_calls(db: sqlite_utils.Database) -> None:
    for column, decl in (("route", "TEXT"), ("greeting", "TEXT"), ("forward_to", "TEXT NOT NULL DEFAULT '[]'"),
                         ("forward_mode", "TEXT NOT NULL DEFAULT 'simultaneous'"),
                         ("forward_timeout", "INTEGER NOT NULL DEFAULT 30"), ("fallback", "TEXT NOT NULL DEFAULT 'hangup'"),
                         ("vm_emails", "TEXT NOT NULL DEFAULT '[]'")):
        db.execute(f"ALTER TABLE numbers ADD COLUMN {column} {decl}")
    db.execute("""CREATE TABLE groups (
        name TEXT PRIMARY KEY, members TEXT NOT NULL, strategy TEXT NOT NULL, timeout INTEGER NOT NULL,
        created_at TEXT NOT NULL)""")
    db.execute("""CREATE TABLE ivrs (
        name TEXT PRIMARY KEY, prompt TEXT NOT NULL, options TEXT NOT NULL, timeout INTEGER NOT NULL,
        retries INTEGER NOT NULL, invalid_prompt TEXT, extensions INTEGER NOT NULL, created_at TEXT NOT NULL)""")
    db.execute("""CREATE TABLE calls (
        call_id TEXT PRIMARY KEY, number TEXT NOT NULL, caller TEXT NOT NULL DEFAULT '', direction TEXT NOT NULL,
        started_at TEXT NOT NULL, answered_at TEXT, ended_at TEXT, reached TEXT, disposition TEXT,
        duration INTEGER NOT NULL DEFAULT 0, billsec INTEGER NOT NULL DEFAULT 0, voicemail INTEGER NOT NULL DEFAULT 0)""")
    db.execute("CREATE INDEX calls_number_started ON calls(number, started_at)")


@migrations()
def m003_engine_recovery_and_voicemail(db: sqlite_utils.Database) -> None:
    db.execute("ALTER TABLE calls ADD COLUMN node TEXT")
    db.execute("ALTER TABLE calls ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0")
    db.execute("""CREATE TABLE voicemails (
        recording TEXT PRIMARY KEY, call_id TEXT NOT NULL, number TEXT NOT NULL, caller TEXT NOT NULL DEFAULT '',
        emails TEXT NOT NULL, duration REAL NOT NULL, created_at TEXT NOT NULL, delivered_at TEXT,
        attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT)""")


@migrations()
def m004_voicemail_retry(db: sqlite_utils.Database) -> None:
    # when the outbox may try a message again (NULL: now); ISO-8601 UTC like every other timestamp
    db.execute("ALTER TABLE voicemails ADD COLUMN next_attempt_at TEXT")


@migrations()
def m005_accounts_and_billing(db: sqlite_utils.Database) -> None:
    db.execute("""CREATE TABLE accounts (
        name TEXT PRIMARY KEY, email TEXT NOT NULL, org_id INTEGER UNIQUE, balance INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL, closed_at TEXT)""")  # a removed account is closed, never deleted: its ledger stays
    # one row per change of balance, written in the same transaction as the change (balance == sum(amount))
    db.execute("""CREATE TABLE ledger (
        id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL REFERENCES accounts(name),
        amount INTEGER NOT NULL, balance_after INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('topup', 'connection', 'period', 'renewal', 'call', 'adjustment')),
        number TEXT, call_id TEXT, period_start TEXT, period_end TEXT, ref TEXT NOT NULL DEFAULT '',
        effective_on TEXT NOT NULL, created_at TEXT NOT NULL)""")
    db.execute("CREATE INDEX ledger_account ON ledger(account, effective_on)")
    # a period is renewed once and a call is charged once, whatever runs twice
    db.execute("CREATE UNIQUE INDEX ledger_one_renewal ON ledger(number, period_start) WHERE kind = 'renewal'")
    db.execute("CREATE UNIQUE INDEX ledger_one_call ON ledger(call_id) WHERE kind = 'call'")
    for column, decl in (("status", "TEXT NOT NULL DEFAULT 'available'"), ("account", "TEXT REFERENCES accounts(name)"),
                         ("end_user", "TEXT NOT NULL DEFAULT ''"), ("m2m_device", "TEXT NOT NULL DEFAULT ''"),
                         ("plan", "TEXT"), ("anchor_day", "INTEGER"), ("connected_on", "TEXT"), ("paid_until", "TEXT"),
                         ("trial_until", "TEXT"), ("reserved_until", "TEXT"), ("quarantine_until", "TEXT"),
                         ("requires_documents", "INTEGER NOT NULL DEFAULT 0"), ("lead_days", "INTEGER NOT NULL DEFAULT 0"),
                         ("call_credit", "INTEGER NOT NULL DEFAULT 0")):
        db.execute(f"ALTER TABLE numbers ADD COLUMN {column} {decl}")
    db.execute("CREATE INDEX numbers_account ON numbers(account)")
    db.execute("ALTER TABLE calls ADD COLUMN account TEXT")
    db.execute("ALTER TABLE calls ADD COLUMN cost INTEGER")
    db.execute("CREATE TABLE tariff (id INTEGER PRIMARY KEY CHECK (id = 1), source TEXT NOT NULL, loaded_at TEXT NOT NULL)")
    db.execute("CREATE TABLE rates (prefix TEXT PRIMARY KEY, price INTEGER NOT NULL, description TEXT NOT NULL DEFAULT '')")
    db.execute("""CREATE TABLE documents (
        id INTEGER PRIMARY KEY AUTOINCREMENT, number TEXT NOT NULL REFERENCES numbers(number), account TEXT,
        filename TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, added_at TEXT NOT NULL)""")
    db.execute("""CREATE TABLE waitlist (
        id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL REFERENCES accounts(name), country TEXT NOT NULL,
        city TEXT NOT NULL DEFAULT '', type TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL,
        notified_at TEXT, notified_number TEXT)""")
    # e-mail notices (connection, waitlist): kept until sent, like voicemail
    db.execute("""CREATE TABLE mail_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL,
        created_at TEXT NOT NULL, sent_at TEXT, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT)""")
    db.execute("CREATE TABLE billing_runs (run_date TEXT PRIMARY KEY, ran_at TEXT NOT NULL, summary TEXT NOT NULL)")

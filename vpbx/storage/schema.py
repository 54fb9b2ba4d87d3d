"""The database schema: sqlite-utils Migrations, applied in order when a Store opens (in one write transaction).

Rule: a schema change is a new migration, never an edit of an applied one; a migration that moves data keeps every
row (tests/test_store.py upgrades a database made with the schema before it).
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
                         ("forward_timeout", "INTEGER NOT NULL DEFAULT 30"), ("fallback", "TEXT NOT NULL DEFAULT 'hangup'"),  # noqa: E501 (an applied migration: its text stays as it ran)
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
        duration INTEGER NOT NULL DEFAULT 0, billsec INTEGER NOT NULL DEFAULT 0, voicemail INTEGER NOT NULL DEFAULT 0)""")  # noqa: E501 (an applied migration: its text stays as it ran)
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
                         ("requires_documents", "INTEGER NOT NULL DEFAULT 0"), ("lead_days", "INTEGER NOT NULL DEFAULT 0"),  # noqa: E501 (an applied migration: its text stays as it ran)
                         ("call_credit", "INTEGER NOT NULL DEFAULT 0")):
        db.execute(f"ALTER TABLE numbers ADD COLUMN {column} {decl}")
    db.execute("CREATE INDEX numbers_account ON numbers(account)")
    db.execute("ALTER TABLE calls ADD COLUMN account TEXT")
    db.execute("ALTER TABLE calls ADD COLUMN cost INTEGER")
    db.execute("CREATE TABLE tariff (id INTEGER PRIMARY KEY CHECK (id = 1), source TEXT NOT NULL, loaded_at TEXT NOT NULL)")  # noqa: E501 (an applied migration: its text stays as it ran)
    db.execute("CREATE TABLE rates (prefix TEXT PRIMARY KEY, price INTEGER NOT NULL, description TEXT NOT NULL DEFAULT '')")  # noqa: E501 (an applied migration: its text stays as it ran)
    db.execute("""CREATE TABLE documents (
        id INTEGER PRIMARY KEY AUTOINCREMENT, number TEXT NOT NULL REFERENCES numbers(number), account TEXT,
        filename TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, added_at TEXT NOT NULL)""")  # noqa: E501 (an applied migration: its text stays as it ran)
    db.execute("""CREATE TABLE waitlist (
        id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL REFERENCES accounts(name), country TEXT NOT NULL,
        city TEXT NOT NULL DEFAULT '', type TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL,
        notified_at TEXT, notified_number TEXT)""")
    # e-mail notices (connection, waitlist): kept until sent, like voicemail
    db.execute("""CREATE TABLE mail_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL,
        created_at TEXT NOT NULL, sent_at TEXT, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT)""")
    db.execute("CREATE TABLE billing_runs (run_date TEXT PRIMARY KEY, ran_at TEXT NOT NULL, summary TEXT NOT NULL)")


@migrations()
def m006_one_outbox(db: sqlite_utils.Database) -> None:
    """One outbox for every e-mail: voicemail messages (table voicemails) and notices (table mail_outbox) become rows
    of `outbox`, both with a lease (two senders never send one message at once) and a backoff (next_attempt_at)."""
    db.execute("""CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('voicemail', 'notice')),
        recipients TEXT NOT NULL,           -- JSON list of e-mail addresses
        subject TEXT, body TEXT,            -- notice: its text as queued (a voicemail's is composed when it is sent)
        recording TEXT UNIQUE,              -- voicemail: Asterisk's stored recording, also the spool file's name
        call_id TEXT, number TEXT, caller TEXT, duration REAL,   -- voicemail: what its e-mail says
        created_at TEXT NOT NULL,
        next_attempt_at TEXT,               -- backoff: not tried before this instant (NULL: due now)
        leased_until TEXT,                  -- a sender is trying it until this instant (NULL: nobody)
        attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, delivered_at TEXT,
        CHECK (kind = 'notice' AND subject IS NOT NULL AND body IS NOT NULL AND recording IS NULL
               OR kind = 'voicemail' AND recording IS NOT NULL AND number IS NOT NULL AND duration IS NOT NULL))""")
    db.execute("CREATE INDEX outbox_undelivered ON outbox(kind, next_attempt_at) WHERE delivered_at IS NULL")
    # notices first, keeping their ids (`vpbx notices list` shows them); then voicemail, oldest first
    db.execute("""INSERT INTO outbox (id, kind, recipients, subject, body, created_at, attempts, last_error,
                  delivered_at)
                  SELECT id, 'notice', json_array(recipient), subject, body, created_at, attempts, last_error, sent_at
                  FROM mail_outbox ORDER BY id""")
    db.execute("""INSERT INTO outbox (kind, recipients, recording, call_id, number, caller, duration, created_at,
                  next_attempt_at, attempts, last_error, delivered_at)
                  SELECT 'voicemail', emails, recording, call_id, number, caller, duration, created_at,
                  next_attempt_at, attempts, last_error, delivered_at
                  FROM voicemails ORDER BY created_at, rowid""")
    db.execute("DROP TABLE voicemails")
    db.execute("DROP TABLE mail_outbox")


@migrations()
def m007_sip_codecs_and_dtmf(db: sqlite_utils.Database) -> None:
    # per-account codec preference (JSON list; [] = the install's [sip] codecs) and pjsip dtmf_mode
    db.execute("ALTER TABLE sip_accounts ADD COLUMN codecs TEXT NOT NULL DEFAULT '[]'")
    db.execute("ALTER TABLE sip_accounts ADD COLUMN dtmf TEXT NOT NULL DEFAULT 'rfc4733'")


@migrations()
def m008_security_bans(db: sqlite_utils.Database) -> None:
    """Brute-force bans (vpbx.domain.security): one row per ban, kept after it ends (lifted_at, lifted_by)."""
    db.execute("""CREATE TABLE security_bans (
        id INTEGER PRIMARY KEY AUTOINCREMENT, address TEXT NOT NULL,
        logins TEXT NOT NULL,               -- JSON list of the logins it failed
        failures INTEGER NOT NULL, reason TEXT NOT NULL, banned_at TEXT NOT NULL, until TEXT NOT NULL,
        lifted_at TEXT, lifted_by TEXT)""")
    db.execute("CREATE UNIQUE INDEX security_bans_one_open ON security_bans(address) WHERE lifted_at IS NULL")


@migrations()
def m009_sip_transport_and_srtp(db: sqlite_utils.Database) -> None:
    # how Asterisk reaches a phone (udp | tcp | tls) and SRTP required (0/1) for accounts; SRTP for trunks
    db.execute("ALTER TABLE sip_accounts ADD COLUMN transport TEXT NOT NULL DEFAULT 'udp'")
    db.execute("ALTER TABLE sip_accounts ADD COLUMN srtp INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE trunks ADD COLUMN srtp INTEGER NOT NULL DEFAULT 0")


@migrations()
def m010_toll_fraud_guards(db: sqlite_utils.Database) -> None:
    """Per-account toll-fraud guards (vpbx.dialplan.outbound), the SIP account that placed an outbound call, and the
    outbound calls the guards refused (counted per account and day by `vpbx sip show`)."""
    db.execute("ALTER TABLE sip_accounts ADD COLUMN allow_countries TEXT NOT NULL DEFAULT '[]'")
    db.execute("ALTER TABLE sip_accounts ADD COLUMN allow_prefixes TEXT NOT NULL DEFAULT '[]'")
    db.execute("ALTER TABLE sip_accounts ADD COLUMN max_outbound_calls INTEGER")
    db.execute("ALTER TABLE sip_accounts ADD COLUMN daily_minutes INTEGER")
    db.execute("ALTER TABLE calls ADD COLUMN sip_account TEXT")
    db.execute("CREATE INDEX calls_by_sip_account ON calls(sip_account, started_at)")
    db.execute("""CREATE TABLE outbound_refusals (
        id INTEGER PRIMARY KEY AUTOINCREMENT, sip_account TEXT NOT NULL, dest TEXT NOT NULL,
        rule TEXT NOT NULL,                 -- route | destination | concurrent | daily (vpbx.dialplan.outbound)
        reason TEXT NOT NULL, at TEXT NOT NULL)""")
    db.execute("CREATE INDEX outbound_refusals_by_account ON outbound_refusals(sip_account, at)")


@migrations()
def m014_talks_and_transfers(db: sqlite_utils.Database) -> None:
    """A bridged call's facts, written when the bridge forms, so an engine restarted mid-talk adopts the call as
    talking (vpbx.engine.recovery) with its original answer and connect times."""
    db.execute("ALTER TABLE calls ADD COLUMN connected_at TEXT")
    db.execute("ALTER TABLE calls ADD COLUMN bridged_leg TEXT")
    db.execute("ALTER TABLE calls ADD COLUMN bridge_id TEXT")
    # transfers (vpbx.engine.transfers): the call a transferred party left records who transferred it and to what;
    # the call it went on in records where it came from
    db.execute("ALTER TABLE calls ADD COLUMN transferred_by TEXT")
    db.execute("ALTER TABLE calls ADD COLUMN transferred_to TEXT")
    db.execute("ALTER TABLE calls ADD COLUMN transferred_from TEXT")


@migrations()
def m012_blocklist(db: sqlite_utils.Database) -> None:
    """The caller blocklist (vpbx.domain.blocklist): one row per rule, with the calls it refused. A rule of a number
    goes with the number (ON DELETE CASCADE); accounts are closed, never deleted."""
    db.execute("""CREATE TABLE blocklist (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        caller TEXT NOT NULL,               -- +E.164, a +digits prefix (prefix = 1) or 'anonymous'
        prefix INTEGER NOT NULL DEFAULT 0 CHECK (prefix IN (0, 1)),
        number TEXT REFERENCES numbers(number) ON DELETE CASCADE,   -- scope: one number,
        account TEXT REFERENCES accounts(name),                     -- an account's numbers, or (both NULL) all
        prompt TEXT,                        -- played before hanging up (NULL: refused before answer, 403)
        comment TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        blocked_calls INTEGER NOT NULL DEFAULT 0, last_blocked_at TEXT,
        CHECK (number IS NULL OR account IS NULL),
        CHECK (caller <> 'anonymous' OR prefix = 0))""")
    # one rule per caller and scope; its leading column serves the engine's lookup (caller IN (the caller's prefixes))
    db.execute("CREATE UNIQUE INDEX blocklist_one_rule ON blocklist(caller, prefix, coalesce(number, ''), "
               "coalesce(account, ''))")


@migrations()
def m011_schedules(db: sqlite_utils.Database) -> None:
    """Business hours (vpbx.domain.schedules): routes, fallbacks and IVR options branch on a schedule with
    `hours:NAME?open=DEST&closed=DEST`."""
    db.execute("""CREATE TABLE schedules (
        name TEXT PRIMARY KEY, tz TEXT NOT NULL,
        open TEXT NOT NULL,                     -- JSON list: "mon-fri 09:00-18:00", "sat 10:00-13:00,14:00-16:00"
        closed TEXT NOT NULL DEFAULT '[]',      -- JSON list of one-off closed dates, YYYY-MM-DD
        holidays TEXT NOT NULL DEFAULT '[]',    -- JSON list of yearly closed days, MM-DD
        created_at TEXT NOT NULL)""")


@migrations()
def m015_recordings(db: sqlite_utils.Database) -> None:
    """Call recording (vpbx.domain.recording, vpbx.services.recordings): who asks for it (numbers, SIP accounts,
    customers' accounts; the prompt announcing it), and one row per recorded call, its audio kept in a file beside the
    database until `expires_at` (NULL: until removed)."""
    for table in ("numbers", "sip_accounts", "accounts"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN record_calls INTEGER NOT NULL DEFAULT 0")
        db.execute(f"ALTER TABLE {table} ADD COLUMN record_prompt TEXT")
    db.execute("""CREATE TABLE recordings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL UNIQUE,       -- one recording per call (a second keep replaces its audio)
        name TEXT NOT NULL,                 -- Asterisk's recording name (vpbx.services.recordings.recording_name)
        number TEXT NOT NULL, caller TEXT NOT NULL DEFAULT '',   -- as the call record has them
        started_at TEXT NOT NULL,           -- when the recorded call was answered (else when it started)
        duration REAL NOT NULL,             -- seconds, from the WAV header
        bytes INTEGER NOT NULL, sha256 TEXT NOT NULL,
        path TEXT NOT NULL,                 -- the WAV file (mode 0600) under [recording] dir
        created_at TEXT NOT NULL,
        expires_at TEXT)""")
    db.execute("CREATE INDEX recordings_number_started ON recordings(number, started_at)")
    db.execute("CREATE INDEX recordings_expiring ON recordings(expires_at) WHERE expires_at IS NOT NULL")


@migrations()
def m013_colleague_calls(db: sqlite_utils.Database) -> None:
    """Calls between colleagues (vpbx.dialplan.outbound.colleague_call): a SIP account's own short extension (unique;
    NULL: none), how long its phone rings for a colleague, what happens then (hangup | voicemail | play:PROMPT |
    tel:+E164) and its voicemail e-mails."""
    db.execute("ALTER TABLE sip_accounts ADD COLUMN extension TEXT")
    db.execute("CREATE UNIQUE INDEX sip_accounts_extension ON sip_accounts(extension) WHERE extension IS NOT NULL")
    db.execute("ALTER TABLE sip_accounts ADD COLUMN ring_timeout INTEGER NOT NULL DEFAULT 20")
    db.execute("ALTER TABLE sip_accounts ADD COLUMN no_answer TEXT NOT NULL DEFAULT 'hangup'")
    db.execute("ALTER TABLE sip_accounts ADD COLUMN vm_emails TEXT NOT NULL DEFAULT '[]'")


@migrations()
def m021_call_credit_month(db: sqlite_utils.Database) -> None:
    """A plan's call credit is monthly (vpbx.services.lifecycle.billing_run refills it on each renewal day, also
    inside a prepaid 3/6/12-month period): the day it is next refilled. Numbers already on a plan were refilled at
    their next renewal; they keep that day."""
    db.execute("ALTER TABLE numbers ADD COLUMN credit_renews_on TEXT")
    db.execute("UPDATE numbers SET credit_renews_on = date(paid_until, '+1 day') "
               "WHERE plan IS NOT NULL AND paid_until IS NOT NULL")


@migrations()
def m022_prepaid_outbound_calls(db: sqlite_utils.Database) -> None:
    """Prepaid outbound calls (vpbx.services.charging): the outbound rate table by destination prefix (separate from
    the toll-free `rates`), the customer's account that pays a SIP account's outbound calls (NULL: unrated), a
    customer's own trunk (NULL: the provider's; its calls are not charged), and the rate prefix a call was charged
    at."""
    db.execute("""CREATE TABLE outbound_rates (
        prefix TEXT PRIMARY KEY,            -- destination digits, no '+'
        price INTEGER NOT NULL CHECK (price >= 0),              -- per minute, minor units
        initial INTEGER NOT NULL DEFAULT 60 CHECK (initial >= 1),   -- seconds billed whole when answered ...
        increment INTEGER NOT NULL DEFAULT 60 CHECK (increment >= 1),   -- ... then every started increment
        connection INTEGER NOT NULL DEFAULT 0 CHECK (connection >= 0),  -- minor units, once per answered call
        description TEXT NOT NULL DEFAULT '')""")
    db.execute("ALTER TABLE sip_accounts ADD COLUMN account TEXT REFERENCES accounts(name)")
    db.execute("ALTER TABLE trunks ADD COLUMN account TEXT REFERENCES accounts(name)")
    db.execute("ALTER TABLE calls ADD COLUMN rate_prefix TEXT")
    db.execute("CREATE INDEX calls_account_started ON calls(account, started_at) WHERE account IS NOT NULL")

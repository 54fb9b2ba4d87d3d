"""The store: the only module that speaks SQL (SQLite through sqlite-utils).

Rules: WAL mode, foreign keys on, schema versioned by sqlite-utils Migrations; every change is one
`BEGIN IMMEDIATE` transaction (writers queue on the busy timeout and retry, so concurrent `vpbx` processes
lose nothing); reads return records from vpbx.domain.records, never rows.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import time
from dataclasses import asdict, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import sqlite_utils
from sqlite_utils.migrations import Migrations

from vpbx.domain.errors import ConflictError, NotFoundError
from vpbx.domain.records import Account, Group, Ivr, Number, SipAccount, Trunk

BUSY_TIMEOUT_S = 30.0
# Endpoint names asterisk-conf/ defines itself (uri: destinations dial out through vpbx-external).
RESERVED_ENDPOINTS = frozenset({"vpbx-external", "anonymous"})
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


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


_JSON_TUPLES = {"forward_to", "vm_emails", "members"}


def _to_row(record: Any) -> dict[str, Any]:
    row = asdict(record)
    for key, value in list(row.items()):
        if key in _JSON_TUPLES or key == "options":
            row[key] = json.dumps([list(v) if isinstance(v, (tuple, list)) and key == "options" else v for v in value])
        elif isinstance(value, bool):
            row[key] = int(value)
    return row


def _from_row(cls: type, row: dict[str, Any]) -> Any:
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


class Store:
    """One SQLite database. Open with `Store.open(path)`; use as a context manager to close."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.db = sqlite_utils.Database(conn)

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

    # ---- generic helpers -------------------------------------------------------------------------------------
    def _get(self, table: str, key: str, value: str, cls: type, what: str, fix: str) -> Any:
        rows = list(self.db[table].rows_where(f"{key} = ?", [value]))
        if not rows:
            raise NotFoundError(f"{what} {value} not found; {fix}")
        return _from_row(cls, rows[0])

    def _exists(self, table: str, key: str, value: str) -> bool:
        return bool(self.conn.execute(f"SELECT 1 FROM {table} WHERE {key} = ?", [value]).fetchone())

    # ---- numbers ---------------------------------------------------------------------------------------------
    def add_number(self, number: Number) -> Number:
        return self.add_numbers([number])[0]

    def add_numbers(self, numbers: Sequence[Number]) -> list[Number]:
        with self.write():
            for n in numbers:
                if self._exists("numbers", "number", n.number):
                    raise ConflictError(f"number {n.number} already exists; change it with `vpbx number set {n.number} ...`")
                if n.trunk and not self._exists("trunks", "name", n.trunk):
                    raise NotFoundError(f"trunk {n.trunk} not found (for number {n.number}); add it with `vpbx trunk add {n.trunk} ...`")
                self.db["numbers"].insert({**_to_row(n), "created_at": now_iso()})
        return list(numbers)

    def get_number(self, number: str) -> Number:
        return self._get("numbers", "number", number, Number, "number", "list numbers with `vpbx number list`")

    def find_number(self, number: str) -> Number | None:
        try:
            return self.get_number(number)
        except NotFoundError:
            return None

    def list_numbers(self, category: str | None = None, type: str | None = None, city: str | None = None,
                     operator: str | None = None, contains: str | None = None, status: str | None = None,
                     account: str | None = None) -> list[Number]:
        where, args = [], []
        for col, val in (("category", category), ("type", type), ("status", status), ("account", account)):
            if val:
                where.append(f"{col} = ?")
                args.append(val)
        for col, val in (("city", city), ("operator", operator)):
            if val:
                where.append(f"{col} LIKE ?")
                args.append(f"%{val}%")
        if contains:
            where.append("instr(number, ?) > 0")
            args.append(contains)
        rows = self.db["numbers"].rows_where(" AND ".join(where) or None, args, order_by="number")
        return [_from_row(Number, r) for r in rows]

    def update_numbers(self, numbers: Sequence[str], **changes: Any) -> list[Number]:
        """Apply the same changes to several numbers in one transaction (all or nothing)."""
        out = []
        with self.write():
            for num in numbers:
                current = self.get_number(num)
                updated = replace(current, **changes)
                if updated.trunk and not self._exists("trunks", "name", updated.trunk):
                    raise NotFoundError(f"trunk {updated.trunk} not found; add it with `vpbx trunk add {updated.trunk} ...`")
                row = _to_row(updated)
                self.db["numbers"].update(num, {k: row[k] for k in changes})
                out.append(updated)
        return out

    def number_users(self, number: str) -> list[str]:
        users = [f"SIP account {r[0]} (caller ID)" for r in
                 self.conn.execute("SELECT login FROM sip_accounts WHERE caller_id = ?", [number])]
        for dest_table, col in (("groups", "members"),):
            for (name, members) in self.conn.execute(f"SELECT name, {col} FROM {dest_table}"):
                if f"tel:{number}" in json.loads(members):
                    users.append(f"group {name}")
        for (name, options) in self.conn.execute("SELECT name, options FROM ivrs"):
            if any(dest == f"tel:{number}" for _d, dest in json.loads(options)):
                users.append(f"IVR {name}")
        return users

    def remove_number(self, number: str) -> None:
        with self.write():
            held = self.get_number(number)
            if held.account:
                raise ConflictError(f"number {number} is held by account {held.account} ({held.status}); "
                                    f"release it first with `vpbx number release {number}`")
            users = self.number_users(number)
            if users:
                raise ConflictError(f"number {number} is still used by {', '.join(users)}; change those first")
            self.db["numbers"].delete(number)

    # ---- SIP accounts ----------------------------------------------------------------------------------------
    def add_sip_account(self, account: SipAccount) -> SipAccount:
        with self.write():
            if self._exists("sip_accounts", "login", account.login):
                raise ConflictError(f"SIP account {account.login} already exists; pick another login or "
                                    f"`vpbx sip remove {account.login}` first")
            if self._exists("trunks", "name", account.login) or account.login in RESERVED_ENDPOINTS:
                raise ConflictError(f"SIP account {account.login}: the name is taken by a trunk or reserved "
                                    f"(Asterisk endpoints share one namespace); pick another login")
            if account.login.isdigit() and self.conn.execute("SELECT name FROM accounts WHERE org_id = ?",
                                                             [int(account.login)]).fetchone():
                raise ConflictError(f"SIP account {account.login}: callers type {account.login} to reach an account's "
                                    "organisation ID already; pick another login")
            if account.caller_id and not self._exists("numbers", "number", account.caller_id):
                raise NotFoundError(f"caller ID {account.caller_id} is not a number of this install; "
                                    f"add it with `vpbx number add {account.caller_id}`")
            self.db["sip_accounts"].insert({**_to_row(account), "created_at": now_iso()})
        return account

    def get_sip_account(self, login: str) -> SipAccount:
        return self._get("sip_accounts", "login", login, SipAccount, "SIP account", "list them with `vpbx sip list`")

    def list_sip_accounts(self) -> list[SipAccount]:
        return [_from_row(SipAccount, r) for r in self.db["sip_accounts"].rows_where(order_by="login")]

    def set_sip_password(self, login: str, password: str) -> SipAccount:
        with self.write():
            account = self.get_sip_account(login)
            self.db["sip_accounts"].update(login, {"password": password})
        return replace(account, password=password)

    def sip_account_users(self, login: str) -> list[str]:
        users = [f"number {n} (route)" for (n,) in self.conn.execute(
            "SELECT number FROM numbers WHERE route = ? OR instr(forward_to, ?) > 0", [f"sip:{login}", json.dumps(f"sip:{login}")])]
        users += self._destination_users(f"sip:{login}")
        return users

    def remove_sip_account(self, login: str) -> None:
        with self.write():
            self.get_sip_account(login)
            users = self.sip_account_users(login)
            if users:
                raise ConflictError(f"SIP account {login} is still used by {', '.join(users)}; change those first")
            self.db["sip_accounts"].delete(login)

    # ---- trunks ----------------------------------------------------------------------------------------------
    def add_trunk(self, trunk: Trunk) -> Trunk:
        with self.write():
            if self._exists("trunks", "name", trunk.name):
                raise ConflictError(f"trunk {trunk.name} already exists; pick another name or `vpbx trunk remove {trunk.name}` first")
            if self._exists("sip_accounts", "login", trunk.name) or trunk.name in RESERVED_ENDPOINTS:
                raise ConflictError(f"trunk {trunk.name}: the name is taken by a SIP account or reserved "
                                    f"(Asterisk endpoints share one namespace); pick another name")
            self.db["trunks"].insert({**_to_row(trunk), "created_at": now_iso()})
        return trunk

    def get_trunk(self, name: str) -> Trunk:
        return self._get("trunks", "name", name, Trunk, "trunk", "list them with `vpbx trunk list`")

    def list_trunks(self) -> list[Trunk]:
        return [_from_row(Trunk, r) for r in self.db["trunks"].rows_where(order_by="name")]

    def remove_trunk(self, name: str) -> None:
        with self.write():
            self.get_trunk(name)
            users = [r[0] for r in self.conn.execute("SELECT number FROM numbers WHERE trunk = ?", [name])]
            if users:
                raise ConflictError(f"trunk {name} is still used by number(s) {', '.join(users)}; "
                                    f"move them with `vpbx number set NUMBER --trunk OTHER` first")
            self.db["trunks"].delete(name)

    # ---- groups and IVRs -------------------------------------------------------------------------------------
    def _destination_users(self, dest: str) -> list[str]:
        users = [f"number {n}" for (n,) in self.conn.execute(
            "SELECT number FROM numbers WHERE route = ? OR instr(forward_to, ?) > 0", [dest, json.dumps(dest)])]
        for (name, members) in self.conn.execute("SELECT name, members FROM groups"):
            if dest in json.loads(members):
                users.append(f"group {name}")
        for (name, options) in self.conn.execute("SELECT name, options FROM ivrs"):
            if any(d == dest for _k, d in json.loads(options)):
                users.append(f"IVR {name}")
        return sorted(set(users))

    def add_group(self, group: Group) -> Group:
        with self.write():
            if self._exists("groups", "name", group.name):
                raise ConflictError(f"group {group.name} already exists; remove it first or pick another name")
            self.db["groups"].insert({**_to_row(group), "created_at": now_iso()})
        return group

    def get_group(self, name: str) -> Group:
        return self._get("groups", "name", name, Group, "group", "list them with `vpbx group list`")

    def list_groups(self) -> list[Group]:
        return [_from_row(Group, r) for r in self.db["groups"].rows_where(order_by="name")]

    def remove_group(self, name: str) -> None:
        with self.write():
            self.get_group(name)
            users = self._destination_users(f"group:{name}")
            if users:
                raise ConflictError(f"group {name} is still used by {', '.join(users)}; change those first")
            self.db["groups"].delete(name)

    def add_ivr(self, ivr: Ivr) -> Ivr:
        with self.write():
            if self._exists("ivrs", "name", ivr.name):
                raise ConflictError(f"IVR {ivr.name} already exists; remove it first or pick another name")
            self.db["ivrs"].insert({**_to_row(ivr), "created_at": now_iso()})
        return ivr

    def get_ivr(self, name: str) -> Ivr:
        return self._get("ivrs", "name", name, Ivr, "IVR", "list them with `vpbx ivr list`")

    def list_ivrs(self) -> list[Ivr]:
        return [_from_row(Ivr, r) for r in self.db["ivrs"].rows_where(order_by="name")]

    def remove_ivr(self, name: str) -> None:
        with self.write():
            self.get_ivr(name)
            users = [u for u in self._destination_users(f"ivr:{name}") if u != f"IVR {name}"]
            if users:
                raise ConflictError(f"IVR {name} is still used by {', '.join(users)}; change those first")
            self.db["ivrs"].delete(name)

    # ---- call records ----------------------------------------------------------------------------------------
    # The engine writes these on every call: plain SQL, no sqlite-utils table introspection on the hot path.
    _CALL_COLUMNS = frozenset({"answered_at", "ended_at", "reached", "disposition", "duration", "billsec", "voicemail",
                               "node", "restarts", "account", "cost"})

    def start_call(self, call_id: str, number: str, caller: str, direction: str = "inbound",
                   started_at: str | None = None) -> None:
        with self.write():
            self.conn.execute("INSERT OR IGNORE INTO calls (call_id, number, caller, direction, started_at) "
                              "VALUES (?, ?, ?, ?, ?)", [call_id, number, caller, direction, started_at or now_iso()])

    def finish_call(self, call_id: str, **values: Any) -> None:
        unknown = set(values) - self._CALL_COLUMNS
        if unknown:
            raise ValueError(f"not call record columns: {sorted(unknown)}")
        if not values:
            return
        with self.write():
            self.conn.execute(f"UPDATE calls SET {', '.join(f'{k} = ?' for k in values)} WHERE call_id = ?",
                              [*values.values(), call_id])

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        cur = self.conn.execute("SELECT * FROM calls WHERE call_id = ?", [call_id])
        row = cur.fetchone()
        return dict(zip((d[0] for d in cur.description), row)) if row else None

    def open_calls(self) -> list[dict[str, Any]]:
        return list(self.db["calls"].rows_where("ended_at IS NULL", order_by="started_at"))

    def note_call_node(self, call_id: str, node: str | None, restarts: int | None = None) -> None:
        values: dict[str, Any] = {"node": node}
        if restarts is not None:
            values["restarts"] = restarts
        self.finish_call(call_id, **values)

    def add_voicemail(self, recording: str, call_id: str, number: str, caller: str, emails: Sequence[str],
                      duration: float) -> None:
        """Put a recorded message in the outbox (kept until delivered)."""
        with self.write():
            self.db["voicemails"].insert({"recording": recording, "call_id": call_id, "number": number, "caller": caller,
                                          "emails": json.dumps(list(emails)), "duration": duration,
                                          "created_at": now_iso()}, ignore=True)

    def list_voicemails(self, undelivered_only: bool = False) -> list[dict[str, Any]]:
        where = "delivered_at IS NULL" if undelivered_only else None
        return list(self.db["voicemails"].rows_where(where, order_by="created_at"))

    def active_calls(self, number: str) -> int:
        return self.conn.execute("SELECT count(*) FROM calls WHERE number = ? AND ended_at IS NULL", [number]).fetchone()[0]

    def list_calls(self, number: str | None = None, since: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        where, args = [], []
        if number:
            where.append("number = ?")
            args.append(number)
        if since:
            where.append("started_at >= ?")
            args.append(since)
        return list(self.db["calls"].rows_where(" AND ".join(where) or None, args, order_by="started_at desc", limit=limit))

    def call_stats(self) -> list[dict[str, Any]]:
        sql = """SELECT number, count(*) AS calls, sum(answered_at IS NOT NULL) AS answered,
                 sum(answered_at IS NULL) AS missed, round(sum(billsec) / 60.0, 1) AS minutes
                 FROM calls WHERE ended_at IS NOT NULL GROUP BY number ORDER BY number"""
        return [dict(zip(("number", "calls", "answered", "missed", "minutes"), r)) for r in self.conn.execute(sql)]

    # ---- voicemail outbox ------------------------------------------------------------------------------------
    # Used by vpbx.services.voicemail: a message stays here until delivered_at is set; failures only move next_attempt_at.
    def voicemail(self, recording: str) -> dict[str, Any] | None:
        rows = list(self.db["voicemails"].rows_where("recording = ?", [recording]))
        return rows[0] if rows else None

    def due_voicemails(self, now: str) -> list[dict[str, Any]]:
        """Undelivered messages whose next attempt is due at ISO time `now` (oldest first)."""
        return list(self.db["voicemails"].rows_where(
            "delivered_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= ?)", [now], order_by="created_at"))

    def claim_voicemail(self, recording: str, now: str, lease_until: str) -> dict[str, Any] | None:
        """Take a due message for one delivery attempt (next_attempt_at := lease_until), so that two senders never
        send it at the same time; None if it is delivered, unknown or not due (someone else holds it)."""
        with self.write():
            cur = self.conn.execute(
                "UPDATE voicemails SET next_attempt_at = ? WHERE recording = ? AND delivered_at IS NULL "
                "AND (next_attempt_at IS NULL OR next_attempt_at <= ?)", [lease_until, recording, now])
            return self.voicemail(recording) if cur.rowcount == 1 else None

    def mark_voicemail_delivered(self, recording: str, delivered_at: str | None = None,
                                 note: str | None = None) -> None:
        """Delivered (attempts counts this try too); `note` e.g. recipients the server refused."""
        with self.write():
            self.conn.execute(
                "UPDATE voicemails SET delivered_at = ?, attempts = attempts + 1, last_error = ?, "
                "next_attempt_at = NULL WHERE recording = ?", [delivered_at or now_iso(), note, recording])

    def mark_voicemail_failed(self, recording: str, error: str, next_attempt_at: str) -> None:
        with self.write():
            self.conn.execute(
                "UPDATE voicemails SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                "WHERE recording = ? AND delivered_at IS NULL", [error, next_attempt_at, recording])

    def retry_voicemails(self, recording: str | None = None) -> int:
        """Make undelivered messages (all, or one) due now; returns how many."""
        with self.write():
            if recording is not None and not self._exists("voicemails", "recording", recording):
                raise NotFoundError(f"voicemail {recording} not found; list them with `vpbx voicemail list`")
            where, args = "delivered_at IS NULL", []
            if recording is not None:
                where, args = where + " AND recording = ?", [recording]
            return self.conn.execute(f"UPDATE voicemails SET next_attempt_at = NULL WHERE {where}", args).rowcount

    def database_path(self) -> Path | None:
        """The database file (None for an in-memory database): the voicemail spool lives next to it."""
        for _seq, name, file in self.conn.execute("PRAGMA database_list"):
            if name == "main":
                return Path(file) if file else None
        return None

    # ---- accounts and the ledger -----------------------------------------------------------------------------
    # Balance changes only through `post`, which writes the ledger row in the same transaction.
    def add_account(self, account: Account) -> Account:
        with self.write():
            row = self.conn.execute("SELECT closed_at FROM accounts WHERE name = ?", [account.name]).fetchone()
            if row and row[0]:
                raise ConflictError(f"account {account.name} was closed on {row[0][:10]} and its ledger is kept under "
                                    "that name; pick another name")
            if row:
                raise ConflictError(f"account {account.name} already exists; see it with `vpbx account show {account.name}`")
            if account.org_id is not None:
                self._check_org_id(account.org_id, account.name)
            self.db["accounts"].insert({**_to_row(account), "balance": 0, "created_at": now_iso()})
        return replace(account, balance=0)

    def _check_org_id(self, org_id: int, name: str) -> None:
        """Organisation IDs are extensions callers type: unique, and not an all-digit SIP login."""
        holder = self.conn.execute("SELECT name FROM accounts WHERE org_id = ? AND name != ?", [org_id, name]).fetchone()
        if holder:
            raise ConflictError(f"organisation ID {org_id} is already account {holder[0]}'s; pick another --org-id")
        if self._exists("sip_accounts", "login", str(org_id)):
            raise ConflictError(f"organisation ID {org_id} is SIP account {org_id}'s extension already; pick another --org-id")

    def get_account(self, name: str, include_closed: bool = False) -> Account:
        rows = list(self.db["accounts"].rows_where("name = ?", [name]))
        if not rows:
            raise NotFoundError(f"account {name} not found; list accounts with `vpbx account list`")
        if rows[0]["closed_at"] and not include_closed:
            raise NotFoundError(f"account {name} was closed on {rows[0]['closed_at'][:10]}; its ledger is kept "
                                f"(`vpbx account transactions {name}`)")
        return _from_row(Account, rows[0])

    def list_accounts(self) -> list[Account]:
        return [_from_row(Account, r) for r in self.db["accounts"].rows_where("closed_at IS NULL", order_by="name")]

    def update_account(self, name: str, **changes: Any) -> Account:
        with self.write():
            current = self.get_account(name)
            if "balance" in changes:
                raise ValueError("balance changes only through Store.post")
            if changes.get("org_id") is not None:
                self._check_org_id(changes["org_id"], name)
            self.db["accounts"].update(name, changes)
            return replace(current, **changes)

    def remove_account(self, name: str) -> None:
        with self.write():
            account = self.get_account(name)
            held = [r[0] for r in self.conn.execute("SELECT number FROM numbers WHERE account = ? ORDER BY number", [name])]
            if held:
                raise ConflictError(f"account {name} still holds {', '.join(held)}; release them with `vpbx number release`")
            if account.balance != 0:
                from vpbx.billing import format_amount

                amount = format_amount(abs(account.balance)).replace(" ", "")
                fix = (f"refund it with `vpbx account adjust {name} --ref refund -- -{amount}`" if account.balance > 0
                       else f"collect it with `vpbx account topup {name} {amount}`")
                raise ConflictError(f"account {name} has a non-zero balance ({format_amount(account.balance)}); "
                                    f"{fix} first")
            self.conn.execute("DELETE FROM waitlist WHERE account = ?", [name])
            # closed, not deleted: revenue, statements and `account check` keep its history; the org ID is freed
            self.conn.execute("UPDATE accounts SET closed_at = ?, org_id = NULL WHERE name = ?", [now_iso(), name])

    def post(self, account: str, amount: int, kind: str, effective_on: str, *, number: str | None = None,
             call_id: str | None = None, period_start: str | None = None, period_end: str | None = None,
             ref: str = "") -> int:
        """Change `account`'s balance by `amount` (minor units) and write its ledger row; returns the new balance.
        Raises ConflictError if that renewal period or call was already charged."""
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise TypeError("amounts are int minor units")
        with self.write():
            self.get_account(account)
            self.conn.execute("UPDATE accounts SET balance = balance + ? WHERE name = ?", [amount, account])
            balance = self.conn.execute("SELECT balance FROM accounts WHERE name = ?", [account]).fetchone()[0]
            try:
                self.conn.execute(
                    "INSERT INTO ledger (account, amount, balance_after, kind, number, call_id, period_start, period_end,"
                    " ref, effective_on, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [account, amount, balance, kind, number, call_id, period_start, period_end, ref, effective_on,
                     now_iso()])
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"{kind} for {number or call_id} ({period_start or call_id}) is already charged") from exc
            return balance

    def ledger(self, account: str | None = None, since: str | None = None, before: str | None = None) -> list[dict[str, Any]]:
        """Ledger rows oldest first; `since`/`before` are YYYY-MM-DD bounds on effective_on."""
        where, args = [], []
        for clause, value in (("account = ?", account), ("effective_on >= ?", since), ("effective_on < ?", before)):
            if value is not None:
                where.append(clause)
                args.append(value)
        return list(self.db["ledger"].rows_where(" AND ".join(where) or None, args, order_by="id"))

    def ledger_sum(self, account: str, before: str | None = None) -> int:
        sql, args = "SELECT coalesce(sum(amount), 0) FROM ledger WHERE account = ?", [account]
        if before is not None:
            sql, args = sql + " AND effective_on < ?", args + [before]
        return int(self.conn.execute(sql, args).fetchone()[0])

    def ledger_mismatches(self) -> list[dict[str, Any]]:
        """Accounts whose balance differs from the sum of their ledger (should always be empty)."""
        sql = """SELECT a.name, a.balance, coalesce(sum(l.amount), 0) AS ledger_sum FROM accounts a
                 LEFT JOIN ledger l ON l.account = a.name GROUP BY a.name HAVING a.balance != ledger_sum"""
        return [dict(zip(("account", "balance", "ledger_sum"), r)) for r in self.conn.execute(sql)]

    def revenue_by_month(self) -> list[dict[str, Any]]:
        sql = """SELECT substr(effective_on, 1, 7) AS month, -sum(amount) AS revenue, count(*) AS charges FROM ledger
                 WHERE kind IN ('connection', 'period', 'renewal', 'call') GROUP BY month ORDER BY month"""
        return [dict(zip(("month", "revenue", "charges"), r)) for r in self.conn.execute(sql)]

    # ---- number lifecycle ------------------------------------------------------------------------------------
    def account_numbers(self, account: str, statuses: Sequence[str] | None = None) -> list[Number]:
        where, args = "account = ?", [account]
        if statuses:
            where += f" AND status IN ({', '.join('?' for _ in statuses)})"
            args += list(statuses)
        return [_from_row(Number, r) for r in self.db["numbers"].rows_where(where, args, order_by="connected_on, number")]

    def numbers_with_status(self, *statuses: str) -> list[Number]:
        where = f"status IN ({', '.join('?' for _ in statuses)})"
        return [_from_row(Number, r) for r in self.db["numbers"].rows_where(where, list(statuses), order_by="number")]

    def numbers_due(self, day: str) -> list[Number]:
        """Held numbers whose paid period ends before `day` (YYYY-MM-DD): due for renewal."""
        return [_from_row(Number, r) for r in self.db["numbers"].rows_where(
            "status IN ('active', 'suspended', 'pending_documents') AND paid_until IS NOT NULL AND paid_until < ?",
            [day], order_by="number")]

    def number_status_counts(self) -> list[dict[str, Any]]:
        return [{"status": s, "numbers": n} for s, n in
                self.conn.execute("SELECT status, count(*) FROM numbers GROUP BY status ORDER BY status")]

    # ---- tariff and toll-free rates --------------------------------------------------------------------------
    def save_tariff(self, source: str) -> None:
        with self.write():
            self.conn.execute("INSERT OR REPLACE INTO tariff (id, source, loaded_at) VALUES (1, ?, ?)", [source, now_iso()])

    def tariff_source(self) -> str | None:
        row = self.conn.execute("SELECT source FROM tariff WHERE id = 1").fetchone()
        return row[0] if row else None

    def replace_rates(self, rows: Sequence[tuple[str, int, str]]) -> int:
        """The toll-free rate table is replaced whole, in one transaction."""
        with self.write():
            self.conn.execute("DELETE FROM rates")
            self.conn.executemany("INSERT INTO rates (prefix, price, description) VALUES (?, ?, ?)", rows)
        return len(rows)

    def rates(self) -> list[tuple[str, int, str]]:
        return [tuple(r) for r in self.conn.execute("SELECT prefix, price, description FROM rates ORDER BY prefix")]

    def rate_for(self, prefixes: Sequence[str]) -> tuple[str, int] | None:
        """The longest of `prefixes` in the rate table, with its price per minute (an index probe per prefix)."""
        if not prefixes:
            return None
        row = self.conn.execute(
            f"SELECT prefix, price FROM rates WHERE prefix IN ({', '.join('?' for _ in prefixes)}) "
            "ORDER BY length(prefix) DESC LIMIT 1", list(prefixes)).fetchone()
        return (row[0], int(row[1])) if row else None

    def set_call_charge(self, call_id: str, account: str | None, cost: int | None) -> None:
        with self.write():
            self.conn.execute("UPDATE calls SET account = ?, cost = ? WHERE call_id = ?", [account, cost, call_id])

    def unrated_calls(self) -> list[str]:
        """Finished inbound calls to an account's toll-free number, made since it was connected, not yet rated."""
        sql = """SELECT c.call_id FROM calls c JOIN numbers n ON n.number = c.number
                 WHERE c.cost IS NULL AND c.ended_at IS NOT NULL AND c.direction = 'inbound' AND n.type = 'tollfree'
                 AND n.account IS NOT NULL AND n.connected_on IS NOT NULL AND c.started_at >= n.connected_on
                 ORDER BY c.started_at"""
        return [r[0] for r in self.conn.execute(sql)]

    def account_call_totals(self, account: str, since: str, before: str) -> dict[str, int]:
        """Calls charged to `account` that started in [since, before): count, billed seconds and cost."""
        row = self.conn.execute(
            "SELECT count(*), coalesce(sum(billsec), 0), coalesce(sum(cost), 0) FROM calls "
            "WHERE account = ? AND started_at >= ? AND started_at < ?", [account, since, before]).fetchone()
        return {"calls": int(row[0]), "seconds": int(row[1]), "cost": int(row[2])}

    # ---- documents, waitlist, notices, billing runs ----------------------------------------------------------
    def add_document(self, number: str, account: str | None, filename: str, path: str, sha256: str, size: int) -> int:
        with self.write():
            self.get_number(number)
            return int(self.db["documents"].insert({
                "number": number, "account": account, "filename": filename, "path": path, "sha256": sha256,
                "size": size, "added_at": now_iso()}).last_pk)

    def list_documents(self, number: str | None = None) -> list[dict[str, Any]]:
        where, args = ("number = ?", [number]) if number else (None, [])
        return list(self.db["documents"].rows_where(where, args, order_by="id"))

    def add_waitlist(self, account: str, country: str, city: str, type: str) -> dict[str, Any]:
        with self.write():
            self.get_account(account)
            pk = self.db["waitlist"].insert({"account": account, "country": country, "city": city, "type": type,
                                             "created_at": now_iso()}).last_pk
            return dict(next(self.db["waitlist"].rows_where("id = ?", [pk])))

    def list_waitlist(self, open_only: bool = False) -> list[dict[str, Any]]:
        return list(self.db["waitlist"].rows_where("notified_at IS NULL" if open_only else None, order_by="id"))

    def remove_waitlist(self, entry_id: int) -> None:
        with self.write():
            if not self.conn.execute("DELETE FROM waitlist WHERE id = ?", [entry_id]).rowcount:
                raise NotFoundError(f"waitlist entry {entry_id} not found; list them with `vpbx waitlist list`")

    def close_waitlist(self, entry_id: int, number: str) -> bool:
        """Mark an entry notified about `number`; False if it already was (so it is mailed once)."""
        with self.write():
            return self.conn.execute("UPDATE waitlist SET notified_at = ?, notified_number = ? "
                                     "WHERE id = ? AND notified_at IS NULL", [now_iso(), number, entry_id]).rowcount == 1

    def queue_mail(self, recipient: str, subject: str, body: str) -> int:
        with self.write():
            return int(self.db["mail_outbox"].insert({"recipient": recipient, "subject": subject, "body": body,
                                                      "created_at": now_iso()}).last_pk)

    def list_mail(self, unsent_only: bool = False) -> list[dict[str, Any]]:
        return list(self.db["mail_outbox"].rows_where("sent_at IS NULL" if unsent_only else None, order_by="id"))

    def mark_mail(self, mail_id: int, error: str | None) -> None:
        with self.write():
            if error is None:
                self.conn.execute("UPDATE mail_outbox SET sent_at = ?, attempts = attempts + 1, last_error = NULL "
                                  "WHERE id = ?", [now_iso(), mail_id])
            else:
                self.conn.execute("UPDATE mail_outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                                  [error, mail_id])

    def record_billing_run(self, run_date: str, summary: dict[str, Any]) -> None:
        with self.write():
            self.conn.execute("INSERT OR REPLACE INTO billing_runs (run_date, ran_at, summary) VALUES (?, ?, ?)",
                              [run_date, now_iso(), json.dumps(summary)])

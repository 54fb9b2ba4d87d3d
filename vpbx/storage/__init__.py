"""vpbx.storage: the only SQL in vpbx (SQLite through sqlite-utils), split by aggregate.

Rules: storage returns domain records and plain dicts; it decides nothing a user would call a business rule (that is
services/), and it imports only domain/ (and billing/ formatting). Every change is one `BEGIN IMMEDIATE` transaction
(`Store.write`); waiting for the write lock is SQLite's busy handler, never a retry loop. A schema change is a new
migration. Each module's docstring states its own rule.

    store.py     Store: open (WAL, foreign keys, migrations), write(), close; one repository per aggregate
    schema.py    the migrations
    rows.py      row <-> record conversion, the Repo base
    numbers.py   store.numbers        phone numbers: inventory, routing columns, lifecycle state
    routing.py   store.sip_accounts, store.trunks, store.groups, store.ivrs (and what still routes to each)
    calls.py     store.calls          call records: add, note_node, note_payer, finish, set_charge, export
    outbox.py    store.outbox         the one e-mail outbox (voicemail and notices): queue, claim, mark
    ledger.py    store.accounts, store.rates   accounts and their ledger; tariff source, toll-free and outbound rates
    shop.py      store.shop           end users' documents, the waitlist, billing runs
    security.py  store.bans           brute-force bans of addresses (vpbx.domain.security)
    blocklist.py store.blocklist      the caller blocklist's rules and the calls each refused
    recordings.py store.recordings   call recordings: one row per recorded call (its audio is a file)
"""
from __future__ import annotations

from vpbx.storage.store import Store, migrations

__all__ = ["Store", "migrations"]

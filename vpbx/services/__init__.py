"""vpbx.services: the use cases - one function per user-visible operation, each one transaction.

Layer rule (tests/test_layers.py; lowest first: domain; dialplan, billing; config; storage; services; asterisk;
engine; ari_app; commands; cli): services import only the layers below them (domain/, dialplan/, billing/, config,
storage/) and each other, never an edge (asterisk/, engine/, ari_app, cli, commands/).

Rule: every rule the CLI, the engine and a future API share lives here. A service takes a Store (and the Config where
it needs it), checks its input through `vpbx.domain` (validation, destinations, rules), calls the pure layers for
decisions and storage/ for state, and returns records or plain data. It never prints and knows nothing of Click.

    numbers.py       build a Number from user input; add, import (all or nothing), change, remove, search
    routing.py       route, forward, fallback and voicemail recipients; check_flows (every affected flow compiles)
    sip_accounts.py  SIP accounts: add (generated password), new password, remove
    trunks.py        trunks: add, remove
    groups.py        ring groups: add, remove
    ivrs.py          IVR menus: KEY=DEST options, add, remove
    schedules.py     business hours: schedules add, set, remove, show (open now?); the tz database check
    calls.py         dry runs of a call flow, call records, per-number totals
    flows.py         loading a number's flow as the engine runs it (with schedules and their zones' offsets)
    lifecycle.py     accounts, money and the number lifecycle (orders, billing run, toll-free charging, notices)
    charging.py      outbound calls: who pays, at what rate, from plan credit then balance (one ledger row a call)
    prompts.py       audio prompts converted and installed into Asterisk's sounds dir
    outbox.py        the one outbox of every e-mail (voicemail, notices): lease, backoff, delivery
    recordings.py    call recordings: keeping the audio the engine fetched, list, export, remove, retention
    install.py       a new install: config file and database
    security.py      brute-force bans: list, lift (the watcher in `vpbx serve` makes them)
"""

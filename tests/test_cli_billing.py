"""CLI contract of issue 5 (accounts, tariffs, rates, number orders and lifecycle, billing run, documents, waitlist,
notices, stats), run through Click's CliRunner on a config + DB made by `vpbx init`, with a real SMTP server
(aiosmtpd on 127.0.0.1) for the notices.

Every refused command: exit 1, exactly one `Error: ...` line on stderr naming the object and the fix, and the
database unchanged (its SQL dump compared before/after). `vpbx init` sets [billing] policy = "prorate", so an order
dated on the 1st of a month pays the full month. Seed prices (minor units in brackets): connection 495 -> 2 500.00,
812 -> 1 000.00, 8-800 -> 2 950.00, default 1 000.00; monthly geographic/mobile 500.00, toll-free 1 500.00.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from clitools import dump, ok
from smtptools import Smtp, free_port
from vpbx.cli import main
from vpbx.storage.store import Store

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tariffs" / "seed-ru.toml"
RATES = ROOT / "tariffs" / "tollfree-rates-ru.csv"
VPBX_BIN = Path(sys.executable).parent / "vpbx"
CLEAN_ENV = {"VPBX_CONFIG": None, "VPBX_DB": None, "COLUMNS": "250"}

MOSCOW = "+74952718459"        # geographic, Moscow, regular (area 495)
MOSCOW2 = "+74952718460"
SPB = "+78122718459"           # geographic, St Petersburg, regular (area 812)
MOBILE = "+79162718459"        # mobile, regular
NOVOSIBIRSK = "+73832718459"   # geographic, Novosibirsk, regular
TOLLFREE = "+78002718459"      # 8-800, regular
KYIV = "+380442718459"         # UA geographic, "Kyiv city", regular
UNAVAILABLE_CALL = [
    f"  0. call from +79161112233 to {MOSCOW} -> answer; play sound:vpbx/number-unavailable [sim-pb-1]",
    "  1. playback sim-pb-1 finished -> hang up caller (cause 16)",
    "end: failed, reached -",
]


# ---- helpers --------------------------------------------------------------------------------------------------
CLOCK: list[date] = [date.today()]


@pytest.fixture(autouse=True)
def back_office_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests play a calendar out with `--date` (March 2026 ...); a date may be at most 31 days back from the
    clock's day (tests/test_dates_and_lifecycle.py), so here the CLI's clock moves to each `--date` given."""
    from vpbx.commands import output

    CLOCK[:] = [date.today()]
    monkeypatch.setattr(output, "today", lambda: CLOCK[0])


def invoke(args: list[Any]) -> Result:
    text = [str(a) for a in args]
    if "--date" in text[:-1]:
        try:
            CLOCK[0] = date.fromisoformat(text[text.index("--date") + 1])
        except ValueError:
            pass
    return CliRunner().invoke(main, text, env=CLEAN_ENV)


def error_line(result: Result, *needles: str) -> str:
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r} instead of an Error: line"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and result.stderr.endswith("\n"), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert result.stdout == ""
    return lines[0]


class Vpbx:
    """`vpbx --config <tmp>/vpbx.toml ...` on a config + DB made by `vpbx init`."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cfg = tmp / "vpbx.toml"
        self.db = tmp / "vpbx.db"

    def __call__(self, *args: Any) -> Result:
        return invoke(["--config", self.cfg, *args])

    def ok(self, *args: Any) -> Result:
        return ok(self(*args))

    def out(self, *args: Any) -> str:
        """stdout of a command that must succeed without a word on stderr."""
        result = self.ok(*args)
        assert result.stderr == "", result.stderr
        return result.stdout

    def json(self, *args: Any) -> Any:
        """Exactly one JSON document on stdout (stderr may carry a warning, never on stdout)."""
        result = self.ok(*args, "--json")
        doc, end = json.JSONDecoder().raw_decode(result.stdout)
        assert result.stdout[end:].strip() == ""
        return doc

    def fails(self, *args: Any, needles: tuple[str, ...] = ()) -> str:
        before = dump(self.db)
        line = error_line(self(*args), *needles)
        assert dump(self.db) == before, "a refused command changed the database"
        return line

    def smtp(self, port: int) -> None:
        """Point [smtp] at 127.0.0.1:port (no TLS, no login)."""
        text = self.cfg.read_text()
        assert '[smtp]  # voicemail e-mail; fill in host to enable\nhost = ""\nport = 25\n' in text
        text = text.replace('[smtp]  # voicemail e-mail; fill in host to enable\nhost = ""\nport = 25\n',
                            f'[smtp]\nhost = "127.0.0.1"\nport = {port}\n')
        self.cfg.write_text(text.replace('sender = "vpbx@localhost"', 'sender = "shop@example.com"'))

    def policy(self, policy: str) -> None:
        text = self.cfg.read_text()
        assert 'policy = "prorate"' in text
        self.cfg.write_text(text.replace('policy = "prorate"', f'policy = "{policy}"'))

    def balance(self, name: str = "acme") -> int:
        return self.json("account", "show", name)["balance"]

    def number(self, e164: str) -> dict[str, Any]:
        return self.json("number", "show", e164)


@pytest.fixture
def vp(tmp_path: Path) -> Vpbx:
    v = Vpbx(tmp_path)
    ok(invoke(["--config", v.cfg, "init", "--dir", tmp_path]))
    return v


@pytest.fixture
def shop(vp: Vpbx) -> Vpbx:
    """The seed tariff and rates loaded, account acme (org ID 500), a few numbers for sale."""
    vp.ok("tariff", "load", SEED)
    vp.ok("rates", "import", RATES)
    vp.ok("account", "add", "acme", "--email", "acme@example.com", "--org-id", "500")
    for n in (MOSCOW, MOSCOW2, SPB, MOBILE, TOLLFREE):
        vp.ok("number", "add", n)
    return vp


def month_start() -> date:
    return date.today().replace(day=1)


# ---- help -----------------------------------------------------------------------------------------------------
BILLING_GROUPS = ("account", "tariff", "rates", "billing", "document", "waitlist", "notices", "stats")


def test_help_lists_the_billing_commands() -> None:
    result = ok(invoke(["--help"]))
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed >= set(BILLING_GROUPS)


def _walk(cmd: click.Command, path: tuple[str, ...]):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _walk(sub, (*path, name))


BILLING_COMMANDS = [pc for g in BILLING_GROUPS for pc in _walk(main.commands[g], (g,))] + [
    (("number", name), main.commands["number"].commands[name]) for name in ("assign", "release", "trial", "activate")]


def test_the_billing_command_tree_is_complete() -> None:
    assert {" ".join(p) for p, _ in BILLING_COMMANDS} >= {
        "account add", "account list", "account show", "account set", "account remove", "account topup",
        "account adjust", "account transactions", "account statement", "account check", "tariff load", "tariff show",
        "rates import", "rates list", "rates lookup", "number assign", "number release", "number trial",
        "number activate", "document add", "document list", "billing run", "waitlist add", "waitlist list",
        "waitlist remove", "notices list", "notices send", "stats"}


@pytest.mark.parametrize("path, cmd", BILLING_COMMANDS, ids=[" ".join(p) for p, _ in BILLING_COMMANDS])
def test_every_billing_command_has_help(path: tuple[str, ...], cmd: click.Command) -> None:
    assert (cmd.help or "").strip(), f"`vpbx {' '.join(path)}` has no help text"
    result = ok(invoke([*path, "--help"]))
    assert result.stdout.startswith("Usage: ")
    assert " ".join(cmd.help.strip().splitlines()[0].split()) in " ".join(result.stdout.split())


# ---- accounts -------------------------------------------------------------------------------------------------
def test_account_add_show_list_set_and_json(vp: Vpbx) -> None:
    assert vp.json("account", "add", "acme", "--email", "acme@example.com", "--org-id", "500") == {
        "name": "acme", "email": "acme@example.com", "org_id": 500, "balance": 0, "currency": "RUB", "numbers": [],
        "record_calls": False, "record_prompt": None}
    vp.ok("account", "add", "beta", "--email", "beta@example.com")
    assert [(a["name"], a["org_id"], a["balance"]) for a in vp.json("account", "list")] == [
        ("acme", 500, 0), ("beta", None, 0)]
    changed = vp.json("account", "set", "beta", "--email", "b2@example.com", "--org-id", "600")
    assert changed["email"] == "b2@example.com"
    assert vp.json("account", "show", "beta")["org_id"] == 600
    table = vp.out("account", "show", "acme", "--format", "table")
    assert re.search(r"│ balance\s+│ 0\.00 RUB\s+│", table)


@pytest.mark.parametrize("args, needles", [
    (("account", "add", "acme", "--email", "x@example.com"), ("account acme already exists", "vpbx account show")),
    (("account", "add", "bad name", "--email", "x@example.com"), ("account name 'bad name' is not valid",)),
    (("account", "add", "x", "--email", "not-an-address"), ("account x", "e-mail address 'not-an-address'")),
    (("account", "add", "x", "--email", "x@example.com", "--org-id", "500"),
     ("organisation ID 500 is already account acme's", "pick another --org-id")),
    (("account", "add", "x", "--email", "x@example.com", "--org-id", "101"),
     ("organisation ID 101 is SIP account 101's extension already", "pick another --org-id")),
    (("sip", "add", "500"), ("SIP account 500", "organisation ID already", "pick another login")),
    (("account", "set", "nobody", "--email", "x@example.com"), ("account nobody not found", "vpbx account list")),
    (("account", "topup", "acme", "0"), ("account acme", "a top-up must be positive", "vpbx account adjust")),
    (("account", "topup", "acme", "12.345"), ("amount '12.345' has more than 2 decimals",)),
    (("account", "topup", "nobody", "100"), ("account nobody not found",)),
    (("account", "adjust", "acme", "0", "--ref", "x"), ("account acme: an adjustment of 0 changes nothing",)),
    (("account", "adjust", "acme", "5", "--ref", "bad\nref"), ("account acme", "ref contains")),
    (("account", "transactions", "nobody"), ("account nobody not found",)),
    (("account", "statement", "acme", "--month", "2026-13"), ("month '2026-13' is not YYYY-MM", "--month 2026-11")),
])
def test_refused_account_commands_change_nothing(vp: Vpbx, args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    vp.ok("account", "add", "acme", "--email", "acme@example.com", "--org-id", "500")
    vp.ok("sip", "add", "101")
    vp.fails(*args, needles=needles)


def test_topup_and_adjust_print_the_balance_and_land_in_the_ledger(vp: Vpbx) -> None:
    vp.ok("account", "add", "acme", "--email", "acme@example.com")
    assert vp.out("account", "topup", "acme", "2 500", "--ref", "invoice 7") == \
        "Account acme: +2 500.00 RUB, balance 2 500.00 RUB\n"
    assert vp.out("account", "topup", "acme", "0,50") == "Account acme: +0.50 RUB, balance 2 500.50 RUB\n"
    assert vp.out("account", "adjust", "acme", "--ref", "refund", "--", "-500.5") == \
        "Account acme: -500.50 RUB, balance 2 000.00 RUB\n"
    rows = vp.json("account", "transactions", "acme")
    today = date.today().isoformat()
    assert [(r["kind"], r["amount"], r["balance_after"], r["ref"], r["effective_on"]) for r in rows] == [
        ("topup", 250000, 250000, "invoice 7", today), ("topup", 50, 250050, "", today),
        ("adjustment", -50050, 200000, "refund", today)]
    assert vp.out("account", "check") == "OK: 1 account(s), every balance equals its ledger\n"


def test_account_remove_refused_with_numbers_or_balance_and_the_hint_works(shop: Vpbx) -> None:
    shop.ok("account", "topup", "acme", "3 000.01")
    shop.ok("number", "assign", MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov", "--date", "2026-03-01")
    shop.fails("account", "remove", "acme",
               needles=(f"account acme still holds {MOSCOW}", "release them with `vpbx number release`"))
    shop.ok("number", "release", MOSCOW, "--date", "2026-03-02")
    line = shop.fails("account", "remove", "acme", needles=("account acme has a non-zero balance (0.01)",))
    hint = re.search(r"`vpbx (account adjust [^`]+)`", line)
    assert hint, line
    assert shlex.split(hint.group(1)) == ["account", "adjust", "acme", "--ref", "refund", "--", "-0.01"]
    assert shop.out(*shlex.split(hint.group(1))) == "Account acme: -0.01 RUB, balance 0.00 RUB\n"
    kept = shop.json("account", "transactions", "acme")
    assert shop.out("account", "remove", "acme") == "Removed account acme (closed; its transactions are kept)\n"
    assert shop.json("account", "list") == []
    # closed, not deleted: its history stays (revenue, statements) and the name is not handed to someone else
    assert shop.json("account", "transactions", "acme") == kept and len(kept) == 4
    shop.fails("account", "show", "acme", needles=("account acme was closed on",))
    shop.fails("account", "add", "acme", "--email", "new@example.com", needles=("account acme was closed on",))
    assert shop.out("account", "check").startswith("OK: 0 account(s)")


def test_twenty_concurrent_topup_processes_lose_nothing(vp: Vpbx) -> None:
    vp.ok("account", "add", "acme", "--email", "acme@example.com")
    env = {k: v for k, v in os.environ.items() if k not in ("VPBX_CONFIG", "VPBX_DB")}
    procs = [subprocess.Popen([str(VPBX_BIN), "--config", str(vp.cfg), "account", "topup", "acme", f"{i + 1}.01"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(20)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert results == [(0, "")] * 20
    # sum of (i + 1.01) for i = 0..19 = 210 + 0.20 = 210.20 -> 21020
    assert vp.balance() == 21020
    rows = vp.json("account", "transactions", "acme")
    assert len(rows) == 20 and sorted(r["amount"] for r in rows) == sorted(100 * (i + 1) + 1 for i in range(20))
    assert max(r["balance_after"] for r in rows) == 21020
    assert vp.out("account", "check") == "OK: 1 account(s), every balance equals its ledger\n"


def test_account_check_names_an_account_whose_ledger_does_not_add_up(vp: Vpbx) -> None:
    vp.ok("account", "add", "acme", "--email", "acme@example.com")
    vp.ok("account", "add", "beta", "--email", "beta@example.com")
    vp.ok("account", "topup", "acme", "1 000")
    assert vp.out("account", "check") == "OK: 2 account(s), every balance equals its ledger\n"
    con = sqlite3.connect(vp.db)                                 # what a bug (or a hand edit) would leave
    with con:
        con.execute("UPDATE accounts SET balance = balance + 1 WHERE name = 'acme'")
    con.close()
    error_line(vp("account", "check"), "ledger does not add up for account acme (balance 100001, ledger 100000)",
               "restore the database from a backup")


# ---- tariffs and rates ----------------------------------------------------------------------------------------
def test_tariff_load_and_show(vp: Vpbx) -> None:
    assert vp.out("tariff", "load", SEED) == f"Loaded tariff {SEED}: 4 number type(s), 2 plan(s), currency RUB\n"
    t = vp.json("tariff", "show")
    assert (t["currency"], t["connection_default"], t["connection_by_type"]) == ("RUB", 100000, {"tollfree": 295000})
    assert t["connection_by_area"] == {"495": 250000, "499": 100000, "812": 100000, "343": 100000, "831": 100000,
                                       "863": 100000, "843": 100000}
    assert t["monthly"]["geographic"]["regular"] == 50000 and t["monthly"]["tollfree"]["regular"] == 150000
    assert t["plans"]["prosto"] == {"key": "prosto", "name": "Просто", "monthly": 100000, "call_credit": 20000,
                                    "types": ["geographic", "mobile"]}
    assert (t["prepay_discounts"], t["volume_min_numbers"], t["volume_percent"]) == (
        {"3": 5, "6": 10, "12": 15}, 5, 5)
    assert "source" not in t
    assert vp.out("tariff", "show", "--source") == SEED.read_text(encoding="utf-8")
    assert re.search(r"│ connection │ area 495\s+│ 2 500\.00 RUB", vp.out("tariff", "show", "--format", "table"))


def test_tariff_in_another_currency_or_with_unknown_keys_is_refused(vp: Vpbx) -> None:
    vp.ok("tariff", "load", SEED)
    usd = vp.tmp / "usd.toml"
    usd.write_text(SEED.read_text(encoding="utf-8").replace('currency = "RUB"', 'currency = "USD"'), encoding="utf-8")
    vp.fails("tariff", "load", usd, needles=("tariff currency USD is not this install's currency RUB",
                                             "[billing] currency"))
    typo = vp.tmp / "typo.toml"
    typo.write_text(SEED.read_text(encoding="utf-8").replace("[discounts.volume]", "[discounts.volumes]"),
                    encoding="utf-8")
    vp.fails("tariff", "load", typo, needles=("tariff: key 'discounts.volumes' is unknown", "known keys here"))
    assert vp.out("tariff", "show", "--source") == SEED.read_text(encoding="utf-8")


def test_a_usd_install_loads_a_usd_tariff(vp: Vpbx) -> None:
    vp.cfg.write_text(vp.cfg.read_text().replace('currency = "RUB"', 'currency = "USD"'))
    usd = vp.tmp / "usd.toml"
    usd.write_text(SEED.read_text(encoding="utf-8").replace('currency = "RUB"', 'currency = "USD"'), encoding="utf-8")
    vp.fails("tariff", "load", SEED, needles=("tariff currency RUB is not this install's currency USD",))
    assert vp.out("tariff", "load", usd).endswith("currency USD\n")


def test_tariff_show_without_a_tariff(vp: Vpbx) -> None:
    vp.fails("tariff", "show", needles=("no tariff is loaded", "vpbx tariff load tariffs/seed-ru.toml"))


def test_rates_import_list_lookup(vp: Vpbx) -> None:
    assert vp.out("rates", "import", RATES) == f"Imported 9 rate(s) from {RATES}\n"
    rates = vp.json("rates", "list")
    assert {r["prefix"]: r["price"] for r in rates} == {"7495": 200, "7499": 200, "7812": 200, "78432": 350,
                                                         "78435": 350, "73432": 300, "73433": 300, "79": 350, "7": 350}
    assert vp.out("rates", "lookup", "+78432123456") == "+78432123456: prefix 78432, 3.50 RUB per minute\n"
    assert vp.out("rates", "lookup", "+74951234567") == "+74951234567: prefix 7495, 2.00 RUB per minute\n"
    assert vp.out("rates", "lookup", "+79161234567") == "+79161234567: prefix 79, 3.50 RUB per minute\n"
    vp.fails("rates", "lookup", "+380441234567", needles=("no rate matches caller +380441234567", "vpbx rates import"))
    cp1251 = vp.tmp / "excel.csv"                               # what a spreadsheet in Windows-1251 saves
    cp1251.write_bytes("prefix,price,description\n7495,2.00,Москва\n".encode("cp1251"))
    vp.fails("rates", "import", cp1251, needles=(f"rates {cp1251} is not UTF-8 text", "save it as UTF-8"))
    dup = vp.tmp / "dup.csv"
    dup.write_text("prefix,price\n7495,2.00\n7495,3.00\n")
    vp.fails("rates", "import", dup, needles=("7495",))
    assert len(vp.json("rates", "list")) == 9


# ---- orders ---------------------------------------------------------------------------------------------------
def test_assign_charges_connection_and_first_month_and_prints_the_order(shop: Vpbx) -> None:
    # 2 500.00 + 500.00 (Moscow) + 1 000.00 + 500.00 (St Petersburg) = 4 500.00, prorate on the 1st: full months
    shop.ok("account", "topup", "acme", "4 500")
    result = shop.ok("number", "assign", MOSCOW, SPB, "--account", "acme", "--end-user", "Ivan Petrov",
                     "--date", "2026-03-01", "--json")
    # no [smtp] host: the connection notices are kept for later, said on stderr, never on stdout
    assert result.stderr == "Warning: 2 e-mail notice(s) not sent yet (kept; see `vpbx notices list`)\n"
    doc = json.loads(result.stdout)
    assert (doc["total"], doc["balance"], doc["discount_percent"], doc["currency"]) == (450000, 0, 0, "RUB")
    assert [(line["number"], line["connection_fee"], line["period_fee"], line["discount"], line["total"],
             line["period_start"],
             line["paid_until"], line["anchor_day"]) for line in doc["lines"]] == [
        (MOSCOW, 250000, 50000, 0, 300000, "2026-03-01", "2026-03-31", 1),
        (SPB, 100000, 50000, 0, 150000, "2026-03-01", "2026-03-31", 1)]
    for n in (MOSCOW, SPB):
        got = shop.number(n)
        assert (got["status"], got["account"], got["end_user"], got["connected_on"]) == (
            "active", "acme", "Ivan Petrov", "2026-03-01")
    assert [(m["recipient"], m["subject"]) for m in shop.json("notices", "list", "--unsent")] == [
        ("acme@example.com", f"Number {MOSCOW} is connected"), ("acme@example.com", f"Number {SPB} is connected")]
    assert [(r["kind"], r["amount"], r["number"]) for r in shop.json("account", "transactions", "acme")][1:] == [
        ("connection", -250000, MOSCOW), ("period", -50000, MOSCOW),
        ("connection", -100000, SPB), ("period", -50000, SPB)]
    shop.ok("account", "topup", "acme", "1 258.06")
    table = shop.ok("number", "assign", MOBILE, "--account", "acme", "--m2m", "356938035643809", "--date",
                    "2026-03-16", "--format", "table").stdout
    # 1 000.00 connection (default) + 500.00 x 16/31 = 258.06 (258.064...) -> 1 258.06
    assert re.search(rf"│ \{MOBILE} │ 1 000\.00 RUB\s+│ 258\.06 RUB │ 0\.00 RUB\s+│ 1 258\.06 RUB │ 2026-03-31\s+"
                     rf"│ active │",
                     table), table
    assert table.endswith("Charged 1 258.06 RUB; balance 0.00 RUB\n")


def test_assign_funds_short_is_refused_with_a_working_top_up_hint(shop: Vpbx) -> None:
    shop.ok("account", "topup", "acme", "1 000")
    line = shop.fails("number", "assign", MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov", "--date",
                      "2026-03-01", needles=("account acme has 1 000.00 RUB, the order costs 3 000.00 RUB",
                                             "top up at least 2 000.00 RUB", "nothing was charged"))
    assert shop.number(MOSCOW)["status"] == "available"
    hint = re.search(r"`vpbx (account topup [^`]+)`", line)
    assert hint and shlex.split(hint.group(1)) == ["account", "topup", "acme", "2000.00"], line
    assert shop.out(*shlex.split(hint.group(1))) == "Account acme: +2 000.00 RUB, balance 3 000.00 RUB\n"
    result = shop.ok("number", "assign", MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov", "--date",
                     "2026-03-01")
    assert result.stdout.endswith("Charged 3 000.00 RUB; balance 0.00 RUB\n")
    assert shop.balance() == 0 and shop.number(MOSCOW)["status"] == "active"


@pytest.mark.parametrize("args, needles", [
    ((MOSCOW, "--account", "acme"), ("exactly one of --end-user", "--m2m")),
    ((MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov", "--m2m", "dev-1"), ("exactly one of --end-user",)),
    ((MOSCOW, "--account", "acme", "--end-user", "Ivan\nPetrov"), ("is not a person's full name", "--end-user")),
    ((MOSCOW, "--account", "acme", "--end-user", "Ivan [Petrov]"), ("is not a person's full name",)),
    ((MOSCOW, "--account", "acme", "--end-user", "Ivan; Petrov"), ("is not a person's full name",)),
    ((MOSCOW, "--account", "acme", "--m2m", "bad device id"), ("M2M device ID 'bad device id' is not valid",)),
    ((MOSCOW, "--account", "nobody", "--end-user", "Ivan Petrov"), ("account nobody not found",)),
    (("+74950000000", "--account", "acme", "--end-user", "Ivan Petrov"), ("number +74950000000 not found",)),
    ((MOSCOW, MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov"), ("listed twice",)),
    ((MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov", "--plan", "gold"),
     ("plan 'gold' is not in the tariff", "prosto (Просто)")),
    ((MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov", "--date", "2026-02-30"),
     ("date '2026-02-30' is not YYYY-MM-DD",)),
    ((SPB, "--account", "acme", "--end-user", "Ivan Petrov"),
     (f"number {SPB} is active (account beta)", "vpbx number list --status available")),
])
def test_refused_orders_change_nothing(shop: Vpbx, args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    shop.ok("account", "topup", "acme", "100 000")
    shop.ok("account", "add", "beta", "--email", "beta@example.com")
    shop.ok("account", "topup", "beta", "2 000")
    shop.ok("number", "assign", SPB, "--account", "beta", "--m2m", "356938035643809", "--date", "2026-03-01")
    shop.fails("number", "assign", *args, needles=needles)


def test_months_and_volume_discounts_through_the_cli(shop: Vpbx) -> None:
    for n in ("+74952718461", "+74952718462", "+74952718463"):
        shop.ok("number", "add", n)
    five = [MOSCOW, MOSCOW2, "+74952718461", "+74952718462", "+74952718463"]
    # per number: 2 500.00 connection + 12 x 500.00 = 6 000.00 less 20 % (15 % prepay + 5 % volume) = 4 800.00
    shop.ok("account", "topup", "acme", "36 500")                  # 5 x 7 300.00
    doc = shop.json("number", "assign", *five, "--account", "acme", "--end-user", "Ivan Petrov", "--months", "12",
                    "--date", "2026-03-01")
    assert doc["discount_percent"] == 20 and doc["total"] == 3650000 and doc["balance"] == 0
    assert [(line["connection_fee"], line["period_fee"], line["discount"], line["paid_until"])
            for line in doc["lines"]] == [
        (250000, 600000, 120000, "2027-02-28")] * 5


# ---- the billing run, suspension, reactivation ------------------------------------------------------------------
def test_billing_run_suspends_into_debt_and_topup_reactivates(shop: Vpbx) -> None:
    shop.ok("sip", "add", "alice")
    shop.ok("account", "topup", "acme", "3 000")
    shop.ok("number", "assign", MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov", "--date", "2026-03-01")
    shop.ok("number", "route", MOSCOW, "sip:alice")
    assert "dial sip:alice" in shop.out("call", "simulate", MOSCOW, "--from", "+79161112233")
    assert shop.out("billing", "run", "--date", "2026-03-31") == "Billing run 2026-03-31: 0 renewal(s), 0.00 RUB\n"
    out = shop.out("billing", "run", "--date", "2026-04-01")
    assert out == f"Billing run 2026-04-01: 1 renewal(s), 500.00 RUB\nSuspended: {MOSCOW}\n"
    assert shop.out("billing", "run", "--date", "2026-04-01") == "Billing run 2026-04-01: 0 renewal(s), 0.00 RUB\n"
    assert shop.balance() == -50000
    n = shop.number(MOSCOW)
    assert (n["status"], n["paid_until"], n["anchor_day"], n["route"]) == ("suspended", "2026-04-30", 1, "sip:alice")
    assert [x["number"] for x in shop.json("number", "list", "--status", "suspended")] == [MOSCOW]
    assert shop.out("call", "simulate", MOSCOW, "--from", "+79161112233").splitlines() == UNAVAILABLE_CALL

    assert shop.out("account", "topup", "acme", "499.99") == "Account acme: +499.99 RUB, balance -0.01 RUB\n"
    assert shop.number(MOSCOW)["status"] == "suspended"
    assert shop.out("account", "topup", "acme", "0.01") == \
        f"Account acme: +0.01 RUB, balance 0.00 RUB\nReactivated: {MOSCOW}\n"
    n = shop.number(MOSCOW)
    assert (n["status"], n["paid_until"], n["anchor_day"]) == ("active", "2026-04-30", 1)
    assert "dial sip:alice" in shop.out("call", "simulate", MOSCOW, "--from", "+79161112233")
    assert shop.out("account", "check") == "OK: 1 account(s), every balance equals its ledger\n"


def test_billing_run_json_and_a_bad_date(shop: Vpbx) -> None:
    shop.ok("account", "topup", "acme", "3 000")
    shop.ok("number", "assign", MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov", "--date", "2026-03-01")
    doc = shop.json("billing", "run", "--date", "2026-05-02")
    assert doc["renewed"] == [{"number": MOSCOW, "period_start": "2026-04-01", "fee": 50000},
                              {"number": MOSCOW, "period_start": "2026-05-01", "fee": 50000}]
    assert (doc["charged"], doc["suspended"], doc["date"]) == (100000, [MOSCOW], "2026-05-02")
    shop.fails("billing", "run", "--date", "May 2", needles=("date 'May 2' is not YYYY-MM-DD",))


# ---- release, trial, documents ----------------------------------------------------------------------------------
def test_release_prints_the_quarantine_and_warns_near_renewal(shop: Vpbx) -> None:
    shop.ok("account", "topup", "acme", "6 000")
    shop.ok("number", "assign", MOSCOW, MOSCOW2, "--account", "acme", "--end-user", "Ivan Petrov", "--date",
            "2026-03-01")                                           # paid until 2026-03-31, renew 2026-04-01
    ledger = shop.json("account", "transactions", "acme")
    assert shop.out("number", "release", MOSCOW, "--date", "2026-03-29") == \
        f"Released {MOSCOW} from account acme; available again on 2026-04-28\n"
    result = shop.ok("number", "release", MOSCOW2, "--date", "2026-03-31")
    assert result.stdout == f"Released {MOSCOW2} from account acme; available again on 2026-04-30\n"
    assert result.stderr == (f"Warning: number {MOSCOW2} renews on 2026-04-01; it is released now and the paid days "
                             "are not refunded\n")
    assert shop.json("account", "transactions", "acme") == ledger          # no refund
    assert shop.number(MOSCOW)["status"] == "released"
    shop.fails("number", "release", MOSCOW, needles=(f"number {MOSCOW} is released", "only a held number"))
    shop.fails("number", "assign", MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov",
               needles=(f"number {MOSCOW} is released",))
    assert shop.out("billing", "run", "--date", "2026-04-28") == \
        f"Billing run 2026-04-28: 0 renewal(s), 0.00 RUB\nAvailable again: {MOSCOW}\n"
    assert shop.number(MOSCOW)["status"] == "available"


def test_release_refused_while_a_sip_account_sends_it_as_caller_id(shop: Vpbx) -> None:
    shop.ok("account", "topup", "acme", "3 000")
    shop.ok("number", "assign", MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov", "--date", "2026-03-01")
    shop.ok("sip", "add", "alice", "--caller-id", MOSCOW)
    shop.fails("number", "release", MOSCOW, needles=(f"number {MOSCOW} is still used by SIP account alice (caller ID)",
                                                     "change those first"))


def test_trial_through_the_cli(shop: Vpbx) -> None:
    out = shop.out("number", "trial", MOSCOW, "--account", "acme", "--hours", "2")
    m = re.fullmatch(rf"Trial of \{MOSCOW} for account acme until (\S+)\n", out)
    assert m, out
    until = datetime.fromisoformat(m.group(1))
    assert timedelta(hours=1, minutes=59) < until - datetime.now(UTC) <= timedelta(hours=2)
    shop.fails("number", "trial", SPB, "--account", "acme", needles=("account acme already has a trial",))
    shop.fails("number", "trial", SPB, "--account", "acme", "--hours", "73",
               needles=("--hours 73 is outside 1..72", "max_trial_hours"))
    assert shop.json("account", "transactions", "acme") == []


def test_documents_then_activation_mails_the_account(shop: Vpbx) -> None:
    port = free_port()
    shop.smtp(port)
    shop.ok("number", "set", SPB, "--requires-documents", "--lead-days", "2")
    shop.ok("account", "topup", "acme", "1 500")
    with Smtp(port) as smtp:
        shop.ok("number", "assign", SPB, "--account", "acme", "--end-user", "Ivan Petrov", "--date", "2026-03-01")
        assert shop.number(SPB)["status"] == "pending_documents"
        shop.fails("number", "activate", SPB, needles=(f"number {SPB} has no documents", "vpbx document add"))
        scan = shop.tmp / "passport.pdf"
        scan.write_bytes(b"%PDF-1.4 scan \x00\xff")
        doc = shop.json("document", "add", SPB, scan)
        stored = Path(doc["path"])
        assert stored.read_bytes() == scan.read_bytes() and stat.S_IMODE(os.stat(stored).st_mode) == 0o600
        assert (doc["number"], doc["filename"], doc["size"]) == (SPB, "passport.pdf", 16)
        assert [(d["number"], d["filename"]) for d in shop.json("document", "list", SPB)] == [(SPB, "passport.pdf")]
        assert shop.out("number", "activate", SPB) == f"Number {SPB} is active (account acme)\n"
        assert smtp.mails() == [
            ("shop@example.com", ["acme@example.com"], f"Number {SPB}: documents needed"),
            ("shop@example.com", ["acme@example.com"], f"Number {SPB} is connected")]
    assert [m["sent_at"] is not None for m in shop.json("notices", "list")] == [True, True]
    shop.fails("document", "add", MOBILE, scan, needles=(f"number {MOBILE} is not assigned to an account",))


# ---- waitlist and notices ---------------------------------------------------------------------------------------
def _waitlist(vp: Vpbx) -> list[int]:
    ids = []
    for args in (("--country", "RU", "--city", "Moscow", "--type", "geographic"),
                 ("--country", "ru", "--type", "mobile"),
                 ("--country", "UA", "--city", "Kyiv"), ("--country", "RU", "--city", "Kazan")):
        ids.append(vp.json("waitlist", "add", "--account", "acme", *args)["id"])
    return ids


def test_waitlist_mails_once_per_matching_entry_on_number_add_and_import(vp: Vpbx) -> None:
    port = free_port()
    vp.smtp(port)
    vp.ok("account", "add", "acme", "--email", "acme@example.com")
    moscow, mobile, kyiv, kazan = _waitlist(vp)
    with Smtp(port) as smtp:
        csv_file = vp.tmp / "numbers.csv"
        csv_file.write_text(f"number\n{MOSCOW}\n{MOSCOW2}\n{NOVOSIBIRSK}\n{TOLLFREE}\n")
        assert vp.out("number", "import", csv_file, "--json") == '{\n  "imported": 4\n}\n'
        assert smtp.mails() == [("shop@example.com", ["acme@example.com"],
                                 f"A number you wait for is available: {MOSCOW}")]
        vp.ok("number", "add", MOSCOW.replace("59", "71"))       # another Moscow number: that entry was told already
        vp.ok("number", "add", SPB)                              # no entry for St Petersburg
        assert len(smtp.mails()) == 1
        vp.ok("number", "add", MOBILE)
        vp.ok("number", "add", KYIV)                             # "Kyiv city" matches --city Kyiv
        assert [m[2] for m in smtp.mails()] == [f"A number you wait for is available: {n}"
                                                for n in (MOSCOW, MOBILE, KYIV)]
    entries = {e["id"]: e["notified_number"] for e in vp.json("waitlist", "list")}
    assert entries == {moscow: MOSCOW, mobile: MOBILE, kyiv: KYIV, kazan: None}
    assert len(vp.json("notices", "list")) == 3


def test_waitlist_notice_kept_while_smtp_is_down_and_sent_later(vp: Vpbx) -> None:
    port = free_port()                                           # nothing listens there yet
    vp.smtp(port)
    vp.ok("account", "add", "acme", "--email", "acme@example.com")
    _waitlist(vp)
    vp.ok("number", "add", MOSCOW)
    unsent = vp.json("notices", "list", "--unsent")
    assert [(m["recipient"], m["subject"], m["attempts"]) for m in unsent] == [
        ("acme@example.com", f"A number you wait for is available: {MOSCOW}", 1)]
    assert "unreachable" in unsent[0]["last_error"]
    with Smtp(port) as smtp:
        assert vp.out("notices", "send") == "1 sent, 0 still waiting\n"
        assert smtp.mails() == [("shop@example.com", ["acme@example.com"],
                                 f"A number you wait for is available: {MOSCOW}")]
        assert vp.out("notices", "send") == "0 sent, 0 still waiting\n"
    assert vp.json("notices", "list", "--unsent") == []


def test_waitlist_add_refusals_and_remove(vp: Vpbx) -> None:
    vp.ok("account", "add", "acme", "--email", "acme@example.com")
    vp.fails("waitlist", "add", "--account", "acme", "--country", "Ukraine",
             needles=("country 'UKRAINE' is not an ISO 3166 code", "--country UA"))
    vp.fails("waitlist", "add", "--account", "nobody", "--country", "UA", needles=("account nobody not found",))
    vp.fails("waitlist", "add", "--account", "acme", "--country", "UA", "--city", "Kyiv\n[x]",
             needles=("waitlist", "city contains"))
    entry = vp.json("waitlist", "add", "--account", "acme", "--country", "UA")
    assert vp.out("waitlist", "remove", str(entry["id"])) == f"Removed waitlist entry {entry['id']}\n"
    vp.fails("waitlist", "remove", str(entry["id"]), needles=(f"waitlist entry {entry['id']} not found",))


# ---- toll-free calls, statements, stats -------------------------------------------------------------------------
def test_statement_and_stats_json(shop: Vpbx) -> None:
    first = month_start()
    month = first.strftime("%Y-%m")
    shop.ok("account", "topup", "acme", "5 000")                  # dated today: in this month
    shop.ok("number", "assign", TOLLFREE, "--account", "acme", "--end-user", "Ivan Petrov", "--date",
            first.isoformat())                                    # 2 950.00 + 1 500.00 (prorate on the 1st)
    with Store.open(shop.db) as store:
        from vpbx.config import load_config
        from vpbx.services import lifecycle

        cfg = load_config(str(shop.cfg))
        for cid, caller, billsec in (("c1", "+78432123456", 61), ("c2", "+74951234567", 125)):
            store.calls.add(cid, TOLLFREE, caller, "inbound", started_at=f"{first.isoformat()}T10:00:00+00:00")
            store.calls.finish(cid, ended_at=f"{first.isoformat()}T10:05:00+00:00", billsec=billsec,
                              answered_at=f"{first.isoformat()}T10:00:01+00:00")
            lifecycle.charge_call(store, cfg, cid)
    # calls: 61 s from Kazan = 2 x 3.50 = 7.00; 125 s from Moscow = 3 x 2.00 = 6.00
    st = shop.json("account", "statement", "acme", "--month", month)
    assert (st["opening_balance"], st["topups"], st["charges"], st["closing_balance"]) == (
        0, 500000, 295000 + 150000 + 700 + 600, 500000 - 446300)
    assert st["opening_balance"] + st["topups"] - st["charges"] == st["closing_balance"] == shop.balance()
    assert (st["calls"], st["minutes"], st["call_cost"], st["currency"]) == (2, 3.1, 1300, "RUB")
    assert st["charges_by_kind"] == {"call": 1300, "connection": 295000, "period": 150000}
    stats = shop.json("stats")
    assert stats["numbers_by_status"] == [{"status": "active", "numbers": 1}, {"status": "available", "numbers": 4}]
    assert stats["revenue_by_month"] == [{"month": month, "revenue": 446300, "charges": 4}]
    assert [(c["number"], c["calls"], c["minutes"]) for c in stats["calls_by_number"]] == [(TOLLFREE, 2, 3.1)]
    assert stats["currency"] == "RUB"

"""vpbx.services.charging (issue 14, the non-engine half): who pays an outbound call, what money it may spend, charging
it once (plan call credit first, then the balance, one ledger row), the billing run's catch-up, and the CLI around it
(`rates --outbound`, `sip|trunk --account`, statement and stats by destination). A real temporary SQLite store; no
Asterisk.

Outbound rates used (tariffs/outbound-rates-ru.csv, minor units): 4930 Berlin 4.00/min 30/6 (400); 49 Germany
6.00/min 30/6 + 0.50 connection (600, 50); 7495 Moscow 1.50/min 60/60 (150); 79 Russia mobile 2.90/min (290).
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from clitools import CLEAN_ENV, Site, dump, ok
from vpbx.billing.outbound import OutboundRate
from vpbx.cli import main
from vpbx.config import BillingSettings, Config, new_config
from vpbx.domain.errors import ConflictError, NotFoundError, ValidationError
from vpbx.domain.numbers import parse
from vpbx.domain.records import Account, Number, SipAccount, Trunk
from vpbx.services import charging, lifecycle, sip_accounts, trunks
from vpbx.storage.store import Store

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tariffs" / "seed-ru.toml"
OUTBOUND = ROOT / "tariffs" / "outbound-rates-ru.csv"
TOLLFREE_RATES = ROOT / "tariffs" / "tollfree-rates-ru.csv"

MOSCOW = "+74952718459"        # geographic: the prosto plan (200.00 call credit a month) may hold it
MOSCOW2 = "+74952718460"
BERLIN = "+4930123456"         # prefix 4930: 4.00/min, 30/6
MUNICH = "+4989123456"         # prefix 49: 6.00/min, 30/6, 0.50 connection
MOBILE = "+79161234567"        # prefix 79: 2.90/min, 60/60
DAY = "2026-03-15"


class World:
    """A store + config with the seed tariff, the example outbound rates, trunk `provider`, account acme funded."""

    def __init__(self, tmp: Path) -> None:
        self.db = tmp / "v.db"
        self.store = Store.open(self.db)
        self.cfg: Config = replace(new_config(tmp), db=self.db, billing=BillingSettings(policy="anniversary"))
        lifecycle.save_tariff(self.store, self.cfg, SEED.read_text(encoding="utf-8"))
        assert charging.import_outbound_rates(self.store, OUTBOUND.read_text(encoding="utf-8")) == 9
        self.store.trunks.add(Trunk("provider", "sip.example.net", "l1", "secretpass1"))
        self.account("acme", 1_000_000)

    def close(self) -> None:
        self.store.close()

    def account(self, name: str, funds: int = 0) -> None:
        self.store.accounts.add(Account(name, f"{name}@example.com"))
        if funds:
            lifecycle.topup(self.store, name, funds, "opening", date.fromisoformat("2026-03-01"))

    def number(self, e164: str, **changes: Any) -> Number:
        if self.store.numbers.find(e164) is None:
            info = parse(e164)
            self.store.numbers.add(Number(number=e164, type=info.type, city=info.city, country=info.country,
                                          category=info.category, direction="both", trunk="provider"))
        if changes:
            self.store.numbers.update([e164], **changes)
        return self.store.numbers.get(e164)

    def assign(self, e164: str, account: str = "acme", plan: str | None = None) -> Number:
        self.number(e164)
        lifecycle.assign(self.store, self.cfg, [e164], account, date.fromisoformat("2026-03-01"),
                         end_user="Ivan Petrov", plan=plan)
        return self.store.numbers.get(e164)

    def call(self, call_id: str, dest: str, billsec: int, number: str = MOSCOW, ended: bool = True,
             direction: str = "outbound", day: str = DAY) -> str:
        self.store.calls.add(call_id, number, number, direction, started_at=f"{day}T10:00:00+00:00",
                             sip_account="alice" if direction == "outbound" else None)
        if ended:
            self.store.calls.finish(call_id, ended_at=f"{day}T10:05:00+00:00", answered_at=f"{day}T10:00:05+00:00",
                                    reached=f"tel:{dest}", billsec=billsec, duration=billsec + 5,
                                    disposition="answered" if billsec else "missed")
        return call_id

    def balance(self, account: str = "acme") -> int:
        return self.store.accounts.get(account).balance

    def calls_in_ledger(self, account: str = "acme") -> list[dict[str, Any]]:
        return [r for r in self.store.accounts.entries(account) if r["kind"] == "call"]

    def rate(self, dest: str) -> OutboundRate:
        rate = charging.outbound_rate(self.store, dest)
        assert rate is not None
        return rate


@pytest.fixture
def w(tmp_path: Path):
    world = World(tmp_path)
    yield world
    world.close()


# ---- who pays -----------------------------------------------------------------------------------------------------
def test_a_sip_account_without_an_account_is_not_rated(w: World) -> None:
    assert charging.payer_for_account_call(w.store, SipAccount("alice", "secretpass1"), "provider") is None


def test_a_sip_account_call_is_paid_by_its_account_unless_through_its_own_trunk(w: World) -> None:
    w.account("globex")
    alice = SipAccount("alice", "secretpass1", account="acme")
    assert charging.payer_for_account_call(w.store, alice, "provider") == "acme"
    w.store.trunks.add(Trunk("acme-own", "sip.acme.example", "l2", "secretpass2", account="acme"))
    w.store.trunks.add(Trunk("globex-own", "sip.globex.example", "l3", "secretpass3", account="globex"))
    assert charging.payer_for_account_call(w.store, alice, "acme-own") is None          # paid to that operator
    assert charging.payer_for_account_call(w.store, alice, "globex-own") == "acme"      # someone else's trunk
    assert charging.payer_for_account_call(w.store, alice, "no-such-trunk") == "acme"


def test_a_forward_is_paid_by_the_numbers_owner_but_not_on_trial_or_through_the_owners_trunk(w: World) -> None:
    assert charging.payer_for_forward(w.store, w.number(MOSCOW2), "provider") is None     # the install's own
    n = w.assign(MOSCOW)
    assert charging.payer_for_forward(w.store, n, "provider") == "acme"
    w.store.trunks.add(Trunk("acme-own", "sip.acme.example", "l2", "secretpass2", account="acme"))
    assert charging.payer_for_forward(w.store, n, "acme-own") is None
    w.account("tryer")
    trial = lifecycle.trial(w.store, w.cfg, MOSCOW2, "tryer", 1, datetime.now(UTC))
    assert trial.status == "trial" and charging.payer_for_forward(w.store, trial, "provider") is None


def test_money_is_the_balance_plus_the_credit_of_a_number_the_account_holds(w: World) -> None:
    n = w.assign(MOSCOW, plan="prosto")
    balance = w.balance()
    assert n.call_credit == 20000
    assert charging.money_of(w.store, "acme", None) == balance
    assert charging.money_of(w.store, "acme", MOSCOW) == balance + 20000
    assert charging.money_of(w.store, "acme", MOSCOW2) == balance                 # not acme's number
    assert charging.money_of(w.store, "acme", "+380441234567") == balance         # no such number
    w.account("globex", 500)
    assert charging.money_of(w.store, "globex", MOSCOW) == 500                    # acme's credit is not globex's


def test_outbound_rate_is_the_longest_prefix(w: World) -> None:
    assert w.rate(BERLIN) == OutboundRate("4930", 400, 30, 6, 0, "Berlin")
    assert w.rate(MUNICH) == OutboundRate("49", 600, 30, 6, 50, "Germany")
    assert charging.outbound_rate(w.store, "+999123") is None
    assert charging.outbound_rate(w.store, "not a number") is None
    assert w.store.rates.outbound_table()[0] == OutboundRate("1", 300, 1, 1, 0, "USA and Canada")


def test_importing_outbound_rates_replaces_them_whole_and_leaves_toll_free_rates_alone(w: World) -> None:
    lifecycle.import_rates(w.store, TOLLFREE_RATES.read_text(encoding="utf-8"))
    tollfree = w.store.rates.table()
    assert charging.import_outbound_rates(w.store, "prefix,price\n+44,1.00\n") == 1
    assert w.store.rates.outbound_table() == [OutboundRate("44", 100)]
    assert w.store.rates.table() == tollfree
    with pytest.raises(ValidationError, match="line 3: prefix 44 is already on line 2"):
        charging.import_outbound_rates(w.store, "prefix,price\n44,1\n44,2\n")
    assert w.store.rates.outbound_table() == [OutboundRate("44", 100)]           # refused: nothing changed


# ---- charging a call ----------------------------------------------------------------------------------------------
def test_a_call_is_charged_per_its_rate_and_increment_with_one_ledger_row(w: World) -> None:
    w.assign(MOSCOW)
    balance = w.balance()
    call = w.call("c1", BERLIN, 61)
    cost = charging.charge_outbound(w.store, call, "acme", MOSCOW, w.rate(BERLIN), 61)
    assert cost == 440                                  # 66 s (30 + 6 x 6) of 4.00/min
    assert w.balance() == balance - 440
    [row] = w.calls_in_ledger()
    assert (row["amount"], row["call_id"], row["number"], row["effective_on"]) == (-440, "c1", MOSCOW, DAY)
    assert row["ref"] == f"61 s to {BERLIN} at prefix 4930 (30/6)"
    record = w.store.calls.get("c1")
    assert (record["account"], record["cost"], record["rate_prefix"]) == ("acme", 440, "4930")
    assert lifecycle.check_ledgers(w.store) == 1


def test_the_connection_charge_is_added_to_an_answered_call_only(w: World) -> None:
    w.assign(MOSCOW)
    balance = w.balance()
    assert charging.charge_outbound(w.store, w.call("c1", MUNICH, 1), "acme", MOSCOW, w.rate(MUNICH), 1) == 350
    assert charging.charge_outbound(w.store, w.call("c2", MUNICH, 0), "acme", MOSCOW, w.rate(MUNICH), 0) == 0
    assert w.balance() == balance - 350
    assert [r["call_id"] for r in w.calls_in_ledger()] == ["c1"]               # 0 costs no ledger row
    assert w.store.calls.get("c2")["cost"] == 0                                 # but the call is rated


def test_a_call_is_charged_once_however_often_it_is_asked(w: World) -> None:
    w.assign(MOSCOW)
    call = w.call("c1", BERLIN, 61)
    assert charging.charge_outbound(w.store, call, "acme", MOSCOW, w.rate(BERLIN), 61) == 440
    balance, ledger = w.balance(), w.store.accounts.entries("acme")
    assert charging.charge_outbound(w.store, call, "acme", MOSCOW, w.rate(BERLIN), 61) is None
    assert charging.charge_outbound(w.store, call, "acme", MOSCOW, w.rate(MUNICH), 300) is None
    assert (w.balance(), w.store.accounts.entries("acme")) == (balance, ledger)
    assert charging.charge_outbound(w.store, "no-such-call", "acme", MOSCOW, w.rate(BERLIN), 61) is None
    assert lifecycle.check_ledgers(w.store) == 1


def test_plan_call_credit_is_spent_before_the_balance(w: World) -> None:
    w.assign(MOSCOW, plan="prosto")                                             # 200.00 credit
    balance = w.balance()
    assert charging.charge_outbound(w.store, w.call("c1", BERLIN, 61), "acme", MOSCOW, w.rate(BERLIN), 61) == 440
    assert w.balance() == balance and w.store.numbers.get(MOSCOW).call_credit == 19560
    assert w.calls_in_ledger() == []                                            # all from credit: no ledger row
    assert w.store.calls.get("c1")["cost"] == 440
    w.number(MOSCOW, call_credit=100)
    assert charging.charge_outbound(w.store, w.call("c2", BERLIN, 61), "acme", MOSCOW, w.rate(BERLIN), 61) == 440
    assert w.balance() == balance - 340 and w.store.numbers.get(MOSCOW).call_credit == 0
    [row] = w.calls_in_ledger()
    assert row["amount"] == -340 and row["ref"].endswith(", 100 from call credit")
    assert lifecycle.check_ledgers(w.store) == 1


def test_the_credit_of_a_number_the_payer_does_not_hold_is_not_spent(w: World) -> None:
    w.assign(MOSCOW, plan="prosto")
    w.account("globex", 10_000)
    call = w.call("c1", BERLIN, 61)
    assert charging.charge_outbound(w.store, call, "globex", MOSCOW, w.rate(BERLIN), 61) == 440
    assert w.store.numbers.get(MOSCOW).call_credit == 20000
    assert w.balance("globex") == 10_000 - 440
    [row] = w.calls_in_ledger("globex")
    assert row["number"] is None


def test_a_call_that_takes_the_balance_below_zero_suspends_the_accounts_numbers(w: World) -> None:
    w.account("small", 0)
    w.store.accounts.post("small", 100, "topup", "2026-03-01")
    w.number(MOSCOW2, account="small", status="active")
    charging.charge_outbound(w.store, w.call("c1", BERLIN, 61, number=MOSCOW2), "small", MOSCOW2,
                             w.rate(BERLIN), 61)
    assert w.balance("small") == -340 and w.store.numbers.get(MOSCOW2).status == "suspended"
    lifecycle.topup(w.store, "small", 340, "pay", date.fromisoformat(DAY))
    assert w.store.numbers.get(MOSCOW2).status == "active"
    assert lifecycle.check_ledgers(w.store) == 2


def test_the_engine_and_the_billing_run_charging_at_once_charge_each_call_once(w: World) -> None:
    w.assign(MOSCOW, plan="prosto")                                             # 20000 credit
    balance = w.balance()
    calls = [w.call(f"c{i}", BERLIN, 61) for i in range(100)]                   # 440 each: 44000 in all
    for cid in calls:
        w.store.calls.note_payer(cid, "acme", "4930")
    errors: list[BaseException] = []
    start = threading.Barrier(2)
    rate = w.rate(BERLIN)

    def engine() -> None:
        try:
            with Store.open(w.db) as own:
                start.wait()
                for cid in calls:
                    charging.charge_outbound(own, cid, "acme", MOSCOW, rate, 61)
        except BaseException as exc:
            errors.append(exc)

    def billing_run() -> None:
        try:
            with Store.open(w.db) as own:
                start.wait()
                charging.charge_unrated_outbound(own, w.cfg)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=engine), threading.Thread(target=billing_run)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert w.store.numbers.get(MOSCOW).call_credit == 0
    assert w.balance() == balance - (44000 - 20000)
    assert len({r["call_id"] for r in w.calls_in_ledger()}) == len(w.calls_in_ledger())
    assert all(w.store.calls.get(cid)["cost"] == 440 for cid in calls)
    assert lifecycle.check_ledgers(w.store) == 1


# ---- the billing run's catch-up -------------------------------------------------------------------------------------
def test_charge_unrated_outbound_charges_what_the_engine_left_and_nothing_else(w: World,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    w.assign(MOSCOW, plan="prosto")
    w.number(MOSCOW, call_credit=200)
    balance = w.balance()
    left = w.call("left", BERLIN, 61)                                   # the engine noted the payer, then stopped
    w.store.calls.note_payer(left, "acme", "4930")
    w.store.calls.note_payer(w.call("open", BERLIN, 61, ended=False), "acme", "4930")     # still talking
    w.store.calls.note_payer(w.call("nowhere", "+999123456", 61), "acme", None)           # no rate matches
    w.call("unpaid", BERLIN, 61)                                                          # nobody pays it
    colleague = w.call("colleague", BERLIN, 61)
    w.store.calls.finish(colleague, ended_at=f"{DAY}T10:05:00+00:00", reached="sip:bob")
    w.store.calls.note_payer(colleague, "acme", None)                                     # never reached a number
    done = w.call("done", BERLIN, 61)
    w.store.calls.note_payer(done, "acme", "4930")
    assert charging.charge_outbound(w.store, done, "acme", MOSCOW, w.rate(BERLIN), 60) == 400
    balance -= 200
    caplog.set_level("WARNING")
    assert charging.charge_unrated_outbound(w.store, w.cfg) == 2            # left, and nowhere (at 0)
    assert "call nowhere to +999123456: no outbound rate matches" in caplog.text
    assert w.store.calls.get("left")["cost"] == 440 and w.store.calls.get("nowhere")["cost"] == 0
    assert w.balance() == balance - 440                                      # credit was used up by `done`
    for cid in ("open", "unpaid", "colleague"):
        assert w.store.calls.get(cid)["cost"] is None, cid
    assert [r["call_id"] for r in w.calls_in_ledger()] == ["done", "left"]
    assert charging.charge_unrated_outbound(w.store, w.cfg) == 0
    assert lifecycle.check_ledgers(w.store) == 1


def test_the_billing_run_reports_outbound_calls_rated(w: World) -> None:
    w.assign(MOSCOW)
    w.store.calls.note_payer(w.call("left", MOBILE, 125, day="2026-03-02"), "acme", "79")
    summary = lifecycle.billing_run(w.store, w.cfg, date.fromisoformat("2026-03-02"),
                                    datetime(2026, 3, 2, tzinfo=UTC))
    assert summary["outbound_rated"] == 1 and w.store.calls.get("left")["cost"] == 870        # 3 min x 2.90
    assert lifecycle.billing_run(w.store, w.cfg, date.fromisoformat("2026-03-02"),
                                 datetime(2026, 3, 2, tzinfo=UTC))["outbound_rated"] == 0


def test_statement_and_report_show_outbound_calls_by_destination(w: World) -> None:
    w.assign(MOSCOW)
    for cid, dest, seconds in (("b1", BERLIN, 61), ("b2", BERLIN, 30), ("m1", MUNICH, 60), ("r1", MOBILE, 59)):
        charging.charge_outbound(w.store, w.call(cid, dest, seconds), "acme", MOSCOW, w.rate(dest), seconds)
    charging.charge_outbound(w.store, w.call("april", BERLIN, 60, day="2026-04-02"), "acme", MOSCOW,
                             w.rate(BERLIN), 60)
    st = lifecycle.statement(w.store, "acme", "2026-03")
    assert st["outbound_by_destination"] == [
        {"prefix": "49", "description": "Germany", "calls": 1, "minutes": 1.0, "cost": 650},
        {"prefix": "4930", "description": "Berlin", "calls": 2, "minutes": 1.5, "cost": 640},
        {"prefix": "79", "description": "Russia mobile", "calls": 1, "minutes": 1.0, "cost": 290},
    ]
    assert (st["outbound_calls"], st["outbound_minutes"], st["outbound_cost"]) == (4, 3.5, 1580)
    assert st["charges_by_kind"]["call"] == 1580
    report = lifecycle.report(w.store)["outbound_by_destination"]
    assert [(d["prefix"], d["calls"], d["cost"]) for d in report] == [("49", 1, 650), ("4930", 3, 1040),
                                                                      ("79", 1, 290)]


# ---- attaching accounts (services) ----------------------------------------------------------------------------------
def test_a_sip_accounts_paying_account_must_be_open_and_hold_its_caller_id_number(w: World) -> None:
    w.assign(MOSCOW)
    w.account("globex")
    w.account("gone")
    lifecycle.close_account(w.store, "gone")
    add = sip_accounts.add
    assert add(w.store, w.cfg, "alice", caller_id=MOSCOW, account="acme").account == "acme"
    with pytest.raises(ConflictError, match=re.escape(f"caller-ID number {MOSCOW} is held by account acme, not "
                                                      f"globex; give --account acme, or another --caller-id")):
        add(w.store, w.cfg, "bob", caller_id=MOSCOW, account="globex")
    with pytest.raises(NotFoundError, match="SIP account bob: account nosuch not found"):
        add(w.store, w.cfg, "bob", account="nosuch")
    with pytest.raises(ConflictError, match="SIP account bob: account gone is closed; give an open account"):
        add(w.store, w.cfg, "bob", account="gone")
    with pytest.raises(ValidationError, match="account name"):
        add(w.store, w.cfg, "bob", account="bad\nname")
    assert [a.login for a in w.store.sip_accounts.all()] == ["alice"]
    w.number(MOSCOW2)
    assert add(w.store, w.cfg, "carol", caller_id=MOSCOW2, account="globex").account == "globex"   # unowned number
    with pytest.raises(ConflictError, match="held by account acme, not globex"):
        sip_accounts.update(w.store, w.cfg, "carol", caller_id=MOSCOW)      # a caller-ID change is judged too
    assert sip_accounts.update(w.store, w.cfg, "carol", no_account=True).account is None
    assert sip_accounts.update(w.store, w.cfg, "carol", caller_id=MOSCOW).caller_id == MOSCOW      # unrated: fine
    with pytest.raises(ValidationError, match="not both"):
        sip_accounts.update(w.store, w.cfg, "carol", account="acme", no_account=True)
    assert sip_accounts.show(w.store, "alice")["account"] == "acme"


def test_an_account_that_pays_for_phones_or_owns_trunks_cannot_be_closed(w: World) -> None:
    w.account("globex")
    sip_accounts.add(w.store, w.cfg, "alice", account="globex")
    trunks.add(w.store, "globex-own", server="sip.globex.example", login="l2", password="secretpass2",
               account="globex")
    with pytest.raises(ConflictError, match=r"still pays for SIP account\(s\) alice; detach them with "
                                            r"`vpbx sip set alice --no-account`"):
        lifecycle.close_account(w.store, "globex")
    sip_accounts.update(w.store, w.cfg, "alice", no_account=True)
    with pytest.raises(ConflictError, match=r"still owns trunk\(s\) globex-own; detach them with "
                                            r"`vpbx trunk set globex-own --no-account`"):
        lifecycle.close_account(w.store, "globex")
    assert trunks.update(w.store, "globex-own", no_account=True).account is None
    lifecycle.close_account(w.store, "globex")
    with pytest.raises(ConflictError, match="trunk provider: account globex is closed"):
        trunks.update(w.store, "provider", account="globex")


# ---- the command line ------------------------------------------------------------------------------------------------
def invoke(args: list[Any], input: str | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=CLEAN_ENV, input=input)


class Cli(Site):

    def out(self, *args: Any) -> str:
        """stdout of a command that must succeed; stderr may only say that e-mail notices wait (no SMTP here)."""
        result = ok(self(*args))
        assert all(line.startswith("Warning: ") and "e-mail notice" in line for line in result.stderr.splitlines()), \
            result.stderr
        return result.stdout

    def json(self, *args: Any) -> Any:
        return json.loads(self.out(*args, "--json"))

    def fails(self, *args: Any, needles: tuple[str, ...] = (), code: int = 1) -> str:
        before = dump(self.db)
        result = self(*args)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
        assert isinstance(result.exception, SystemExit), result.exception
        lines = result.stderr.splitlines()
        if code == 1:
            assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
            assert result.stdout == ""
        for needle in needles:
            assert needle in result.stderr, (needle, result.stderr)
        assert dump(self.db) == before, "a refused command changed the database"
        return result.stderr


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    c = Cli(tmp_path)
    ok(invoke(["--config", c.cfg, "init", "--dir", tmp_path]))
    c.out("tariff", "load", SEED)
    c.out("trunk", "add", "provider", "--server", "sip.example.net", "--login", "l1", "--password", "secretpass1")
    c.out("account", "add", "acme", "--email", "acme@example.com")
    c.out("account", "add", "globex", "--email", "globex@example.com")
    c.out("account", "topup", "acme", "10000")
    c.out("number", "add", MOSCOW, "--direction", "both", "--trunk", "provider")
    c.out("number", "add", MOSCOW2, "--direction", "both", "--trunk", "provider")
    c.out("number", "assign", MOSCOW, "--account", "acme", "--end-user", "Ivan Petrov", "--plan", "prosto")
    return c


def test_cli_outbound_rates_import_list_lookup(cli: Cli) -> None:
    cli.out("rates", "import", TOLLFREE_RATES)
    assert cli.out("rates", "import", "--outbound", OUTBOUND) == f"Imported 9 outbound rate(s) from {OUTBOUND}\n"
    listed = cli.json("rates", "list", "--outbound")
    assert {"prefix": "49", "price": 600, "increment": "30/6", "connection": 50, "description": "Germany"} in listed
    assert [r["prefix"] for r in listed] == sorted(r["prefix"] for r in listed)
    table = cli.out("rates", "list", "--outbound", "--format", "table")
    assert "outbound rates per minute" in table and "6.00 RUB" in table and "30/6" in table
    tsv = cli.out("rates", "list", "--outbound", "--format", "tsv").splitlines()
    assert tsv[0] == "prefix\tprice\tincrement\tconnection\tdescription"
    assert cli.out("rates", "lookup", "--outbound", BERLIN) == \
        f"{BERLIN}: prefix 4930 (Berlin), 4.00 RUB per minute, increment 30/6, connection 0.00 RUB\n"
    assert cli.out("rates", "lookup", "--outbound", MUNICH) == \
        f"{MUNICH}: prefix 49 (Germany), 6.00 RUB per minute, increment 30/6, connection 0.50 RUB\n"
    cli.fails("rates", "lookup", "--outbound", "+999123", needles=(
        "no outbound rate matches +999123", "vpbx rates import --outbound"))
    # the toll-free table is its own
    assert len(cli.json("rates", "list")) == 9 and cli.out("rates", "lookup", "+78432123456").startswith(
        "+78432123456: prefix 78432")


def test_cli_a_bad_outbound_rates_file_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    cli.out("rates", "import", "--outbound", OUTBOUND)
    bad = tmp_path / "bad.csv"
    bad.write_text("prefix,price,increment\n4930,4.00,30/6\n49,6.00,6/0\n", encoding="utf-8")
    cli.fails("rates", "import", "--outbound", bad, needles=(
        "outbound rates CSV line 3: prefix 49: increment '6/0' is out of range",))
    bad.write_bytes(b"prefix,price\n49,\xff\n")
    cli.fails("rates", "import", "--outbound", bad, needles=("is not UTF-8",))
    assert len(cli.json("rates", "list", "--outbound")) == 9


def test_cli_sip_account_paying_account(cli: Cli) -> None:
    alice = cli.json("sip", "add", "alice", "--caller-id", MOSCOW, "--account", "acme")
    assert alice["account"] == "acme"
    assert cli.json("sip", "show", "alice")["account"] == "acme"
    assert "acme" in cli.out("sip", "show", "alice", "--format", "table")
    assert cli.json("sip", "list")[0]["account"] == "acme"
    cli.fails("sip", "add", "bob", "--caller-id", MOSCOW, "--account", "globex", needles=(
        f"SIP account bob: its caller-ID number {MOSCOW} is held by account acme, not globex",
        "give --account acme, or another --caller-id"))
    cli.fails("sip", "set", "alice", "--account", "nosuch", needles=(
        "SIP account alice: account nosuch not found", "vpbx account add nosuch"))
    cli.fails("sip", "set", "alice", "--account", "globex", needles=("held by account acme, not globex",))
    cli.fails("sip", "set", "alice", "--account", "acme", "--no-account", code=2, needles=("not both",))
    assert cli.json("sip", "set", "alice", "--no-account")["account"] is None
    cli.out("sip", "add", "carol", "--caller-id", MOSCOW2)
    assert cli.json("sip", "set", "carol", "--account", "globex")["account"] == "globex"
    cli.out("sip", "set", "carol", "--no-account")
    cli.out("account", "add", "gone", "--email", "gone@example.com")
    cli.out("account", "remove", "gone")
    cli.fails("sip", "set", "carol", "--account", "gone", needles=("account gone is closed",))
    assert "Removed account globex" in cli.out("account", "remove", "globex")     # it pays for nothing now


def test_cli_trunk_of_a_customer(cli: Cli) -> None:
    own = cli.json("trunk", "add", "acme-own", "--server", "sip.acme.example", "--login", "l2", "--password",
                   "secretpass2", "--account", "acme")
    assert own["account"] == "acme" and "password" not in own
    assert cli.json("trunk", "show", "acme-own")["account"] == "acme"
    cli.fails("trunk", "set", "provider", "--account", "nosuch", needles=("trunk provider: account nosuch not found",))
    cli.fails("trunk", "add", "t3", "--server", "h3", "--login", "l3", "--password", "secretpass3", "--account",
              "nosuch", needles=("trunk t3: account nosuch not found",))
    cli.fails("trunk", "set", "acme-own", "--account", "acme", "--no-account", code=2, needles=("not both",))
    assert cli.json("trunk", "set", "acme-own", "--no-account")["account"] is None
    assert cli.json("trunk", "set", "provider", "--account", "globex")["account"] == "globex"
    cli.fails("account", "remove", "globex", needles=(
        "account globex still owns trunk(s) provider", "vpbx trunk set provider --no-account"))


def test_cli_statement_stats_and_check_show_outbound_calls(cli: Cli) -> None:
    cli.out("rates", "import", "--outbound", OUTBOUND)
    cli.out("sip", "add", "alice", "--caller-id", MOSCOW, "--account", "acme")
    month = date.today().strftime("%Y-%m")
    started = f"{date.today().isoformat()}T00:00:01+00:00"
    with Store.open(cli.db) as store:
        store.calls.add("c1", MOSCOW, MOSCOW, "outbound", started_at=started, sip_account="alice")
        store.calls.finish("c1", ended_at=started, reached=f"tel:{BERLIN}", billsec=61, disposition="answered")
        rate = charging.outbound_rate(store, BERLIN)
        assert rate is not None
        store.calls.note_payer("c1", "acme", rate.prefix)
        store.calls.add("c2", MOSCOW, MOSCOW, "outbound", started_at=started, sip_account="alice")
        store.calls.finish("c2", ended_at=started, reached=f"tel:{MOBILE}", billsec=120, disposition="answered")
        store.calls.note_payer("c2", "acme", "79")
        assert charging.charge_outbound(store, "c1", "acme", MOSCOW, rate, 61) == 440
    summary = cli.json("billing", "run")                                       # c2: left by the engine
    assert summary["outbound_rated"] == 1
    st = cli.json("account", "statement", "acme", "--month", month)
    assert st["outbound_by_destination"] == [
        {"prefix": "4930", "description": "Berlin", "calls": 1, "minutes": 1.0, "cost": 440},
        {"prefix": "79", "description": "Russia mobile", "calls": 1, "minutes": 2.0, "cost": 580}]
    assert (st["outbound_minutes"], st["outbound_cost"]) == (3.0, 1020)
    table = cli.out("account", "statement", "acme", "--month", month, "--format", "table")
    assert "outbound calls by destination" in table and "Russia mobile" in table and "5.80 RUB" in table
    stats = cli.json("stats")
    assert [(d["prefix"], d["cost"]) for d in stats["outbound_by_destination"]] == [("4930", 440), ("79", 580)]
    assert "outbound calls by destination" in cli.out("stats", "--format", "table")
    assert cli.out("account", "check").startswith("OK: 2 account(s)")
    # the plan call credit paid both calls: 200.00 of credit, 10.20 spent
    assert cli.json("number", "show", MOSCOW)["call_credit"] == 20000 - 1020


def test_cli_billing_run_says_how_many_calls_it_charged(cli: Cli) -> None:
    cli.out("rates", "import", "--outbound", OUTBOUND)
    started = f"{date.today().isoformat()}T00:00:01+00:00"
    with Store.open(cli.db) as store:
        store.calls.add("c1", MOSCOW, MOSCOW, "outbound", started_at=started)
        store.calls.finish("c1", ended_at=started, reached=f"tel:{BERLIN}", billsec=10, disposition="answered")
        store.calls.note_payer("c1", "acme", "4930")
    assert "Calls charged: 0 toll-free, 1 outbound\n" in cli.out("billing", "run")
    assert "Calls charged" not in cli.out("billing", "run")

"""vpbx.services.lifecycle (issue 5): orders, the billing run, suspension, trials, release, documents, toll-free rating,
statements, on a real temporary SQLite store and the seed tariff (tariffs/seed-ru.toml), with explicit dates.

Amounts are int minor units (kopecks). Seed prices used below (major units -> minor):
    connection: area 495 -> 2 500 (250000); 499/812 -> 1 000 (100000); type tollfree -> 2 950 (295000);
                default -> 1 000 (100000)
    monthly:    geographic/mobile regular 500 (50000); tollfree regular 1 500 (150000)
    discounts:  prepay 3 -> 5 %, 6 -> 10 %, 12 -> 15 %; 5+ numbers in one order -> +5 %
    rates:      7495/7499/7812 2.00 (200), 78432/78435 3.50 (350), 73432/73433 3.00 (300), 79 3.50, 7 3.50
The pure arithmetic itself is tested in tests/test_billing_*.py; here it is the rules around it and what they store.
"""
from __future__ import annotations

import os
import stat
import tempfile
import threading
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpbx.config import BillingSettings, Config, new_config
from vpbx.dialplan import simulate
from vpbx.dialplan.model import PROMPT_UNAVAILABLE, Dial, Play, builtin_media
from vpbx.dialplan.simulate import run as sim_run
from vpbx.domain.errors import ConflictError, NotFoundError, ValidationError
from vpbx.domain.numbers import parse
from vpbx.domain.records import Account, Number, SipAccount
from vpbx.services import lifecycle
from vpbx.services.flows import extension_map, load_flow
from vpbx.storage.store import Store

ROOT = Path(__file__).resolve().parent.parent
SEED = (ROOT / "tariffs" / "seed-ru.toml").read_text(encoding="utf-8")
RATES_CSV = (ROOT / "tariffs" / "tollfree-rates-ru.csv").read_text(encoding="utf-8")
UTC = UTC

MOSCOW = "+74952718459"        # geographic, regular, area 495
MOSCOW_MORE = ("+74952718460", "+74952718461", "+74952718462", "+74952718463", "+74952718465")  # the same kind
MOSCOW_499 = "+74992718459"    # geographic, regular, area 499
SPB = "+78122718459"           # geographic, regular, area 812
NOVOSIBIRSK = "+73832718459"   # geographic, regular, area 383 (not in the tariff: default fee)
MOBILE = "+79162718459"        # mobile, regular (area 916 not in the tariff, no type rule: default fee)
TOLLFREE = "+78002718459"      # 8-800 toll-free, regular
TOLLFREE2 = "+78002718460"     # 8-800 toll-free, regular
KYIV = "+380442718459"         # UA geographic, regular


def D(text: str) -> date:
    return date.fromisoformat(text)


def at(day: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


class World:
    """A store + config + the seed tariff, with helpers that keep the tests about dates and amounts."""

    def __init__(self, tmp: Path, policy: str = "anniversary", **billing: Any) -> None:
        self.tmp = tmp
        self.db = tmp / "v.db"
        self.store = Store.open(self.db)
        self.cfg: Config = replace(new_config(tmp), db=self.db,
                                   billing=BillingSettings(policy=policy, **billing))
        lifecycle.save_tariff(self.store, self.cfg, SEED)

    def close(self) -> None:
        self.store.close()

    def number(self, e164: str, **changes: Any) -> Number:
        """Add the number as `vpbx number add` would (type, city, category from phonenumbers), if not there yet."""
        if self.store.numbers.find(e164) is None:
            info = parse(e164)
            self.store.numbers.add(Number(number=e164, type=info.type, city=info.city, operator=info.operator,
                                         country=info.country, category=info.category))
        if changes:
            self.store.numbers.update([e164], **changes)
        return self.store.numbers.get(e164)

    def account(self, name: str = "acme", funds: int = 0, on: str = "2026-01-01", org_id: int | None = None) -> None:
        self.store.accounts.add(Account(name, f"{name}@example.com", org_id))
        if funds:
            lifecycle.topup(self.store, name, funds, "opening", D(on))

    def assign(self, numbers: str | list[str], on: str, account: str = "acme", **kw: Any) -> Any:
        if "m2m" not in kw:
            kw.setdefault("end_user", "Ivan Petrov")
        nums = [numbers] if isinstance(numbers, str) else numbers
        for n in nums:
            self.number(n)
        return lifecycle.assign(self.store, self.cfg, nums, account, D(on), **kw)

    def run(self, on: str | date, now: datetime | None = None) -> dict[str, Any]:
        day = D(on) if isinstance(on, str) else on
        return lifecycle.billing_run(self.store, self.cfg, day, now or at(day))

    def balance(self, account: str = "acme") -> int:
        return self.store.accounts.get(account).balance

    def ledger(self, account: str = "acme") -> list[dict[str, Any]]:
        return self.store.accounts.entries(account)

    def n(self, e164: str) -> Number:
        return self.store.numbers.get(e164)

    def snapshot(self) -> tuple:
        """Everything a refused operation must leave as it was."""
        return (self.store.accounts.all(), self.store.accounts.entries(), self.store.numbers.search(),
                self.store.outbox.list_notices(),
                self.store.shop.list_documents(), self.store.shop.list_waitlist())


@pytest.fixture
def w(tmp_path: Path):
    world = World(tmp_path)
    yield world
    world.close()


@pytest.fixture
def wp(tmp_path: Path):
    world = World(tmp_path, policy="prorate")
    yield world
    world.close()


def renewals(w: World, account: str = "acme") -> list[tuple[str, str, str, int]]:
    return [(r["number"], r["period_start"], r["period_end"], r["amount"]) for r in w.ledger(account)
            if r["kind"] == "renewal"]


# ---- orders: anniversary and prorate over month ends and leap years -----------------------------------------------
@pytest.mark.parametrize(("year", "first_paid_until", "renew_feb", "feb_period_end"), [
    (2026, "2026-02-27", "2026-02-28", "2026-03-30"),   # anchor 31 renews on Feb 28 ...
    (2028, "2028-02-28", "2028-02-29", "2028-03-30"),   # ... or Feb 29 in a leap year, then Mar 31
])
def test_anniversary_order_on_jan_31_renews_on_the_last_day_of_shorter_months(
        w: World, year: int, first_paid_until: str, renew_feb: str, feb_period_end: str) -> None:
    # connection 2 500.00 (495) + one month 500.00 = 3 000.00 -> 300000; a further 1 500.00 pays 3 renewals
    w.account(funds=300000 + 150000, on=f"{year}-01-01")
    q = w.assign(MOSCOW, f"{year}-01-31")
    assert q.total == 300000 and w.balance() == 150000
    n = w.n(MOSCOW)
    assert (n.status, n.anchor_day, n.connected_on, n.paid_until) == ("active", 31, f"{year}-01-31", first_paid_until)
    assert [(r["kind"], r["amount"], r["period_start"], r["period_end"]) for r in w.ledger()][1:] == [
        ("connection", -250000, None, None), ("period", -50000, f"{year}-01-31", first_paid_until)]

    day, renewed_on = D(f"{year}-02-01"), []
    while day <= D(f"{year}-05-31"):                      # the daily job, every day
        if w.run(day)["renewed"]:
            renewed_on.append(day.isoformat())
        day += timedelta(days=1)
    assert renewed_on == [renew_feb, f"{year}-03-31", f"{year}-04-30", f"{year}-05-31"]
    assert renewals(w)[:3] == [(MOSCOW, renew_feb, feb_period_end, -50000),
                               (MOSCOW, f"{year}-03-31", f"{year}-04-29", -50000),
                               (MOSCOW, f"{year}-04-30", f"{year}-05-30", -50000)]
    # 150000 - 4 * 50000 = -50000: the May renewal went into debt and suspended the number, anchor unchanged
    assert w.balance() == -50000
    n = w.n(MOSCOW)
    assert (n.status, n.anchor_day, n.paid_until) == ("suspended", 31, f"{year}-06-29")


def test_anniversary_daily_runs_over_a_year_renew_once_a_month_on_the_31st_or_the_months_last_day(w: World) -> None:
    w.account(funds=300000 + 12 * 50000)
    w.assign(MOSCOW, "2026-01-31")
    day, renewed_on = D("2026-02-01"), []
    while day <= D("2027-01-31"):
        renewed_on += [r["period_start"] for r in w.run(day)["renewed"]]
        day += timedelta(days=1)
    assert renewed_on == ["2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31", "2026-06-30", "2026-07-31",
                          "2026-08-31", "2026-09-30", "2026-10-31", "2026-11-30", "2026-12-31", "2027-01-31"]
    assert w.balance() == 0 and w.n(MOSCOW).status == "active"     # 12 x 500.00 paid exactly
    assert w.n(MOSCOW).paid_until == "2027-02-27"


def test_anniversary_order_on_feb_29_2028_renews_on_the_29th_and_feb_28_2029(w: World) -> None:
    w.account(funds=300000 + 12 * 50000, on="2028-02-01")
    w.assign(MOSCOW, "2028-02-29")
    n = w.n(MOSCOW)
    assert (n.anchor_day, n.paid_until) == (29, "2028-03-28")
    summary = w.run("2029-03-01")                          # one run after a year of missed runs: each period once
    starts = [r["period_start"] for r in summary["renewed"]]
    assert starts == ["2028-03-29", "2028-04-29", "2028-05-29", "2028-06-29", "2028-07-29", "2028-08-29",
                      "2028-09-29", "2028-10-29", "2028-11-29", "2028-12-29", "2029-01-29", "2029-02-28"]
    assert summary["charged"] == 12 * 50000 and w.balance() == 0
    assert renewals(w)[-1] == (MOSCOW, "2029-02-28", "2029-03-28", -50000)
    assert w.n(MOSCOW).paid_until == "2029-03-28"


@pytest.mark.parametrize(("on", "period_fee", "paid_until", "next_start", "next_end"), [
    ("2026-11-01", 50000, "2026-11-30", "2026-12-01", "2026-12-31"),   # on the 1st: the full month
    ("2026-11-22", 15000, "2026-11-30", "2026-12-01", "2026-12-31"),   # 9 of 30 days: 50000 * 9 / 30
    ("2026-02-15", 25000, "2026-02-28", "2026-03-01", "2026-03-31"),   # 14 of 28 days
    ("2028-02-29", 1724, "2028-02-29", "2028-03-01", "2028-03-31"),    # 1 of 29 days: 1724.14 -> 1724
    ("2026-01-31", 1613, "2026-01-31", "2026-02-01", "2026-02-28"),    # 1 of 31 days: 1612.90 -> 1613
])
def test_prorate_first_period_to_the_months_end_then_full_months_on_the_1st(
        wp: World, on: str, period_fee: int, paid_until: str, next_start: str, next_end: str) -> None:
    wp.account(funds=250000 + period_fee, on=on)
    q = wp.assign(MOSCOW, on)
    assert (q.lines[0].connection_fee, q.lines[0].period_fee, q.lines[0].discount, q.total) == (
        250000, period_fee, 0, 250000 + period_fee)
    assert wp.balance() == 0
    n = wp.n(MOSCOW)
    assert (n.anchor_day, n.paid_until, n.status) == (1, paid_until, "active")
    assert wp.run(paid_until)["renewed"] == []
    wp.run(next_start)
    assert renewals(wp) == [(MOSCOW, next_start, next_end, -50000)]
    assert wp.balance() == -50000 and wp.n(MOSCOW).status == "suspended"


@pytest.mark.parametrize(("months", "count", "period_fee", "discount", "paid_until"), [
    (1, 1, 50000, 0, "2026-04-09"),
    (3, 1, 150000, 7500, "2026-06-09"),        # 5 % of 3 x 500.00
    (6, 1, 300000, 30000, "2026-09-09"),       # 10 % of 6 x 500.00
    (12, 1, 600000, 90000, "2027-03-09"),      # 15 % of 12 x 500.00
    (1, 4, 50000, 0, "2026-04-09"),            # 4 numbers: no volume discount
    (1, 5, 50000, 2500, "2026-04-09"),         # 5 numbers: 5 % each
    (12, 5, 600000, 120000, "2027-03-09"),     # both: 15 % + 5 % = 20 % of 6 000.00
])
def test_prepay_and_volume_discounts_apply_to_the_period_never_the_connection_fee(
        w: World, months: int, count: int, period_fee: int, discount: int, paid_until: str) -> None:
    numbers = list(MOSCOW_MORE[:count])
    total = count * (250000 + period_fee - discount)
    w.account(funds=total)
    q = w.assign(numbers, "2026-03-10", months=months)
    assert q.total == total and w.balance() == 0
    for line in q.lines:
        assert (line.connection_fee, line.period_fee, line.discount) == (250000, period_fee, discount)
    rows = [r for r in w.ledger() if r["kind"] == "period"]
    assert [r["amount"] for r in rows] == [-(period_fee - discount)] * count
    assert all(r["period_end"] == paid_until for r in rows)
    assert [r["amount"] for r in w.ledger() if r["kind"] == "connection"] == [-250000] * count
    if discount:
        assert all(f"{q.discount_percent}% off" in r["ref"] for r in rows)
    # the renewal after the prepaid months charges the plain monthly fee, no discount
    w.run(D(paid_until) + timedelta(days=1))
    assert [r[3] for r in renewals(w)] == [-50000] * count


def test_prorate_prepay_three_months_from_the_22nd(wp: World) -> None:
    # 9/30 of 500.00 (15000) + 2 full months (100000) = 115000, 5 % off = 5750 -> 109250; paid to the 3rd month's end
    wp.account(funds=250000 + 109250)
    q = wp.assign(MOSCOW, "2026-11-22", months=3)
    assert (q.lines[0].period_fee, q.lines[0].discount, q.total) == (115000, 5750, 359250)
    assert wp.n(MOSCOW).paid_until == "2027-01-31" and wp.balance() == 0


@pytest.mark.parametrize(("number", "connection", "monthly"), [
    (MOSCOW, 250000, 50000),        # area 495
    (MOSCOW_499, 100000, 50000),    # area 499
    (SPB, 100000, 50000),           # area 812
    (TOLLFREE, 295000, 150000),     # type tollfree (area 800 has no rule)
    (NOVOSIBIRSK, 100000, 50000),   # default
    (MOBILE, 100000, 50000),        # default (no rule for mobile)
])
def test_connection_fee_by_area_then_type_then_default(w: World, number: str, connection: int, monthly: int) -> None:
    w.number(number)
    w.account(funds=1000000)
    w.assign(number, "2026-03-10")
    assert [(r["kind"], r["amount"]) for r in w.ledger()[1:]] == [("connection", -connection), ("period", -monthly)]
    assert w.balance() == 1000000 - connection - monthly


# ---- refused orders change nothing --------------------------------------------------------------------------------
def test_funds_short_is_refused_with_the_shortfall_and_nothing_changes(w: World) -> None:
    w.number(MOSCOW)
    w.number(SPB)
    w.account(funds=299999)                                          # one kopeck short of 3 000.00
    before = w.snapshot()
    with pytest.raises(ConflictError) as exc:
        w.assign(MOSCOW, "2026-03-10")
    message = str(exc.value)
    assert "account acme has 2 999.99 RUB" in message and "costs 3 000.00 RUB" in message
    assert "top up at least 0.01 RUB" in message
    assert w.snapshot() == before
    # two numbers, the second makes it short by 1 500.00 + 0.01: neither is assigned
    with pytest.raises(ConflictError, match=r"top up at least 1 500\.01 RUB"):
        w.assign([MOSCOW, SPB], "2026-03-10")
    assert w.snapshot() == before
    assert w.n(MOSCOW).status == w.n(SPB).status == "available"


def test_shortfall_hint_is_a_command_that_works(w: World) -> None:
    # the hint's amount must survive a shell: "2 000.00" would be two arguments
    w.number(MOSCOW)
    w.account(funds=100000)
    with pytest.raises(ConflictError) as exc:
        w.assign(MOSCOW, "2026-03-10")
    assert "`vpbx account topup acme 2000.00`" in str(exc.value)


@pytest.mark.parametrize("setup", ["other_account", "released", "trial", "pending"])
def test_only_available_numbers_can_be_assigned(w: World, setup: str) -> None:
    w.number(MOSCOW)
    w.account(funds=1000000)
    w.account("other", funds=1000000)
    if setup == "other_account":
        w.assign(MOSCOW, "2026-03-10", account="other")
        expected = f"number {MOSCOW} is active (account other)"
    elif setup == "released":
        w.assign(MOSCOW, "2026-03-10", account="other")
        lifecycle.release(w.store, w.cfg, MOSCOW, D("2026-03-11"))
        expected = f"number {MOSCOW} is released"
    elif setup == "trial":
        lifecycle.trial(w.store, w.cfg, MOSCOW, "other", 1, at(D("2026-03-10")))
        expected = f"number {MOSCOW} is trial (account other)"
    else:
        w.store.numbers.update([MOSCOW], requires_documents=True)
        w.assign(MOSCOW, "2026-03-10", account="other")
        expected = f"number {MOSCOW} is pending_documents (account other)"
    before = w.snapshot()
    with pytest.raises(ConflictError, match=r"only available numbers can be assigned") as exc:
        w.assign(MOSCOW, "2026-03-12")
    assert expected in str(exc.value)
    assert w.snapshot() == before


def test_unknown_number_or_account_is_refused(w: World) -> None:
    w.account(funds=1000000)
    before = w.snapshot()
    with pytest.raises(NotFoundError, match=rf"number \{MOSCOW} not found"):
        lifecycle.assign(w.store, w.cfg, [MOSCOW], "acme", D("2026-03-10"), end_user="Ivan Petrov")
    assert w.snapshot() == before
    w.number(MOSCOW)
    before = w.snapshot()
    with pytest.raises(NotFoundError, match="account nobody not found"):
        w.assign(MOSCOW, "2026-03-10", account="nobody")
    assert w.snapshot() == before


def test_end_user_xor_m2m_device_is_required(w: World) -> None:
    w.number(MOSCOW)
    w.account(funds=1000000)
    before = w.snapshot()
    for kw in ({"end_user": None}, {"end_user": "Ivan Petrov", "m2m": "356938035643809"}):
        with pytest.raises(ValidationError, match="exactly one of --end-user"):
            lifecycle.assign(w.store, w.cfg, [MOSCOW], "acme", D("2026-03-10"), **kw)
    assert w.snapshot() == before
    lifecycle.assign(w.store, w.cfg, [MOSCOW], "acme", D("2026-03-10"), m2m="356938035643809")
    n = w.n(MOSCOW)
    assert (n.m2m_device, n.end_user, n.status) == ("356938035643809", "", "active")


@pytest.mark.parametrize("name", ["Ivan\nPetrov", "Ivan Petrov\n", "Ivan\rPetrov", "Ivan\tPetrov", "Ivan [Petrov]",
                                  "Ivan; Petrov", "Ivan\x00Petrov", "12345", "I", ""])
def test_bad_end_user_names_are_refused(w: World, name: str) -> None:
    w.number(MOSCOW)
    w.account(funds=1000000)
    before = w.snapshot()
    with pytest.raises(ValidationError, match="is not a person's full name"):
        w.assign(MOSCOW, "2026-03-10", end_user=name)
    assert w.snapshot() == before


def test_good_end_user_names_are_kept(w: World) -> None:
    w.number(MOSCOW)
    w.account(funds=1000000)
    w.assign(MOSCOW, "2026-03-10", end_user="  Иван   Петрович Сидоров-Кузнецов ")
    assert w.n(MOSCOW).end_user == "Иван Петрович Сидоров-Кузнецов"


def test_plan_is_stored_with_its_call_credit_and_renews_at_the_plans_fee(w: World) -> None:
    # "Просто" (key prosto): 1 000.00 a month of which 200.00 is call credit
    w.account(funds=250000 + 100000)
    w.assign(MOSCOW, "2026-03-10", plan="prosto")
    n = w.n(MOSCOW)
    assert (n.plan, n.call_credit) == ("prosto", 20000)
    assert w.balance() == 0
    w.run("2026-04-10")
    assert renewals(w) == [(MOSCOW, "2026-04-10", "2026-05-09", -100000)]


def test_unknown_plan_or_a_plan_for_another_number_type_is_refused(w: World) -> None:
    w.account(funds=10000000)
    w.number(MOSCOW)
    before = w.snapshot()
    with pytest.raises(ValidationError, match="plan 'standart' is not for geographic numbers"):
        w.assign(MOSCOW, "2026-03-10", plan="standart")
    # plans are ordered by key; the error lists the keys with their display names
    with pytest.raises(ValidationError, match=r"plan 'Просто' is not in the tariff \(plans: prosto \(Просто\), "):
        w.assign(MOSCOW, "2026-03-10", plan="Просто")
    assert w.snapshot() == before


# ---- the billing run ----------------------------------------------------------------------------------------------
def test_billing_run_twice_for_a_date_charges_once(w: World) -> None:
    w.account(funds=1000000)
    w.assign(MOSCOW, "2026-01-15")
    first = w.run("2026-02-15")
    assert [r["period_start"] for r in first["renewed"]] == ["2026-02-15"] and first["charged"] == 50000
    rows, balance = len(w.ledger()), w.balance()
    second = w.run("2026-02-15")
    assert second["renewed"] == [] and second["charged"] == 0
    assert (len(w.ledger()), w.balance()) == (rows, balance) == (4, 1000000 - 300000 - 50000)
    assert w.run("2026-02-16")["renewed"] == [] and w.run("2026-03-14")["renewed"] == []
    assert len(w.ledger()) == rows


def test_missed_runs_catch_up_each_period_once(w: World) -> None:
    w.account(funds=1000000)
    w.assign(MOSCOW, "2026-01-15")
    summary = w.run("2026-04-20")                              # runs of Feb 15, Mar 15, Apr 15 were missed
    assert [(r["period_start"], r["fee"]) for r in summary["renewed"]] == [
        ("2026-02-15", 50000), ("2026-03-15", 50000), ("2026-04-15", 50000)]
    assert renewals(w) == [(MOSCOW, "2026-02-15", "2026-03-14", -50000), (MOSCOW, "2026-03-15", "2026-04-14", -50000),
                           (MOSCOW, "2026-04-15", "2026-05-14", -50000)]
    rows = len(w.ledger())
    for again in ("2026-04-20", "2026-03-15", "2026-05-14"):     # the same day, an earlier day, before the next
        assert w.run(again)["renewed"] == []
    assert len(w.ledger()) == rows and w.balance() == 1000000 - 300000 - 150000
    assert w.n(MOSCOW).paid_until == "2026-05-14"


def test_renewal_into_debt_suspends_every_active_number_and_a_full_topup_reactivates(w: World) -> None:
    w.number(MOSCOW_MORE[0])
    w.account(funds=250000 + 100000 + 2 * 50000)                # 495 + 812 connection, two first months
    w.account("other", funds=1000000)
    w.assign([MOSCOW, SPB], "2026-01-31")
    w.assign(MOSCOW_MORE[0], "2026-01-31", account="other")
    assert w.balance() == 0
    summary = w.run("2026-02-28")                              # two renewals: 0 - 2 x 500.00
    assert w.balance() == -100000
    assert sorted(summary["suspended"]) == sorted([MOSCOW, SPB])
    assert w.n(MOSCOW).status == w.n(SPB).status == "suspended"
    assert w.n(MOSCOW_MORE[0]).status == "active"              # the other account pays its way
    kept = {n: (w.n(n).paid_until, w.n(n).anchor_day) for n in (MOSCOW, SPB)}
    assert kept == {MOSCOW: ("2026-03-30", 31), SPB: ("2026-03-30", 31)}

    result = lifecycle.topup(w.store, "acme", 99999, "part", D("2026-03-01"))   # leaves -0.01: still suspended
    assert (result["balance"], result["reactivated"]) == (-1, [])
    assert w.n(MOSCOW).status == w.n(SPB).status == "suspended"
    result = lifecycle.topup(w.store, "acme", 1, "rest", D("2026-03-02"))       # exactly 0: reactivated
    assert (result["balance"], sorted(result["reactivated"])) == (0, sorted([MOSCOW, SPB]))
    assert w.n(MOSCOW).status == w.n(SPB).status == "active"
    assert {n: (w.n(n).paid_until, w.n(n).anchor_day) for n in (MOSCOW, SPB)} == kept   # renewal day unchanged
    w.run("2026-03-31")                                        # renews on the anchored day as before
    assert renewals(w)[-2:] == [(MOSCOW, "2026-03-31", "2026-04-29", -50000), (SPB, "2026-03-31", "2026-04-29", -50000)]


def test_a_negative_adjustment_suspends_and_a_positive_one_reactivates(w: World) -> None:
    w.account(funds=300000)
    w.assign(MOSCOW, "2026-03-10")
    result = lifecycle.topup(w.store, "acme", -1, "correction", D("2026-03-11"), kind="adjustment")
    assert (result["balance"], result["suspended"]) == (-1, [MOSCOW])
    result = lifecycle.topup(w.store, "acme", 1, "correction back", D("2026-03-12"), kind="adjustment")
    assert (result["balance"], result["reactivated"]) == (0, [MOSCOW])
    with pytest.raises(ValidationError, match="must be positive"):
        lifecycle.topup(w.store, "acme", -5, "", D("2026-03-12"))
    with pytest.raises(ValidationError, match="adjustment of 0"):
        lifecycle.topup(w.store, "acme", 0, "", D("2026-03-12"), kind="adjustment")
    assert w.balance() == 0 and len(w.ledger()) == 5


# ---- who may take calls: the flow the engine compiles --------------------------------------------------------------
def _routed(w: World, number: str, dest: str = "sip:alice") -> None:
    if not any(a.login == "alice" for a in w.store.sip_accounts.all()):
        w.store.sip_accounts.add(SipAccount("alice", "secret-password-1"))
    w.store.numbers.update([number], route=dest)


def _hears_unavailable(flow: Any, caller: str = "+79161112233") -> bool:
    steps = sim_run(flow, caller)
    actions = [a for s in steps for a in s.actions]
    assert not any(isinstance(a, Dial) for a in actions), "a call to a number that may not serve calls was forwarded"
    assert [a.media for a in actions if isinstance(a, Play)] == [builtin_media(PROMPT_UNAVAILABLE)]
    return steps[-1].state.disposition == "failed"


def _is_routed(flow: Any, dest: str = "sip:alice") -> bool:
    steps = sim_run(flow, "+79161112233")
    return any(isinstance(a, Dial) and a.target.dest == dest for s in steps for a in s.actions) \
        and steps[-1].state.reached == dest


def test_a_suspended_number_hears_number_unavailable_and_is_never_forwarded(w: World) -> None:
    w.account(funds=300000)
    w.assign(MOSCOW, "2026-01-31")
    _routed(w, MOSCOW)
    active = load_flow(w.store, w.n(MOSCOW))
    assert _is_routed(active)
    assert simulate(active, "+79161112233")[0] == (
        f"  0. call from +79161112233 to {MOSCOW} -> ringback to caller; dial sip:alice as sim-leg-1 (30s); "
        "start timer sim-t-1 (30s)")

    w.run("2026-02-28")                                          # renewal into debt
    assert w.n(MOSCOW).status == "suspended" and w.n(MOSCOW).route == "sip:alice"   # routing kept, not served
    flow = load_flow(w.store, w.n(MOSCOW))
    assert simulate(flow, "+79161112233") == [
        f"  0. call from +79161112233 to {MOSCOW} -> answer; play sound:vpbx/number-unavailable [sim-pb-1]",
        "  1. playback sim-pb-1 finished -> hang up caller (cause 16)",
        "end: failed, reached -",
    ]
    assert _hears_unavailable(flow)

    lifecycle.topup(w.store, "acme", 50000, "pay", D("2026-03-01"))
    assert _is_routed(load_flow(w.store, w.n(MOSCOW)))           # reactivated: routed again


def test_trial_is_routed_until_it_expires_then_hears_number_unavailable(w: World) -> None:
    w.account()
    w.number(MOSCOW)
    t0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    n = lifecycle.trial(w.store, w.cfg, MOSCOW, "acme", 2, t0)
    assert (n.status, n.account, n.trial_until) == ("trial", "acme", "2026-03-10T14:00:00+00:00")
    _routed(w, MOSCOW)
    assert _is_routed(load_flow(w.store, w.n(MOSCOW), now=t0 + timedelta(hours=1, minutes=59)))
    assert _hears_unavailable(load_flow(w.store, w.n(MOSCOW), now=t0 + timedelta(hours=2)))
    assert _hears_unavailable(load_flow(w.store, w.n(MOSCOW), now=t0 + timedelta(days=3)))
    assert w.ledger() == []                                      # free


def test_pending_documents_and_released_numbers_hear_number_unavailable(w: World) -> None:
    w.number(SPB, requires_documents=True)
    w.account(funds=1000000)
    w.assign([MOSCOW, SPB], "2026-03-10")
    _routed(w, SPB)
    _routed(w, MOSCOW)
    assert w.n(SPB).status == "pending_documents"
    assert _hears_unavailable(load_flow(w.store, w.n(SPB)))
    lifecycle.release(w.store, w.cfg, MOSCOW, D("2026-03-20"))
    w.store.numbers.update([MOSCOW], route="sip:alice")          # even if someone routes it again
    assert _hears_unavailable(load_flow(w.store, w.n(MOSCOW)))


def test_an_unsold_number_of_the_install_keeps_serving_calls(w: World) -> None:
    w.number(SPB)
    _routed(w, SPB)
    n = w.n(SPB)
    assert (n.status, n.account) == ("available", None)
    assert _is_routed(load_flow(w.store, n))
    assert lifecycle.calls_allowed(n, at(D("2026-03-10"))) == (True, "")


# ---- trials -------------------------------------------------------------------------------------------------------
def test_trial_hours_bounds(w: World) -> None:
    w.account()
    w.account("other")
    w.number(MOSCOW)
    w.number(SPB)
    now = at(D("2026-03-10"))
    before = w.snapshot()
    for hours in (0, -1, 73):                                    # max_trial_hours = 72 by default
        with pytest.raises(ValidationError, match=r"--hours .* is outside 1\.\.72"):
            lifecycle.trial(w.store, w.cfg, MOSCOW, "acme", hours, now)
    assert w.snapshot() == before
    assert lifecycle.trial(w.store, w.cfg, MOSCOW, "acme", 72, now).trial_until == "2026-03-13T00:00:00+00:00"
    assert lifecycle.trial(w.store, w.cfg, SPB, "other", 1, now).trial_until == "2026-03-10T01:00:00+00:00"


def test_one_trial_at_a_time_per_account(w: World) -> None:
    w.account()
    w.number(MOSCOW)
    w.number(SPB)
    now = at(D("2026-03-10"))
    lifecycle.trial(w.store, w.cfg, MOSCOW, "acme", 1, now)
    before = w.snapshot()
    with pytest.raises(ConflictError, match=rf"account acme already has a trial \(\{MOSCOW}\)"):
        lifecycle.trial(w.store, w.cfg, SPB, "acme", 1, now)
    assert w.snapshot() == before


def test_billing_run_after_expiry_frees_the_trial(w: World) -> None:
    w.account()
    w.number(MOSCOW)
    w.number(SPB)
    t0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    lifecycle.trial(w.store, w.cfg, MOSCOW, "acme", 1, t0)
    _routed(w, MOSCOW)
    assert w.run("2026-03-10", now=t0 + timedelta(minutes=59))["trials_ended"] == []
    assert w.n(MOSCOW).status == "trial"
    summary = w.run("2026-03-10", now=t0 + timedelta(hours=1))
    assert summary["trials_ended"] == [MOSCOW]
    n = w.n(MOSCOW)
    assert (n.status, n.account, n.trial_until, n.route) == ("available", None, None, None)
    assert w.ledger() == []
    lifecycle.trial(w.store, w.cfg, SPB, "acme", 1, t0 + timedelta(hours=2))   # the account may try another


# ---- release ------------------------------------------------------------------------------------------------------
def test_release_refunds_nothing_clears_routing_and_quarantines(tmp_path: Path) -> None:
    w = World(tmp_path, quarantine_days=10)
    try:
        w.number(MOSCOW_MORE[0])
        w.account(funds=1000000)
        w.assign(MOSCOW, "2026-03-10", months=3)
        _routed(w, MOSCOW)
        w.store.numbers.update([MOSCOW], greeting="welcome", vm_emails=("boss@example.com",))
        ledger, balance = w.ledger(), w.balance()
        result = lifecycle.release(w.store, w.cfg, MOSCOW, D("2026-03-11"))
        assert result == {"number": MOSCOW, "was": "active", "account": "acme", "available_on": "2026-03-21",
                          "warning": ""}
        assert w.ledger() == ledger and w.balance() == balance         # 3 prepaid months: no refund
        n = w.n(MOSCOW)
        assert (n.status, n.account, n.quarantine_until, n.route, n.greeting, n.vm_emails, n.paid_until,
                n.end_user) == ("released", None, "2026-03-21", None, None, (), None, "")
        assert w.run("2026-03-20")["available_again"] == [] and w.n(MOSCOW).status == "released"
        assert w.run("2026-03-21")["available_again"] == [MOSCOW]
        assert (w.n(MOSCOW).status, w.n(MOSCOW).quarantine_until) == ("available", None)
        assert renewals(w) == []                                       # a released number is never renewed
        w.account("other", funds=300000)                               # available again: sold again
        w.assign(MOSCOW, "2026-03-22", account="other")
        assert (w.n(MOSCOW).status, w.n(MOSCOW).account) == ("active", "other") and w.balance("other") == 0
    finally:
        w.close()


def test_default_quarantine_comes_from_the_config(w: World) -> None:
    w.account(funds=300000)
    w.assign(MOSCOW, "2026-03-10")
    assert lifecycle.release(w.store, w.cfg, MOSCOW, D("2026-03-11"))["available_on"] == "2026-04-10"   # 30 days


@pytest.mark.parametrize(("on", "warned"), [
    ("2026-02-25", False),     # renews 2026-02-28: 3 days ahead
    ("2026-02-26", False),     # 2 days
    ("2026-02-27", True),      # 1 day: inside the window
    ("2026-02-28", True),      # the renewal day itself (before the run)
])
def test_release_warns_within_one_day_of_renewal(w: World, on: str, warned: bool) -> None:
    w.account(funds=300000)
    w.assign(MOSCOW, "2026-01-31")                               # paid until 2026-02-27, renews 2026-02-28
    warning = lifecycle.release(w.store, w.cfg, MOSCOW, D(on))["warning"]
    if warned:
        assert warning == (f"number {MOSCOW} renews on 2026-02-28; it is released now and the paid days are not "
                           "refunded")
    else:
        assert warning == ""


def test_release_is_refused_while_a_sip_account_uses_the_number_as_caller_id(w: World) -> None:
    w.account(funds=300000)
    w.assign(MOSCOW, "2026-03-10")
    w.store.sip_accounts.add(SipAccount("alice", "secret-password-1", caller_id=MOSCOW))
    before = w.snapshot()
    with pytest.raises(ConflictError, match=rf"number \{MOSCOW} is still used by SIP account alice \(caller ID\)"):
        lifecycle.release(w.store, w.cfg, MOSCOW, D("2026-03-11"))
    assert w.snapshot() == before


def test_release_of_a_number_not_held_is_refused(w: World) -> None:
    w.number(MOSCOW)
    with pytest.raises(ConflictError, match=rf"number \{MOSCOW} is available; only a held number can be released"):
        lifecycle.release(w.store, w.cfg, MOSCOW, D("2026-03-11"))


# ---- documents ----------------------------------------------------------------------------------------------------
def test_documents_pending_until_activated_with_a_document(w: World, tmp_path: Path) -> None:
    w.number(SPB, requires_documents=True, lead_days=2)
    w.account(funds=1000000)
    w.assign(SPB, "2026-03-10")
    assert w.n(SPB).status == "pending_documents"
    mail = w.store.outbox.list_notices()
    assert [(m["recipient"], m["subject"]) for m in mail] == [("acme@example.com", f"Number {SPB}: documents needed")]
    assert "about 2 day(s)" in mail[0]["body"]

    before = w.snapshot()
    with pytest.raises(ConflictError, match=rf"number \{SPB} has no documents; add them with `vpbx document add"):
        lifecycle.activate(w.store, SPB, D("2026-03-11"))
    assert w.snapshot() == before

    scan = tmp_path / "passport scan.pdf"
    content = b"%PDF-1.4\n" + bytes(range(256)) * 4
    scan.write_bytes(content)
    doc = lifecycle.add_document(w.store, w.cfg, SPB, scan)
    stored = Path(doc["path"])
    assert stored.read_bytes() == content
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(stored.parent).st_mode) == 0o700
    assert stored.parent == tmp_path / "documents" / SPB.lstrip("+") and " " not in stored.name
    assert [(d["number"], d["account"], d["filename"], d["size"]) for d in w.store.shop.list_documents(SPB)] == [
        (SPB, "acme", "passport scan.pdf", len(content))]

    n = lifecycle.activate(w.store, SPB, D("2026-03-11"))
    assert n.status == "active" and w.n(SPB).status == "active"
    last = w.store.outbox.list_notices()[-1]
    assert (last["recipient"], last["subject"]) == ("acme@example.com", f"Number {SPB} is connected")
    assert "paid until 2026-04-09" in last["body"]
    with pytest.raises(ConflictError, match="not pending_documents"):
        lifecycle.activate(w.store, SPB, D("2026-03-11"))


def test_documents_need_an_assigned_number_and_a_readable_non_empty_file(w: World, tmp_path: Path) -> None:
    w.number(SPB)
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"data")
    with pytest.raises(ConflictError, match=rf"number \{SPB} is not assigned to an account"):
        lifecycle.add_document(w.store, w.cfg, SPB, scan)
    w.account(funds=1000000)
    w.assign(SPB, "2026-03-10")
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    with pytest.raises(ValidationError, match="is empty"):
        lifecycle.add_document(w.store, w.cfg, SPB, empty)
    with pytest.raises(ValidationError, match="cannot read it"):
        lifecycle.add_document(w.store, w.cfg, SPB, tmp_path / "missing.pdf")
    assert w.store.shop.list_documents() == []


def test_activation_of_an_account_in_debt_leaves_the_number_suspended(w: World, tmp_path: Path) -> None:
    w.number(SPB, requires_documents=True)
    w.account(funds=150000)                                      # 812: 1 000.00 + 500.00
    w.assign(SPB, "2026-01-31")
    w.run("2026-02-28")                                          # renewed while pending: -500.00
    assert (w.balance(), w.n(SPB).status) == (-50000, "pending_documents")
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"%PDF-1.4 scan")
    lifecycle.add_document(w.store, w.cfg, SPB, scan)
    assert lifecycle.activate(w.store, SPB, D("2026-03-01")).status == "suspended"
    last = w.store.outbox.list_notices()[-1]                               # not "connected and active"
    assert last["subject"] == f"Number {SPB} is connected but suspended" and "below zero" in last["body"]
    lifecycle.topup(w.store, "acme", 50000, "pay", D("2026-03-02"))
    assert w.n(SPB).status == "active"


# ---- waitlist -----------------------------------------------------------------------------------------------------
def test_quarantine_end_mails_a_matching_waitlist_once(w: World) -> None:
    w.account("waiter")
    w.account(funds=300000)
    w.assign(MOSCOW, "2026-03-10")
    lifecycle.release(w.store, w.cfg, MOSCOW, D("2026-03-11"))
    match = w.store.shop.add_waitlist("waiter", "RU", "moscow", "geographic")
    w.store.shop.add_waitlist("waiter", "RU", "St Petersburg", "")           # another city: not this one
    w.store.shop.add_waitlist("waiter", "UA", "", "")                        # another country
    w.store.shop.add_waitlist("waiter", "RU", "", "mobile")                  # another type
    assert w.run("2026-04-10")["available_again"] == [MOSCOW]
    mail = [m for m in w.store.outbox.list_notices() if m["recipient"] == "waiter@example.com"]
    assert [m["subject"] for m in mail] == [f"A number you wait for is available: {MOSCOW}"]
    assert [(e["id"], e["notified_number"]) for e in w.store.shop.list_waitlist() if e["notified_at"]] == [
        (match["id"], MOSCOW)]
    lifecycle.notify_waitlist(w.store, [MOSCOW])                        # a second match: no second mail
    assert len([m for m in w.store.outbox.list_notices() if m["recipient"] == "waiter@example.com"]) == 1


def test_waitlist_city_matches_like_number_list_does(w: World) -> None:
    # phonenumbers calls Kyiv "Kyiv city"; a customer waiting for "Kyiv" (the issue's own example) must hear of it
    w.account("waiter")
    kyiv = w.store.shop.add_waitlist("waiter", "UA", "Kyiv", "")
    w.store.shop.add_waitlist("waiter", "UA", "Lviv", "")
    n = w.number(KYIV)
    assert n.city == "Kyiv city"
    sent = lifecycle.notify_waitlist(w.store, [n])
    assert sent == [{"entry": kyiv["id"], "account": "waiter", "number": KYIV}]


# ---- toll-free rating ---------------------------------------------------------------------------------------------
def _call(w: World, call_id: str, number: str, caller: str, billsec: int, day: str = "2026-03-15",
          direction: str = "inbound", ended: bool = True) -> str:
    w.store.calls.add(call_id, number, caller, direction, started_at=f"{day}T10:00:00+00:00")
    if ended:
        w.store.calls.finish(call_id, ended_at=f"{day}T10:05:00+00:00", answered_at=f"{day}T10:00:05+00:00",
                            billsec=billsec, duration=billsec + 5, disposition="answered")
    return call_id


def _tollfree_world(w: World, plan: str | None = None) -> None:
    assert lifecycle.import_rates(w.store, RATES_CSV) == 9
    w.account(funds=1000000)
    w.assign(TOLLFREE, "2026-03-10", plan=plan)


@pytest.mark.parametrize(("caller", "billsec", "prefix", "cost"), [
    ("+78432123456", 61, "78432", 700),     # Kazan 3.50, 61 s = 2 started minutes
    ("+78432123456", 60, "78432", 350),     # exactly one minute
    ("+74951234567", 60, "7495", 200),      # Moscow 2.00
    ("+74951234567", 1, "7495", 200),       # a started minute
    ("+79161234567", 125, "79", 1050),      # mobile 3.50 x 3
    ("+73432123456", 119, "73432", 600),    # Yekaterinburg 3.00 x 2
    ("+73832123456", 30, "7", 350),         # other Russian: the 1-digit prefix
])
def test_tollfree_call_is_rated_by_the_longest_prefix_per_started_minute(
        w: World, caller: str, billsec: int, prefix: str, cost: int) -> None:
    _tollfree_world(w)
    balance = w.balance()                                      # 1 000 000 - 295 000 - 150 000 = 555 000
    assert balance == 555000
    assert lifecycle.rate_of(w.store, caller)[0] == prefix
    assert lifecycle.charge_call(w.store, w.cfg, _call(w, "c1", TOLLFREE, caller, billsec)) == cost
    assert w.balance() == balance - cost
    row = w.ledger()[-1]
    assert (row["kind"], row["amount"], row["call_id"], row["number"], row["effective_on"]) == (
        "call", -cost, "c1", TOLLFREE, "2026-03-15")
    assert f"at prefix {prefix}" in row["ref"]
    assert (w.store.calls.get("c1")["cost"], w.store.calls.get("c1")["account"]) == (cost, "acme")
    # charged once, however often it is asked
    assert lifecycle.charge_call(w.store, w.cfg, "c1") is None
    assert w.balance() == balance - cost and len([r for r in w.ledger() if r["kind"] == "call"]) == 1


def test_calls_that_are_not_chargeable(w: World) -> None:
    _tollfree_world(w)
    w.number(TOLLFREE2)                                        # toll-free, but nobody's
    w.assign(MOSCOW, "2026-03-10")                             # acme's, not toll-free
    rows, balance = len(w.ledger()), w.balance()
    assert lifecycle.charge_call(w.store, w.cfg, _call(w, "geo", MOSCOW, "+78432123456", 61)) is None
    assert lifecycle.charge_call(w.store, w.cfg, _call(w, "unowned", TOLLFREE2, "+78432123456", 61)) is None
    assert lifecycle.charge_call(w.store, w.cfg, _call(w, "open", TOLLFREE, "+78432123456", 61, ended=False)) is None
    assert lifecycle.charge_call(w.store, w.cfg, _call(w, "out", TOLLFREE, "+78432123456", 61,
                                                       direction="outbound")) is None
    assert lifecycle.charge_call(w.store, w.cfg, "no-such-call") is None
    assert lifecycle.charge_call(w.store, w.cfg, _call(w, "unanswered", TOLLFREE, "+78432123456", 0)) == 0
    assert lifecycle.charge_call(w.store, w.cfg, _call(w, "foreign", TOLLFREE, "+380441234567", 61)) == 0  # no rate
    assert (len(w.ledger()), w.balance()) == (rows, balance)
    assert w.store.calls.get("geo")["cost"] is None and w.store.calls.get("foreign")["cost"] == 0


def test_plan_call_credit_is_used_before_the_balance_and_renews_with_the_month(tmp_path: Path) -> None:
    # a "Просто"-like plan for toll-free numbers: the seed's `standart` with 10.00 (1000) of call credit
    w = World(tmp_path)
    try:
        text = SEED.replace('monthly = "1 500"\ncall_credit = 0', 'monthly = "1 500"\ncall_credit = 10')
        assert text != SEED
        lifecycle.save_tariff(w.store, w.cfg, text)
        _tollfree_world(w, plan="standart")
        assert (w.n(TOLLFREE).plan, w.n(TOLLFREE).call_credit) == ("standart", 1000)
        balance = w.balance()
        assert lifecycle.charge_call(w.store, w.cfg, _call(w, "c1", TOLLFREE, "+78432123456", 61)) == 700
        assert w.balance() == balance and w.n(TOLLFREE).call_credit == 300          # all from credit
        assert [r for r in w.ledger() if r["kind"] == "call"] == []
        assert lifecycle.charge_call(w.store, w.cfg, _call(w, "c2", TOLLFREE, "+79161234567", 125)) == 1050
        assert w.balance() == balance - 750 and w.n(TOLLFREE).call_credit == 0       # 300 credit + 750 balance
        row = [r for r in w.ledger() if r["kind"] == "call"]
        assert [(r["call_id"], r["amount"]) for r in row] == [("c2", -750)] and "300 from call credit" in row[0]["ref"]
        assert lifecycle.charge_call(w.store, w.cfg, "c1") is None and w.n(TOLLFREE).call_credit == 0
        w.run("2026-04-10")                                                   # renewal: credit back, no roll-over
        assert w.n(TOLLFREE).call_credit == 1000 and renewals(w)[-1][3] == -150000
    finally:
        w.close()


def test_billing_run_rates_calls_left_unrated_once_and_never_calls_before_the_sale(w: World) -> None:
    lifecycle.import_rates(w.store, RATES_CSV)
    w.account(funds=1000000)
    w.number(TOLLFREE)
    w.account("tryer")
    lifecycle.trial(w.store, w.cfg, TOLLFREE, "tryer", 1, at(D("2026-03-09"), 10))
    _call(w, "trial", TOLLFREE, "+78432123456", 61, day="2026-03-09")          # during someone's free trial
    assert lifecycle.charge_call(w.store, w.cfg, "trial") is None
    w.run("2026-03-09", now=at(D("2026-03-09"), 12))                           # trial ended, number free again
    w.assign(TOLLFREE, "2026-03-10")
    balance = w.balance()
    _call(w, "left", TOLLFREE, "+78432123456", 61, day="2026-03-11")           # the engine did not rate it
    assert w.run("2026-03-12")["calls_rated"] == 1
    assert w.balance() == balance - 700 and w.store.calls.get("left")["cost"] == 700
    assert w.run("2026-03-12")["calls_rated"] == 0 and w.balance() == balance - 700
    assert w.store.calls.get("trial")["cost"] is None
    assert [r["call_id"] for r in w.ledger() if r["kind"] == "call"] == ["left"]
    assert w.ledger("tryer") == []


def test_the_engine_and_the_billing_run_rating_at_once_charge_each_call_once(tmp_path: Path) -> None:
    # the engine rates a call when it ends and the billing run rates whatever is unrated: both may meet on one call
    w = World(tmp_path)
    try:
        lifecycle.save_tariff(w.store, w.cfg, SEED.replace('monthly = "1 500"\ncall_credit = 0',
                                                           'monthly = "1 500"\ncall_credit = 100'))
        _tollfree_world(w, plan="standart")                   # 100.00 (10000) call credit
        balance = w.balance()
        calls = [_call(w, f"c{i}", TOLLFREE, "+74951234567", 30) for i in range(200)]   # 2.00 each
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def rate() -> None:
            try:
                with Store.open(w.db) as own:
                    start.wait()
                    for cid in calls:
                        lifecycle.charge_call(own, w.cfg, cid)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=rate) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        # 200 x 200 = 40000: the first 10000 from credit (50 calls), then 150 calls x 200 from the balance
        assert w.n(TOLLFREE).call_credit == 0
        assert w.balance() == balance - 30000
        assert len([r for r in w.ledger() if r["kind"] == "call"]) == 150
        assert all(w.store.calls.get(cid)["cost"] == 200 for cid in calls)
        assert w.store.accounts.mismatches() == []
    finally:
        w.close()


def test_the_seed_plans_and_their_credits() -> None:
    from vpbx.billing import parse_tariff

    plans = parse_tariff(SEED).plans
    assert {k: (p.name, p.monthly, p.call_credit, p.types) for k, p in plans.items()} == {
        "prosto": ("Просто", 100000, 20000, ("geographic", "mobile")),
        "standart": ("Стандарт", 150000, 0, ("tollfree",)),
    }


def test_a_call_that_takes_the_balance_below_zero_suspends(w: World) -> None:
    lifecycle.import_rates(w.store, RATES_CSV)
    w.account(funds=295000 + 150000)                          # exactly the toll-free order
    w.assign([TOLLFREE], "2026-03-10")
    assert lifecycle.charge_call(w.store, w.cfg, _call(w, "c1", TOLLFREE, "+74951234567", 30)) == 200
    assert (w.balance(), w.n(TOLLFREE).status) == (-200, "suspended")


def test_statement_shows_calls_minutes_and_adds_up(w: World) -> None:
    lifecycle.import_rates(w.store, RATES_CSV)
    w.account(funds=500000, on="2026-02-20")                   # February: opening for March
    w.assign(TOLLFREE, "2026-02-25")                           # 295000 + 150000 -> 55000
    lifecycle.charge_call(w.store, w.cfg, _call(w, "feb", TOLLFREE, "+74951234567", 30, day="2026-02-26"))  # 200
    end_of_feb = w.balance()
    assert end_of_feb == 54800
    lifecycle.charge_call(w.store, w.cfg, _call(w, "c1", TOLLFREE, "+78432123456", 61, day="2026-03-05"))  # 700
    lifecycle.charge_call(w.store, w.cfg, _call(w, "c2", TOLLFREE, "+79161234567", 125, day="2026-03-06"))  # 1050
    lifecycle.topup(w.store, "acme", 200000, "march", D("2026-03-20"))
    w.run("2026-03-25")                                        # renewal 150000 on the 25th
    end_of_mar = w.balance()
    assert end_of_mar == 54800 - 700 - 1050 + 200000 - 150000 == 103050
    lifecycle.topup(w.store, "acme", 1000, "april", D("2026-04-01"))

    feb = lifecycle.statement(w.store, "acme", "2026-02")
    assert (feb["opening_balance"], feb["topups"], feb["charges"], feb["closing_balance"]) == (0, 500000, 445200, 54800)
    assert feb["closing_balance"] == end_of_feb
    mar = lifecycle.statement(w.store, "acme", "2026-03")
    assert (mar["opening_balance"], mar["topups"], mar["charges"], mar["closing_balance"]) == (
        54800, 200000, 151750, 103050)
    assert mar["opening_balance"] + mar["topups"] - mar["charges"] == mar["closing_balance"] == end_of_mar
    assert mar["charges_by_kind"] == {"call": 1750, "renewal": 150000}
    assert (mar["calls"], mar["minutes"], mar["call_cost"]) == (2, 3.1, 1750)      # 186 s talked
    assert [e["kind"] for e in mar["entries"]] == ["call", "call", "topup", "renewal"]
    with pytest.raises(ValidationError, match="is not YYYY-MM"):
        lifecycle.statement(w.store, "acme", "2026-13")


# ---- concurrency --------------------------------------------------------------------------------------------------
def test_twenty_concurrent_topups_lose_nothing(w: World) -> None:
    w.account()
    start = threading.Barrier(20)
    errors: list[BaseException] = []

    def pay(i: int) -> None:
        try:
            with Store.open(w.db) as own:
                start.wait()
                lifecycle.topup(own, "acme", 100 * (i + 1), f"payment {i}", D("2026-03-10"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=pay, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert w.balance() == sum(100 * (i + 1) for i in range(20)) == 21000
    rows = w.ledger()
    assert len(rows) == 20 and sorted(r["amount"] for r in rows) == [100 * (i + 1) for i in range(20)]
    assert max(r["balance_after"] for r in rows) == 21000
    assert len({r["balance_after"] for r in rows}) == 20        # every row saw the balance the one before left
    assert w.store.accounts.mismatches() == []


# ---- accounts, organisation IDs, the extension map ----------------------------------------------------------------
def test_account_remove_is_refused_with_numbers_or_a_balance(w: World) -> None:
    w.account(funds=300000 + 1)
    w.assign(MOSCOW, "2026-03-10")
    before = w.snapshot()
    with pytest.raises(ConflictError, match=rf"account acme still holds \{MOSCOW}; release them"):
        w.store.accounts.close("acme")
    assert w.snapshot() == before
    lifecycle.release(w.store, w.cfg, MOSCOW, D("2026-03-11"))
    before = w.snapshot()
    with pytest.raises(ConflictError, match=r"account acme has a non-zero balance \(0.01\)") as exc:
        w.store.accounts.close("acme")
    # a top-up cannot be negative: the fix is a negative adjustment
    assert "refund it with `vpbx account adjust acme --ref refund -- -0.01` first" in str(exc.value)
    assert w.snapshot() == before
    lifecycle.topup(w.store, "acme", -1, "refund paid out", D("2026-03-12"), kind="adjustment")
    w.store.accounts.close("acme")
    assert [a.name for a in w.store.accounts.all()] == []


def test_account_remove_with_a_debt_points_to_a_top_up(w: World) -> None:
    w.account()
    lifecycle.topup(w.store, "acme", -250000, "old debt", D("2026-03-10"), kind="adjustment")
    with pytest.raises(ConflictError, match=r"account acme has a non-zero balance \(-2 500.00\); "
                                            r"collect it with `vpbx account topup acme 2500.00` first"):
        w.store.accounts.close("acme")
    assert w.balance() == -250000


def test_org_ids_are_unique_and_never_a_sip_extension(w: World) -> None:
    w.account("acme", org_id=500)
    with pytest.raises(ConflictError, match="organisation ID 500 is already account acme's"):
        w.store.accounts.add(Account("other", "o@example.com", 500))
    w.store.sip_accounts.add(SipAccount("101", "secret-password-1"))
    with pytest.raises(ConflictError, match="organisation ID 101 is SIP account 101's extension already"):
        w.store.accounts.add(Account("other", "o@example.com", 101))
    with pytest.raises(ConflictError, match="callers type 500 to reach an account's organisation ID"):
        w.store.sip_accounts.add(SipAccount("500", "secret-password-1"))
    w.store.accounts.add(Account("other", "o@example.com", 600))
    with pytest.raises(ConflictError, match="organisation ID 500 is already account acme's"):
        w.store.accounts.update("other", org_id=500)
    assert [(a.name, a.org_id) for a in w.store.accounts.all()] == [("acme", 500), ("other", 600)]


def test_extension_map_sends_an_org_id_to_the_accounts_active_number_route(w: World) -> None:
    w.account("acme", funds=300000, org_id=500)
    w.store.sip_accounts.add(SipAccount("101", "secret-password-1"))
    w.store.sip_accounts.add(SipAccount("alice", "secret-password-1"))
    assert extension_map(w.store) == {"101": "sip:101"}          # no active number yet: no org ID
    w.assign(MOSCOW, "2026-01-31")
    w.store.numbers.update([MOSCOW], route="sip:alice")
    assert extension_map(w.store) == {"101": "sip:101", "500": "sip:alice"}
    w.run("2026-02-28")                                          # suspended: the org ID no longer rings through
    assert w.n(MOSCOW).status == "suspended"
    assert extension_map(w.store) == {"101": "sip:101"}


# ---- tariffs ------------------------------------------------------------------------------------------------------
def test_tariff_in_another_currency_or_with_unknown_keys_is_refused(w: World) -> None:
    with pytest.raises(ValidationError, match="tariff currency USD is not this install's currency RUB"):
        lifecycle.save_tariff(w.store, w.cfg, SEED.replace('currency = "RUB"', 'currency = "USD"'))
    with pytest.raises(ValidationError, match=r"key 'connection\.areas' is unknown"):
        lifecycle.save_tariff(w.store, w.cfg, SEED.replace("[connection.area]", "[connection.areas]"))
    assert w.store.rates.tariff_source() == SEED


def test_tariff_dropping_a_plan_in_use_is_refused(w: World) -> None:
    w.account(funds=10000000)
    w.assign(MOSCOW, "2026-03-10", plan="prosto")
    text = SEED.replace("[plans.prosto]", "[plans.prosto2]")
    with pytest.raises(ValidationError, match="tariff has no plan prosto, which numbers are on"):
        lifecycle.save_tariff(w.store, w.cfg, text)
    assert w.store.rates.tariff_source() == SEED


def test_without_a_tariff_orders_are_refused_and_a_run_with_nothing_to_renew_works(tmp_path: Path) -> None:
    with Store.open(tmp_path / "v.db") as store:
        cfg = replace(new_config(tmp_path), db=tmp_path / "v.db")
        store.accounts.add(Account("acme", "a@example.com"))
        info = parse(MOSCOW)
        store.numbers.add(Number(MOSCOW, type=info.type, category=info.category, country=info.country))
        with pytest.raises(NotFoundError, match="no tariff is loaded; load one with `vpbx tariff load"):
            lifecycle.assign(store, cfg, [MOSCOW], "acme", D("2026-03-10"), end_user="Ivan Petrov")
        assert store.numbers.get(MOSCOW).status == "available" and store.accounts.entries() == []
        assert lifecycle.billing_run(store, cfg, D("2026-03-10"), at(D("2026-03-10")))["renewed"] == []


# ---- the invariants, under random sequences of operations ---------------------------------------------------------
POOL = (MOSCOW, SPB, TOLLFREE, MOBILE)
CALLERS = ("+78432123456", "+74951234567", "+79161234567", "+380441234567")
accounts_st = st.sampled_from(("a", "b"))
operations = st.one_of(
    st.tuples(st.just("topup"), accounts_st, st.integers(1, 400000)),
    st.tuples(st.just("adjust"), accounts_st, st.integers(-300000, 300000).filter(bool)),
    st.tuples(st.just("assign"), accounts_st, st.lists(st.sampled_from(POOL), min_size=1, max_size=3, unique=True),
              st.sampled_from((1, 3, 6, 12))),
    st.tuples(st.just("run"), st.integers(0, 70)),
    st.tuples(st.just("release"), st.sampled_from(POOL)),
    st.tuples(st.just("call"), st.sampled_from(POOL), st.sampled_from(CALLERS), st.integers(0, 600)),
    st.tuples(st.just("trial"), accounts_st, st.sampled_from(POOL)),
    st.tuples(st.just("reserve"), accounts_st, st.sampled_from(POOL)),
)


def _check_invariants(w: World) -> None:
    assert w.store.accounts.mismatches() == []
    for acct in w.store.accounts.all():
        rows = w.store.accounts.entries(acct.name)
        assert acct.balance == sum(r["amount"] for r in rows)
        assert all(r["balance_after"] == sum(x["amount"] for x in rows[:i + 1]) for i, r in enumerate(rows))
        held = w.store.numbers.held_by(acct.name)
        if acct.balance >= 0:
            assert [n.number for n in held if n.status == "suspended"] == []
        else:
            assert [n.number for n in held if n.status == "active"] == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operations, min_size=1, max_size=25), st.sampled_from(("prorate", "anniversary")))
def test_random_operations_keep_the_ledger_and_the_suspension_rule(ops: list[tuple], policy: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        w = World(Path(tmp), policy=policy)
        try:
            lifecycle.import_rates(w.store, RATES_CSV)
            for n in POOL:
                w.number(n)
            w.account("a")
            w.account("b")
            day, calls = D("2026-01-28"), 0
            for op in ops:
                rows_before = len(w.store.accounts.entries())
                try:
                    if op[0] == "topup":
                        lifecycle.topup(w.store, op[1], op[2], "", day)
                    elif op[0] == "adjust":
                        lifecycle.topup(w.store, op[1], op[2], "fix", day, kind="adjustment")
                    elif op[0] == "assign":
                        lifecycle.assign(w.store, w.cfg, op[2], op[1], day, end_user="Ivan Petrov", months=op[3])
                    elif op[0] == "run":
                        day += timedelta(days=op[1])
                        w.run(day)
                    elif op[0] == "release":
                        lifecycle.release(w.store, w.cfg, op[1], day)
                    elif op[0] == "trial":
                        lifecycle.trial(w.store, w.cfg, op[2], op[1], 1, at(day))
                    elif op[0] == "reserve":
                        lifecycle.reserve(w.store, [op[2]], op[1], 24, at(day))
                    else:
                        calls += 1
                        cid = _call(w, f"c{calls}", op[1], op[2], op[3], day=day.isoformat())
                        lifecycle.charge_call(w.store, w.cfg, cid)
                except (ConflictError, ValidationError):
                    assert len(w.store.accounts.entries()) == rows_before       # refused: nothing was posted
                _check_invariants(w)
        finally:
            w.close()

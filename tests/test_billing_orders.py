"""vpbx.billing.orders: quotes under both policies (month ends, leap years, the 31st), discounts, renewals."""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpbx.billing.orders import OrderLine, Quote, discount_percent, next_period, quote, renewal_charge
from vpbx.billing.periods import days_in_month, last_day_of_month, renewal_on
from vpbx.billing.tariff import Tariff, monthly_fee, parse_tariff
from vpbx.domain.errors import ValidationError

D = date
SEED = Path(__file__).resolve().parent.parent / "tariffs" / "seed-ru.toml"
MOSCOW = "+74951234567"       # connection 2 500.00
MOSCOW_499 = "+74991234567"   # connection 1 000.00


@pytest.fixture(scope="module")
def seed() -> Tariff:
    return parse_tariff(SEED.read_text(encoding="utf-8"))


def _tiny(prepay: str = "", volume: str = "") -> Tariff:
    """A tariff with kopeck-sized fees, to see rounding."""
    return parse_tariff(f"""
currency = "RUB"
[connection]
default = 0
[monthly.geographic]
regular = "0.03"
bronze = "0.10"
[discounts.prepay]
{prepay}
[discounts.volume]
{volume or 'min_numbers = 5' + chr(10) + 'percent = 0'}
""")


def _numbers(n: int) -> list[tuple[str, str, str, str | None]]:
    return [(f"+7495123456{i}", "geographic", "regular", None) for i in range(n)]


# ---------------------------------------------------------------------------------------------------------------------
# Anniversary


def test_anniversary_on_the_31st(seed: Tariff) -> None:
    q = quote(seed, [(MOSCOW, "geographic", "regular", None)], 1, "anniversary", D(2026, 1, 31))
    assert q == Quote(lines=(OrderLine(
        number=MOSCOW, connection_fee=250000, period_fee=50000, discount=0, total=300000,
        period_start=D(2026, 1, 31), paid_until=D(2026, 2, 27), anchor_day=31, monthly_fee=50000,
    ),), total=300000, discount_percent=0)
    assert next_period(31, q.lines[0].paid_until) == (D(2026, 2, 28), D(2026, 3, 30))


@pytest.mark.parametrize(("today", "months", "paid_until"), [
    (D(2026, 1, 31), 1, D(2026, 2, 27)),
    (D(2028, 1, 31), 1, D(2028, 2, 28)),     # renews 2028-02-29
    (D(2100, 1, 31), 1, D(2100, 2, 27)),     # renews 2100-02-28 (not leap)
    (D(2096, 1, 31), 1, D(2096, 2, 28)),     # renews 2096-02-29 (leap)
    (D(2028, 2, 29), 1, D(2028, 3, 28)),
    (D(2028, 2, 29), 12, D(2029, 2, 27)),    # renews 2029-02-28
    (D(2026, 1, 31), 3, D(2026, 4, 29)),
    (D(2026, 8, 31), 6, D(2027, 2, 27)),
    (D(2026, 11, 15), 1, D(2026, 12, 14)),
    (D(2026, 12, 1), 1, D(2026, 12, 31)),
])
def test_anniversary_paid_until(seed: Tariff, today: date, months: int, paid_until: date) -> None:
    line = quote(seed, [(MOSCOW, "geographic", "regular", None)], months, "anniversary", today).lines[0]
    assert (line.period_start, line.paid_until, line.anchor_day) == (today, paid_until, today.day)
    assert line.period_fee == 50000 * months


def test_anniversary_12_months_leap_day_with_prepay_discount(seed: Tariff) -> None:
    line = quote(seed, [(MOSCOW, "geographic", "regular", None)], 12, "anniversary", D(2028, 2, 29)).lines[0]
    # 12 x 500.00 = 6 000.00, 15 % off = 900.00, plus the undiscounted 2 500.00 connection
    assert (line.period_fee, line.discount, line.total) == (600000, 90000, 760000)


# ---------------------------------------------------------------------------------------------------------------------
# Prorate


@pytest.mark.parametrize(("today", "months", "period_fee", "paid_until"), [
    (D(2026, 1, 1), 1, 50000, D(2026, 1, 31)),             # the 1st: full month
    (D(2026, 1, 31), 1, 1613, D(2026, 1, 31)),             # 1/31 of 500.00
    (D(2026, 1, 16), 1, 25806, D(2026, 1, 31)),
    (D(2028, 2, 29), 1, 1724, D(2028, 2, 29)),             # 1/29 (leap)
    (D(2028, 2, 15), 1, 25862, D(2028, 2, 29)),            # 15/29
    (D(2100, 2, 28), 1, 1786, D(2100, 2, 28)),             # 1/28 (2100 not leap)
    (D(2100, 2, 15), 1, 25000, D(2100, 2, 28)),            # 14/28
    (D(2026, 1, 31), 3, 1613 + 100000, D(2026, 3, 31)),
    (D(2026, 11, 30), 3, 1667 + 100000, D(2027, 1, 31)),   # 1/30 = 16.67, over the year end
    (D(2027, 12, 31), 3, 1613 + 100000, D(2028, 2, 29)),   # ends on a leap day
    (D(2026, 7, 10), 6, 35484 + 250000, D(2026, 12, 31)),  # 22/31 = 354.84
    (D(2026, 2, 1), 12, 600000, D(2027, 1, 31)),
])
def test_prorate(seed: Tariff, today: date, months: int, period_fee: int, paid_until: date) -> None:
    line = quote(seed, [(MOSCOW, "geographic", "regular", None)], months, "prorate", today).lines[0]
    assert (line.period_fee, line.paid_until, line.anchor_day, line.period_start) == (period_fee, paid_until, 1, today)
    assert line.connection_fee == 250000


def test_prorate_3_months_in_a_leap_february_exact_total(seed: Tariff) -> None:
    q = quote(seed, [(MOSCOW_499, "geographic", "regular", None)], 3, "prorate", D(2028, 2, 15))
    # 15/29 of 500.00 = 258.62, + 2 x 500.00 = 1 258.62; 5 % = 62.931 -> 62.93; + 1 000.00 connection
    assert q.lines[0] == OrderLine(
        number=MOSCOW_499, connection_fee=100000, period_fee=125862, discount=6293, total=219569,
        period_start=D(2028, 2, 15), paid_until=D(2028, 4, 30), anchor_day=1, monthly_fee=50000,
    )
    assert (q.total, q.discount_percent) == (219569, 5)
    assert next_period(1, D(2028, 4, 30)) == (D(2028, 5, 1), D(2028, 5, 31))


# ---------------------------------------------------------------------------------------------------------------------
# Discounts


@pytest.mark.parametrize(("count", "months", "percent"), [
    (1, 1, 0), (1, 3, 5), (1, 6, 10), (1, 12, 15),
    (4, 1, 0), (5, 1, 5), (6, 1, 5),
    (5, 3, 10), (5, 6, 15), (5, 12, 20), (4, 12, 15),
])
def test_discount_percent(seed: Tariff, count: int, months: int, percent: int) -> None:
    assert discount_percent(seed, months, count) == percent
    q = quote(seed, _numbers(count), months, "anniversary", D(2026, 3, 10))
    assert q.discount_percent == percent
    assert all(line.discount == 50000 * months * percent // 100 for line in q.lines)   # whole kopecks here


def test_prepay_and_volume_together_exact(seed: Tariff) -> None:
    q = quote(seed, _numbers(5), 12, "anniversary", D(2026, 1, 31))
    # each: 12 x 500.00 = 6 000.00, 20 % off = 1 200.00, + 2 500.00 connection = 7 300.00
    assert [(ln.period_fee, ln.discount, ln.total) for ln in q.lines] == [(600000, 120000, 730000)] * 5
    assert (q.total, q.discount_percent) == (3650000, 20)
    assert {ln.paid_until for ln in q.lines} == {D(2027, 1, 30)}


def test_mixed_order_with_plans(seed: Tariff) -> None:
    items = [
        (MOSCOW, "geographic", "gold", None),             # 5 000.00/month
        (MOSCOW_499, "geographic", "gold", "prosto"),     # the plan: 1 000.00/month
        ("+78001234567", "tollfree", "regular", "standart"),
    ]
    q = quote(seed, items, 3, "anniversary", D(2026, 5, 20))
    assert [(ln.connection_fee, ln.monthly_fee, ln.period_fee, ln.discount, ln.total) for ln in q.lines] == [
        (250000, 500000, 1500000, 75000, 250000 + 1500000 - 75000),
        (100000, 100000, 300000, 15000, 100000 + 300000 - 15000),
        (295000, 150000, 450000, 22500, 295000 + 450000 - 22500),
    ]
    assert q.total == sum(ln.total for ln in q.lines) == 2782500


def test_discount_capped_at_100_and_never_touches_connection() -> None:
    t = parse_tariff("""
currency = "RUB"
[connection]
default = 700
[monthly.geographic]
regular = 100
[discounts.prepay]
12 = 90
[discounts.volume]
min_numbers = 2
percent = 20
""")
    q = quote(t, _numbers(2), 12, "anniversary", D(2026, 1, 1))
    assert q.discount_percent == 100
    assert [(ln.period_fee, ln.discount, ln.total) for ln in q.lines] == [(120000, 120000, 70000)] * 2
    assert q.total == 140000


def test_discount_rounds_half_up_per_line() -> None:
    t = _tiny(prepay="3 = 50")
    line = quote(t, [(MOSCOW, "geographic", "regular", None)], 3, "anniversary", D(2026, 1, 1)).lines[0]
    # 3 x 0.03 = 0.09; 50 % = 4.5 kopecks -> 5 (half up; half-even or truncation would give 4)
    assert (line.period_fee, line.discount, line.total) == (9, 5, 4)
    t = _tiny(volume="min_numbers = 2\npercent = 5")
    q = quote(t, [(MOSCOW, "geographic", "bronze", None), (MOSCOW_499, "geographic", "bronze", None)], 1,
              "anniversary", D(2026, 1, 1))
    # 0.10 each, 5 % = 0.5 kopeck -> 1 kopeck per line (not 1 kopeck on the 0.20 total)
    assert [(ln.discount, ln.total) for ln in q.lines] == [(1, 9), (1, 9)]
    assert q.total == 18


# ---------------------------------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"months": 2}, "months 2 cannot be ordered; choose 1, 3, 6 or 12"),
    ({"months": 24}, "months 24"),
    ({"months": True}, "months True"),
    ({"policy": "monthly"}, "billing policy 'monthly' is unknown"),
    ({"items": []}, "no numbers"),
    ({"items": [(MOSCOW, "geographic", "regular", None)] * 2}, rf"number \{MOSCOW} is in the order twice"),
    ({"items": [(MOSCOW, "geographic", "regular", "nope")]}, "plan 'nope' is not in the tariff"),
    ({"items": [(MOSCOW, "geographic", "regular", "standart")]}, "plan 'standart' is not for geographic"),
    ({"items": [(MOSCOW, "geographic", "regular")]}, "must be \\(number, type, category, plan"),
    ({"items": [("74951234567", "geographic", "regular", None)]}, "not E.164"),
    ({"today": "2026-01-01"}, "order date"),
])
def test_quote_refuses(seed: Tariff, kwargs: dict[str, object], fragment: str) -> None:
    args: dict[str, object] = {"items": [(MOSCOW, "geographic", "regular", None)], "months": 1,
                               "policy": "prorate", "today": D(2026, 1, 1)}
    args.update(kwargs)
    with pytest.raises(ValidationError, match=fragment):
        quote(seed, **args)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------------
# Renewals


def test_renewal_charge_equals_monthly_fee(seed: Tariff) -> None:
    assert renewal_charge(seed, "geographic", "gold", None) == 500000
    assert renewal_charge(seed, "geographic", "gold", "prosto") == 100000
    assert renewal_charge(seed, "tollfree", "regular", None) == monthly_fee(seed, "tollfree", "regular") == 150000


@pytest.mark.parametrize(("anchor", "paid_until", "expected"), [
    (31, D(2026, 2, 27), (D(2026, 2, 28), D(2026, 3, 30))),
    (31, D(2026, 3, 30), (D(2026, 3, 31), D(2026, 4, 29))),
    (1, D(2026, 1, 31), (D(2026, 2, 1), D(2026, 2, 28))),
    (1, D(2028, 1, 31), (D(2028, 2, 1), D(2028, 2, 29))),
    (29, D(2028, 3, 28), (D(2028, 3, 29), D(2028, 4, 28))),
    (29, D(2100, 1, 28), (D(2100, 1, 29), D(2100, 2, 27))),
    (15, D(2026, 12, 14), (D(2026, 12, 15), D(2027, 1, 14))),
])
def test_next_period(anchor: int, paid_until: date, expected: tuple[date, date]) -> None:
    assert next_period(anchor, paid_until) == expected


def test_renewals_of_a_31st_number_stay_on_month_ends(seed: Tariff) -> None:
    line = quote(seed, [(MOSCOW, "geographic", "regular", None)], 1, "anniversary", D(2027, 10, 31)).lines[0]
    renewals, paid_until = [], line.paid_until
    for _ in range(6):
        start, paid_until = next_period(line.anchor_day, paid_until)
        renewals.append(start)
    assert renewals == [D(2027, 11, 30), D(2027, 12, 31), D(2028, 1, 31), D(2028, 2, 29), D(2028, 3, 31),
                        D(2028, 4, 30)]


def test_next_period_refuses_bad_anchor() -> None:
    with pytest.raises(ValidationError, match="anchor day 0"):
        next_period(0, D(2026, 1, 1))


# ---------------------------------------------------------------------------------------------------------------------
# Properties

CATS = st.sampled_from(["regular", "bronze", "silver", "gold", "platinum"])


@given(
    today=st.dates(min_value=D(1990, 1, 1), max_value=D(2199, 1, 1)),
    months=st.sampled_from([1, 3, 6, 12]),
    policy=st.sampled_from(["prorate", "anniversary"]),
    cats=st.lists(CATS, min_size=1, max_size=7),
)
def test_quote_invariants(today: date, months: int, policy: str, cats: list[str]) -> None:
    t = parse_tariff(SEED.read_text(encoding="utf-8"))
    items = [(f"+7495123450{i}", "geographic", c, None) for i, c in enumerate(cats)]
    q = quote(t, items, months, policy, today)
    assert q.total == sum(ln.total for ln in q.lines)
    assert q.discount_percent == discount_percent(t, months, len(items))
    for ln, cat in zip(q.lines, cats, strict=True):
        monthly = monthly_fee(t, "geographic", cat)
        assert ln.total == ln.connection_fee + ln.period_fee - ln.discount
        assert ln.connection_fee == 250000
        assert 0 <= ln.discount <= ln.period_fee <= monthly * months
        assert abs(200 * ln.discount - 2 * ln.period_fee * q.discount_percent) <= 100   # within half a kopeck
        assert ln.period_start == today <= ln.paid_until
        start, end = next_period(ln.anchor_day, ln.paid_until)
        # the first renewal falls on the anchor day (or the last day of a shorter month)
        assert start == renewal_on(ln.anchor_day, start.year, start.month)
        assert end >= start
        if policy == "prorate":
            assert ln.paid_until == last_day_of_month(ln.paid_until) and start.day == 1
        else:
            assert ln.period_fee == monthly * months and ln.anchor_day == today.day
            assert start.day == min(today.day, days_in_month(start.year, start.month))
        assert (ln.paid_until - today).days + 1 <= 31 * months
        assert ln.paid_until + timedelta(days=1) == start

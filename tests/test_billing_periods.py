"""vpbx.billing.periods: anchored renewal days, period ends, prorated first months (month ends, leap years)."""
from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpbx.billing.periods import (
    add_months,
    days_in_month,
    last_day_of_month,
    period_end,
    prorated,
    renewal_on,
)
from vpbx.domain.errors import ValidationError

D = date
dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31))
anchors = st.integers(min_value=1, max_value=31)


@pytest.mark.parametrize(("anchor", "year", "month", "expected"), [
    (31, 2028, 2, D(2028, 2, 29)),   # leap year
    (31, 2026, 2, D(2026, 2, 28)),
    (31, 2100, 2, D(2100, 2, 28)),   # 2100 is not a leap year
    (29, 2100, 2, D(2100, 2, 28)),
    (29, 2028, 2, D(2028, 2, 29)),
    (29, 2000, 2, D(2000, 2, 29)),   # 2000 is (divisible by 400)
    (30, 2026, 2, D(2026, 2, 28)),
    (31, 2026, 4, D(2026, 4, 30)),
    (31, 2026, 3, D(2026, 3, 31)),
    (31, 2026, 12, D(2026, 12, 31)),
    (15, 2026, 2, D(2026, 2, 15)),
    (1, 2026, 2, D(2026, 2, 1)),
    (28, 2026, 2, D(2026, 2, 28)),
])
def test_renewal_on(anchor: int, year: int, month: int, expected: date) -> None:
    assert renewal_on(anchor, year, month) == expected


@pytest.mark.parametrize(("args", "fragment"), [
    ((0, 2026, 1), "anchor day 0"),
    ((32, 2026, 1), "anchor day 32"),
    ((True, 2026, 1), "anchor day True"),
    ((15, 2026, 13), "month 13"),
    ((15, 2026, 0), "month 0"),
])
def test_renewal_on_refuses(args: tuple[int, int, int], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        renewal_on(*args)


@pytest.mark.parametrize(("year", "month", "n", "expected"), [
    (2026, 11, 3, (2027, 2)),
    (2026, 1, -1, (2025, 12)),
    (2026, 12, 1, (2027, 1)),
    (2026, 5, 0, (2026, 5)),
    (2026, 1, 24, (2028, 1)),
    (2026, 3, -15, (2024, 12)),
    (2026, 1, 11, (2026, 12)),
    (2026, 1, 12, (2027, 1)),
])
def test_add_months(year: int, month: int, n: int, expected: tuple[int, int]) -> None:
    assert add_months(year, month, n) == expected


def test_add_months_refuses_bad_input() -> None:
    with pytest.raises(ValidationError, match="month 13"):
        add_months(2026, 13, 1)
    with pytest.raises(ValidationError, match="not an int"):
        add_months(2026, 1, 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(("anchor", "start", "months", "expected"), [
    (31, D(2026, 1, 31), 1, D(2026, 2, 27)),    # next renewal 2026-02-28
    (15, D(2026, 11, 15), 1, D(2026, 12, 14)),
    (15, D(2026, 12, 15), 1, D(2027, 1, 14)),   # over the year end
    (31, D(2028, 1, 31), 1, D(2028, 2, 28)),    # next renewal 2028-02-29 (leap)
    (31, D(2026, 2, 28), 1, D(2026, 3, 30)),    # renewal from a short month back to the 31st
    (30, D(2028, 1, 30), 1, D(2028, 2, 28)),
    (29, D(2100, 1, 29), 1, D(2100, 2, 27)),    # 2100-02-28 renewal (not leap)
    (29, D(2096, 1, 29), 1, D(2096, 2, 28)),    # 2096-02-29 renewal (leap)
    (29, D(2028, 2, 29), 1, D(2028, 3, 28)),
    (31, D(2026, 1, 31), 3, D(2026, 4, 29)),    # renewal 2026-04-30
    (31, D(2026, 1, 31), 6, D(2026, 7, 30)),
    (29, D(2028, 2, 29), 12, D(2029, 2, 27)),   # renewal 2029-02-28
    (31, D(2027, 12, 31), 2, D(2028, 2, 28)),
    (1, D(2026, 12, 1), 1, D(2026, 12, 31)),
    (1, D(2026, 1, 1), 12, D(2026, 12, 31)),
])
def test_period_end(anchor: int, start: date, months: int, expected: date) -> None:
    assert period_end(anchor, start, months) == expected


def test_period_end_refuses_bad_input() -> None:
    with pytest.raises(ValidationError, match="period length 0"):
        period_end(1, D(2026, 1, 1), 0)
    with pytest.raises(ValidationError, match="not a date"):
        period_end(1, datetime(2026, 1, 1), 1)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not a date"):
        period_end(1, "2026-01-01", 1)  # type: ignore[arg-type]


def test_anchor_31_renews_on_month_ends_without_drifting() -> None:
    start, starts = D(2026, 1, 31), []
    for _ in range(14):
        starts.append(start)
        start = period_end(31, start) + timedelta(days=1)
    assert starts == [D(2026, 1, 31), D(2026, 2, 28), D(2026, 3, 31), D(2026, 4, 30), D(2026, 5, 31), D(2026, 6, 30),
                      D(2026, 7, 31), D(2026, 8, 31), D(2026, 9, 30), D(2026, 10, 31), D(2026, 11, 30),
                      D(2026, 12, 31), D(2027, 1, 31), D(2027, 2, 28)]


@pytest.mark.parametrize(("d", "expected"), [
    (D(2028, 2, 10), D(2028, 2, 29)),
    (D(2100, 2, 1), D(2100, 2, 28)),
    (D(2000, 2, 1), D(2000, 2, 29)),
    (D(2026, 12, 5), D(2026, 12, 31)),
    (D(2026, 4, 30), D(2026, 4, 30)),
    (D(2026, 1, 1), D(2026, 1, 31)),
])
def test_last_day_of_month(d: date, expected: date) -> None:
    assert last_day_of_month(d) == expected


def test_days_in_month() -> None:
    assert [days_in_month(2028, m) for m in range(1, 13)] == [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    assert days_in_month(2100, 2) == 28
    assert days_in_month(2026, 2) == 28


@pytest.mark.parametrize(("fee", "start", "expected"), [
    (50000, D(2026, 1, 1), 50000),       # the 1st: the full fee
    (50000, D(2026, 1, 31), 1613),       # 1/31 of 500.00 = 16.129 -> 16.13
    (50000, D(2026, 1, 16), 25806),      # 16/31 = 258.0645
    (50000, D(2028, 2, 15), 25862),      # 15/29 (leap February) = 258.6206
    (50000, D(2028, 2, 29), 1724),       # 1/29 = 17.241
    (50000, D(2100, 2, 15), 25000),      # 14/28 (2100 is not leap) exactly half
    (50000, D(2100, 2, 28), 1786),       # 1/28 = 17.857
    (100000, D(2026, 4, 30), 3333),      # 1/30 = 33.333
    (1, D(2026, 2, 15), 1),              # 14/28 of 1 kopeck = 0.5 -> rounds half up to 1
    (3, D(2026, 4, 26), 1),              # 5/30 of 3 = 0.5 -> 1
    (3, D(2026, 4, 27), 0),              # 4/30 of 3 = 0.4 -> 0
    (0, D(2026, 4, 27), 0),
])
def test_prorated(fee: int, start: date, expected: int) -> None:
    assert prorated(fee, start) == expected


@pytest.mark.parametrize("fee", [-1, 1.5, True, "500"])
def test_prorated_refuses_bad_fee(fee: object) -> None:
    with pytest.raises(ValidationError, match="monthly fee"):
        prorated(fee, D(2026, 1, 1))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------------
# Properties


@given(st.integers(min_value=0, max_value=10**14), dates)
def test_prorated_first_day_is_the_full_fee(fee: int, d: date) -> None:
    assert prorated(fee, d.replace(day=1)) == fee


@given(st.integers(min_value=0, max_value=10**14), dates)
def test_prorated_is_monotone_and_bounded(fee: int, d: date) -> None:
    first = d.replace(day=1)
    fees = [prorated(fee, first + timedelta(days=i)) for i in range(days_in_month(d.year, d.month))]
    assert all(a >= b for a, b in itertools.pairwise(fees))
    assert all(0 <= x <= fee for x in fees)


@given(st.integers(min_value=0, max_value=10**14), dates)
def test_prorated_is_within_half_a_kopeck_of_exact(fee: int, d: date) -> None:
    dim = days_in_month(d.year, d.month)
    days_left = dim - d.day + 1
    # |p - fee * days_left / dim| <= 1/2, in integers
    assert abs(2 * dim * prorated(fee, d) - 2 * fee * days_left) <= dim


@given(anchors, dates, st.integers(min_value=1, max_value=12))
def test_period_end_is_after_start_and_next_renewal_is_anchored(anchor: int, start: date, months: int) -> None:
    end = period_end(anchor, start, months)
    renewal = end + timedelta(days=1)
    assert end >= start
    assert (renewal.year, renewal.month) == add_months(start.year, start.month, months)
    assert renewal == renewal_on(anchor, renewal.year, renewal.month)
    assert renewal.day == min(anchor, days_in_month(renewal.year, renewal.month))


@given(anchors, dates, st.integers(min_value=1, max_value=12))
def test_anchored_periods_chain_month_by_month(anchor: int, d: date, months: int) -> None:
    start = renewal_on(anchor, d.year, d.month)   # a period starting on a renewal day
    chained = start
    for _ in range(months):
        end = period_end(anchor, chained, 1)
        assert 28 <= (end - chained).days + 1 <= 31      # one anchored month is 28-31 days long
        chained = end + timedelta(days=1)
    assert period_end(anchor, start, months) == chained - timedelta(days=1)

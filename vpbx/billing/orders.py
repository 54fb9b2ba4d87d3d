"""Orders: what connecting numbers costs today (a Quote), what a renewal charges, and which period it pays for.

Rule: pure, no SQL, no I/O, no Click, no asyncio, no clock: the caller passes `today` and charges the Quote in one
transaction. The rules, one per line:

* months is 1, 3, 6 or 12; policy is "prorate" or "anniversary"; an order has at least one number, each once.
* monthly = monthly_fee(tariff, type, category, plan); connection = connection_fee(tariff, number, type).
* anniversary: anchor_day = today.day; period_fee = monthly * months;
  paid_until = period_end(anchor_day, today, months)  (the day before the renewal `months` months on).
* prorate: anchor_day = 1; period_fee = prorated(monthly, today) + monthly * (months - 1);
  paid_until = the last day of the month (months - 1) months after today's month.
* discount percent = prepay_discounts[months] (0 when absent) + volume_percent when the order has at least
  volume_min_numbers numbers, capped at 100. It applies to period_fee only, never to the connection fee; each line's
  discount = period_fee * percent / 100 rounded half up to a minor unit.
* line total = connection + period_fee - discount; Quote.total = sum of line totals.
* Renewals: on paid_until + 1 day the number is charged renewal_charge() (= monthly_fee, no discounts) for
  next_period(anchor_day, paid_until) = (paid_until + 1 day, the end of one month anchored on anchor_day).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from vpbx.billing.money import div_half_up
from vpbx.billing.periods import (
    ONE_DAY,
    _check_anchor,
    _check_date,
    add_months,
    last_day_of_month,
    period_end,
    prorated,
)
from vpbx.billing.tariff import Tariff, connection_fee, monthly_fee
from vpbx.domain.errors import ValidationError

ORDER_MONTHS = (1, 3, 6, 12)
POLICIES = ("prorate", "anniversary")


@dataclass(frozen=True)
class OrderLine:
    """One number of a Quote; amounts in int minor units. Covers period_start .. paid_until inclusive."""

    number: str
    connection_fee: int
    period_fee: int
    discount: int
    total: int
    period_start: date
    paid_until: date
    anchor_day: int
    monthly_fee: int = 0  # the monthly fee the period was priced at (what renewal_charge() returns today)


@dataclass(frozen=True)
class Quote:
    """The price of an order: one line per number, the sum, and the discount percent applied to every line."""

    lines: tuple[OrderLine, ...]
    total: int
    discount_percent: int


def discount_percent(t: Tariff, months: int, count: int) -> int:
    """Prepay percent for `months` plus the volume percent when `count` numbers reach the minimum, capped at 100."""
    volume = t.volume_percent if count >= t.volume_min_numbers else 0
    return min(100, t.prepay_discounts.get(months, 0) + volume)


def quote(
    t: Tariff,
    items: Sequence[tuple[str, str, str, str | None]],  # (number, type, category, plan)
    months: int,
    policy: str,  # "prorate" | "anniversary"
    today: date,
) -> Quote:
    """Price connecting `items` today for `months` months under `policy` (the rules are in the module docstring)."""
    if isinstance(months, bool) or months not in ORDER_MONTHS:
        raise ValidationError(f"months {months!r} cannot be ordered; choose 1, 3, 6 or 12")
    if policy not in POLICIES:
        raise ValidationError(f"billing policy {policy!r} is unknown; set it to prorate or anniversary")
    _check_date(today, "order date")
    if not items:
        raise ValidationError("the order has no numbers; give at least one number")
    seen: set[str] = set()
    for item in items:
        if len(item) != 4:
            raise ValidationError(f"order item {item!r} must be (number, type, category, plan or None)")
        if item[0] in seen:
            raise ValidationError(f"number {item[0]} is in the order twice; list each number once")
        seen.add(item[0])

    percent = discount_percent(t, months, len(items))
    if policy == "anniversary":
        anchor = today.day
        paid_until = period_end(anchor, today, months)
    else:
        anchor = 1
        y, m = add_months(today.year, today.month, months - 1)
        paid_until = last_day_of_month(date(y, m, 1))

    lines: list[OrderLine] = []
    for number, type, category, plan in items:
        monthly = monthly_fee(t, type, category, plan)
        connection = connection_fee(t, number, type)
        first = monthly if policy == "anniversary" else prorated(monthly, today)
        period_fee = first + monthly * (months - 1)
        discount = div_half_up(period_fee * percent, 100)
        lines.append(OrderLine(
            number=number,
            connection_fee=connection,
            period_fee=period_fee,
            discount=discount,
            total=connection + period_fee - discount,
            period_start=today,
            paid_until=paid_until,
            anchor_day=anchor,
            monthly_fee=monthly,
        ))
    return Quote(lines=tuple(lines), total=sum(line.total for line in lines), discount_percent=percent)


def renewal_charge(t: Tariff, type: str, category: str, plan: str | None) -> int:
    """What a renewal charges for one month: the monthly fee (one function so billing runs and orders agree)."""
    return monthly_fee(t, type, category, plan)


def next_period(anchor_day: int, paid_until: date) -> tuple[date, date]:
    """The period a renewal pays for: (paid_until + 1 day, the last day of one month from there on anchor_day)."""
    _check_anchor(anchor_day)
    _check_date(paid_until, "paid-until date")
    start = paid_until + ONE_DAY
    return start, period_end(anchor_day, start, 1)

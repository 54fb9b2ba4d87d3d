"""Billing periods: renewal days anchored to a day of the month, period ends, prorated first months.

Rule: pure date arithmetic on datetime.date, no SQL, no I/O, no Click, no asyncio, no clock (callers pass `today`).

An anchor day is the day of the month a number renews on (the connection day). Anchors 29-31 fall on the last day of
shorter months, without drifting: anchor 31 renews 01-31, 02-28 (02-29 in leap years), 03-31, 04-30, ...
A period starting on `start` and running `months` months ends the day before the renewal `months` months later.
"""
from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta

from vpbx.billing.money import div_half_up
from vpbx.domain.errors import ValidationError

ONE_DAY = timedelta(days=1)


def _check_date(d: date, what: str) -> None:
    if isinstance(d, datetime) or not isinstance(d, date):
        raise ValidationError(f"{what} {d!r} is not a date; pass a datetime.date (e.g. datetime.date(2026, 1, 31))")


def _check_month(year: int, month: int) -> None:
    if isinstance(month, bool) or not isinstance(month, int) or not 1 <= month <= 12:
        raise ValidationError(f"month {month!r} is not 1-12")
    if isinstance(year, bool) or not isinstance(year, int) or not 1 <= year <= 9999:
        raise ValidationError(f"year {year!r} is not 1-9999")


def _check_anchor(anchor_day: int) -> None:
    if isinstance(anchor_day, bool) or not isinstance(anchor_day, int) or not 1 <= anchor_day <= 31:
        raise ValidationError(f"anchor day {anchor_day!r} is not a day of the month; give 1-31")


def days_in_month(year: int, month: int) -> int:
    """Number of days in that month (Feb 2028 -> 29, Feb 2100 -> 28)."""
    _check_month(year, month)
    return calendar.monthrange(year, month)[1]


def last_day_of_month(d: date) -> date:
    """The last day of d's month."""
    _check_date(d, "date")
    return d.replace(day=days_in_month(d.year, d.month))


def add_months(year: int, month: int, n: int) -> tuple[int, int]:
    """(year, month) moved by n months (n may be negative): add_months(2026, 11, 3) -> (2027, 2)."""
    _check_month(year, month)
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValidationError(f"month count {n!r} is not an int")
    y, m0 = divmod(year * 12 + (month - 1) + n, 12)
    _check_month(y, m0 + 1)
    return y, m0 + 1


def renewal_on(anchor_day: int, year: int, month: int) -> date:
    """The renewal date of that month for an anchor day: the anchor day, or the month's last day when it is shorter."""
    _check_anchor(anchor_day)
    return date(year, month, min(anchor_day, days_in_month(year, month)))


def next_renewal(anchor_day: int, after: date) -> date:
    """The first renewal day of `anchor_day` strictly after `after` (anchor 31, 2026-02-10 -> 2026-02-28;
    2026-02-28 -> 2026-03-31): when a plan's monthly call credit is next refilled."""
    _check_date(after, "date")
    this = renewal_on(anchor_day, after.year, after.month)
    if this > after:
        return this
    y, m = add_months(after.year, after.month, 1)
    return renewal_on(anchor_day, y, m)


def period_end(anchor_day: int, start: date, months: int = 1) -> date:
    """The last day covered by a period starting on `start` that runs `months` months anchored on `anchor_day`:
    the day before the renewal `months` months after start's month (anchor 31, 2026-01-31, 1 month -> 2026-02-27)."""
    _check_date(start, "period start")
    if isinstance(months, bool) or not isinstance(months, int) or months < 1:
        raise ValidationError(f"period length {months!r} is not a positive number of months")
    y, m = add_months(start.year, start.month, months)
    return renewal_on(anchor_day, y, m) - ONE_DAY


def prorated(monthly_fee: int, start: date) -> int:
    """The fee for `start` .. the last day of its month inclusive: monthly_fee * days_left / days_in_month, rounded
    half up; days_left counts `start` itself, so starting on the 1st costs the full fee."""
    _check_date(start, "start date")
    if isinstance(monthly_fee, bool) or not isinstance(monthly_fee, int) or monthly_fee < 0:
        raise ValidationError(f"monthly fee {monthly_fee!r} is not a non-negative int amount of minor units")
    dim = days_in_month(start.year, start.month)
    days_left = dim - start.day + 1
    return div_half_up(monthly_fee * days_left, dim)

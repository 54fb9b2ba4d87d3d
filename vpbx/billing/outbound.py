"""Outbound rating: the destination's prefix -> its rate (longest prefix wins), billed intervals, cost, and how long a
sum of money lets a call talk.

Rule: pure, no SQL, no I/O, no Click, no asyncio: `parse_outbound_rates_csv` takes the CSV's text, the table is built
from the rates the caller loaded. Money is int minor units, never a float.

A rate is a price per minute with a billing increment "INITIAL/NEXT" (seconds): the first INITIAL seconds are billed
whole as soon as the call is answered, then every started NEXT seconds (60/60 per started minute, 30/6, 1/1 per
second); a connection charge is added once to an answered call. An unanswered call (0 s) costs nothing.

    billed_seconds(61, 30, 6) -> 66        outbound_cost(rate, seconds) -> connection + price * billed / 60 (half up)
    affordable_seconds(rate, money)        the most whole-interval talk `money` pays for (0: not even the first)
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vpbx.billing.money import div_half_up
from vpbx.billing.rating import (
    MAX_PREFIX_DIGITS,
    FirstLines,
    PrefixMap,
    csv_amount,
    csv_description,
    csv_prefix,
    csv_records,
    csv_width,
    is_prefix,
)
from vpbx.domain.errors import ValidationError
from vpbx.domain.validation import printable_text, shown

UNLIMITED_SECONDS = 24 * 3600    # what a free rate affords, and the cap of every affordable_seconds
MAX_INTERVAL = 3600              # the longest INITIAL or NEXT interval of an increment, in seconds
DEFAULT_INCREMENT = (60, 60)
INCREMENT_SYNTAX = 'INITIAL/NEXT seconds like "60/60", "30/6" or "1/1" (or N for N/N)'
OPTIONAL_COLUMNS = ("increment", "connection", "description")
HEADER_SYNTAX = "prefix,price, then any of increment, connection, description (once each, in any order)"


def _seconds(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and 1 <= value <= MAX_INTERVAL


def _minor(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 0


@dataclass(frozen=True)
class OutboundRate:
    """The rate of calls to numbers starting with `prefix` (digits, no "+")."""

    prefix: str
    price: int                   # per minute, minor units
    initial: int = 60            # seconds billed whole when the call is answered ...
    increment: int = 60          # ... then every started `increment` seconds: "60/60", "30/6", "1/1"
    connection: int = 0          # minor units, charged once when the call is answered
    description: str = ""

    def __post_init__(self) -> None:
        if not is_prefix(self.prefix):
            raise ValidationError(f"outbound rate prefix {shown(self.prefix)} must be 1-{MAX_PREFIX_DIGITS} digits "
                                  f"(no +, spaces or dashes)")
        where = f"outbound rate {self.prefix}"
        if not _minor(self.price):
            raise ValidationError(f"{where}: price {self.price!r} must be a non-negative int of minor units")
        if not _minor(self.connection):
            raise ValidationError(f"{where}: connection charge {self.connection!r} must be a non-negative int of "
                                  f"minor units")
        if not (_seconds(self.initial) and _seconds(self.increment)):
            raise ValidationError(f"{where}: increment {self.initial!r}/{self.increment!r} must be two whole numbers "
                                  f"of seconds, 1-{MAX_INTERVAL} each")
        printable_text("description", self.description, obj=where)

    @property
    def free(self) -> bool:
        return self.price == 0 and self.connection == 0


def format_increment(initial: int, increment: int) -> str:
    """(30, 6) -> "30/6"."""
    return f"{initial}/{increment}"


def parse_increment(text: str) -> tuple[int, int]:
    """"30/6" -> (30, 6); "60" -> (60, 60). Whole seconds, 1-MAX_INTERVAL each; ValidationError otherwise."""
    parts = text.strip(" ").split("/") if isinstance(text, str) else []
    if not 1 <= len(parts) <= 2 or not all(p.strip(" ").isascii() and p.strip(" ").isdigit() for p in parts):
        raise ValidationError(f"increment {shown(text)} is not {INCREMENT_SYNTAX}")
    initial, increment = int(parts[0]), int(parts[-1])
    if not (_seconds(initial) and _seconds(increment)):
        raise ValidationError(f"increment {shown(text)} is out of range; each interval is 1-{MAX_INTERVAL} seconds")
    return initial, increment


def billed_seconds(seconds: int, initial: int, increment: int) -> int:
    """The seconds a call of `seconds` talk is billed for: 0 -> 0; 1..initial -> initial; longer: initial plus every
    started `increment` (61 s at 60/60 -> 120; 61 s at 30/6 -> 66; 61 s at 1/1 -> 61)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        raise ValidationError(f"call duration {seconds!r} must be a non-negative int of seconds")
    for name, value in (("initial interval", initial), ("billing increment", increment)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(f"{name} {value!r} must be a positive int of seconds")
    if seconds == 0:
        return 0
    if seconds <= initial:
        return initial
    return initial + -(-(seconds - initial) // increment) * increment


def outbound_cost(rate: OutboundRate, seconds: int) -> int:
    """What a call of `seconds` talk at `rate` costs: 0 when it was not answered (0 s), else the connection charge
    plus the per-minute price pro rata for the billed seconds, rounded half up to a minor unit."""
    billed = billed_seconds(seconds, rate.initial, rate.increment)
    if billed == 0:
        return 0
    return rate.connection + div_half_up(rate.price * billed, 60)


def _last_interval_end(rate: OutboundRate, limit: int) -> int:
    """The largest billed_seconds value (an interval's end) not above `limit`; 0 when even the first is longer."""
    if limit < rate.initial:
        return 0
    return rate.initial + (limit - rate.initial) // rate.increment * rate.increment


def affordable_seconds(rate: OutboundRate, money: int) -> int:
    """The most talk seconds `money` (minor units) pays for at `rate`, in whole intervals: the largest billed_seconds
    value whose `outbound_cost` is at most `money`; 0 when it cannot pay the connection charge and the first interval
    (a negative `money`, an account in debt, pays nothing). Every result, a free rate's too, is capped at the last
    interval end within UNLIMITED_SECONDS."""
    if isinstance(money, bool) or not isinstance(money, int):
        raise ValidationError(f"money {money!r} must be an int of minor units")
    left = money - rate.connection
    if left < 0:                 # in debt, or short of the connection charge
        return 0
    cap = _last_interval_end(rate, UNLIMITED_SECONDS)
    if rate.price == 0:          # a free rate, or one that costs only its connection charge
        return cap
    # div_half_up(price * s, 60) <= left  <=>  (price * s + 30) // 60 <= left  <=>  price * s <= 60 * left + 29
    return _last_interval_end(rate, min((60 * left + 29) // rate.price, cap))


class OutboundRateTable(PrefixMap[OutboundRate]):
    """Longest-prefix match of destinations against the outbound rates (PrefixMap: a few dict probes a lookup)."""

    __slots__ = ()

    def __init__(self, rates: Iterable[OutboundRate]) -> None:
        by_prefix: dict[str, OutboundRate] = {}
        for rate in rates:
            if not isinstance(rate, OutboundRate):
                raise ValidationError(f"outbound rate table: {shown(rate)} is not an OutboundRate")
            if rate.prefix in by_prefix:
                raise ValidationError(f"outbound rate prefix {rate.prefix} is listed twice; keep one rate per prefix")
            by_prefix[rate.prefix] = rate
        super().__init__(by_prefix)

    def lookup(self, number: str) -> OutboundRate | None:
        """The rate of the longest prefix of `number` ("+4930..." or digits), None when none matches."""
        hit = self.match(number)
        return hit[1] if hit is not None else None


def _header(row: list[str], where: str) -> dict[str, int]:
    """The header's columns -> their index; prefix and price first, the optional ones once each, in any order."""
    names = [cell.strip(" ").lower() for cell in row]
    rest = names[2:]
    if names[:2] != ["prefix", "price"] or any(n not in OPTIONAL_COLUMNS for n in rest) or len(set(rest)) < len(rest):
        hint = " (separate columns with commas, not semicolons)" if ";" in ",".join(row) else ""
        raise ValidationError(f"{where}: header is {','.join(row)!r}; it must be {HEADER_SYNTAX}{hint}")
    return {name: i for i, name in enumerate(names)}


def _cell(row: list[str], columns: dict[str, int], name: str) -> str:
    """The cell of column `name` ("" when the file has no such column or the row is short), spaces trimmed."""
    i = columns.get(name)
    return row[i].strip(" ") if i is not None and i < len(row) else ""


def parse_outbound_rates_csv(text: str) -> list[OutboundRate]:
    """Parse an outbound rates CSV into rates. Header `prefix,price[,increment][,connection][,description]` (the
    optional columns by name, in any order); price per minute and connection charge in major units ("2.50", "0,30";
    an empty connection is 0); increment "60/60", "30/6", "1/1" or N for N/N (empty: 60/60). A prefix may start with
    "+" (dropped); a prefix listed twice is refused. Blank lines are skipped. Errors name the line and the fix.
    """
    what = "outbound rates CSV"
    columns: dict[str, int] | None = None
    rates: list[OutboundRate] = []
    seen = FirstLines()
    for line, row in csv_records(text, what):
        where = f"{what} line {line}"
        if columns is None:
            columns = _header(row, where)
            continue
        csv_width(row, len(columns), where)
        prefix = csv_prefix(row[0], where)
        price = csv_amount(row[1], where, f"price for prefix {prefix}")
        increment, connection = DEFAULT_INCREMENT, 0
        if given := _cell(row, columns, "increment"):
            try:
                increment = parse_increment(given)
            except ValidationError as exc:
                raise ValidationError(f"{where}: prefix {prefix}: {exc}") from None
        if given := _cell(row, columns, "connection"):
            connection = csv_amount(given, where, f"connection charge for prefix {prefix}")
        seen.add(prefix, line, where, fix="keep one rate per prefix")
        rates.append(OutboundRate(prefix, price, increment[0], increment[1], connection,
                                  csv_description(row, columns.get("description"), where)))
    if columns is None:
        raise ValidationError(f"{what} is empty; the first line must be the header "
                              f"prefix,price[,increment][,connection][,description]")
    if not rates:
        raise ValidationError(f"{what} has no rates after the header; add lines like 4930,2.50,60/60,0,Berlin")
    return rates

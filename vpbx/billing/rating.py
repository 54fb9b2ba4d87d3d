"""Toll-free rating: the caller's prefix -> price per minute (longest prefix wins), billed increments, call cost.

Rule: pure, no SQL, no I/O, no Click, no asyncio: `parse_rates_csv` takes the CSV's text, `PrefixTable` is built from
(prefix, price) pairs the caller loaded. Prices are int minor units per minute. The outbound rate table
(vpbx.billing.outbound) shares the longest-prefix technique (`PrefixMap`) and the CSV helpers (`csv_records`,
`csv_prefix`, `csv_amount`, `FirstLines`).

Speed: PrefixMap keeps one dict prefix -> value and the prefix lengths that exist, longest first; a lookup tries
number[:n] for those lengths only, so it costs a few dict probes whatever the table's size (bench/rating.py: 1 M
lookups against 100 k prefixes).
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from typing import Generic, TypeVar

from vpbx.billing.money import div_half_up, parse_amount
from vpbx.domain.errors import ValidationError
from vpbx.domain.validation import printable_text, shown

MAX_PREFIX_DIGITS = 15
V = TypeVar("V")


def _is_digits(s: str) -> bool:
    return s.isascii() and s.isdigit()


def is_prefix(prefix: object) -> bool:
    """1-MAX_PREFIX_DIGITS ASCII digits (no +, spaces or dashes)."""
    return isinstance(prefix, str) and _is_digits(prefix) and 1 <= len(prefix) <= MAX_PREFIX_DIGITS


def prefixes_of(number: str) -> list[str]:
    """The prefixes a rate table may hold for `number` ("+7495..." or digits), longest first (at most
    MAX_PREFIX_DIGITS digits); [] when it is not a number. A store looks them up in one indexed query."""
    digits = number[1:] if number[:1] == "+" else number
    return [digits[:i] for i in range(min(len(digits), MAX_PREFIX_DIGITS), 0, -1)] if _is_digits(digits) else []


class PrefixMap(Generic[V]):
    """Longest-prefix match of phone numbers against a table prefix digits -> value (the caller checked both)."""

    __slots__ = ("_lengths", "_values")

    def __init__(self, values: Mapping[str, V]) -> None:
        self._values = dict(values)
        self._lengths = tuple(sorted({len(p) for p in self._values}, reverse=True))

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, prefix: object) -> bool:
        return prefix in self._values

    def match(self, number: str) -> tuple[str, V] | None:
        """(prefix, value) of the longest prefix of `number` ("+7..." or digits), None when none matches."""
        digits = number[1:] if number[:1] == "+" else number
        get = self._values.get
        size = len(digits)
        for n in self._lengths:
            if n <= size:
                prefix = digits[:n]
                value = get(prefix)
                if value is not None:
                    return prefix, value
        return None


class PrefixTable(PrefixMap[int]):
    """Longest-prefix match of phone numbers against a price table (prefix digits -> price per minute)."""

    __slots__ = ()

    def __init__(self, entries: Iterable[tuple[str, int]]) -> None:
        prices: dict[str, int] = {}
        for entry in entries:
            prefix, price = entry
            if not is_prefix(prefix):
                raise ValidationError(f"rate prefix {prefix!r} must be 1-{MAX_PREFIX_DIGITS} digits "
                                      f"(no +, spaces or dashes)")
            if isinstance(price, bool) or not isinstance(price, int) or price < 0:
                raise ValidationError(f"rate for prefix {prefix} has price {price!r}; "
                                      f"give a non-negative int of minor units")
            if prefix in prices:
                raise ValidationError(f"rate prefix {prefix} is listed twice; keep one price per prefix")
            prices[prefix] = price
        super().__init__(prices)

    def lookup(self, number: str) -> tuple[str, int] | None:
        """(prefix, price per minute) of the longest prefix of `number` ("+7..." or digits), None when none matches."""
        return self.match(number)


def billable_units(seconds: int, increment: int = 60) -> int:
    """Increments billed for a call: every started increment counts (0 s -> 0, 1 s -> 1, 60 s -> 1, 61 s -> 2)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        raise ValidationError(f"call duration {seconds!r} must be a non-negative int of seconds")
    if isinstance(increment, bool) or not isinstance(increment, int) or increment < 1:
        raise ValidationError(f"billing increment {increment!r} must be a positive int of seconds")
    return -(-seconds // increment)


def call_cost(price_per_minute: int, seconds: int, increment: int = 60) -> int:
    """The cost of a call: the per-minute price pro rata for the billed seconds (units * increment), rounded half up
    to a minor unit. Increment 60 -> price * started minutes; increment 1 -> price * seconds / 60."""
    if isinstance(price_per_minute, bool) or not isinstance(price_per_minute, int) or price_per_minute < 0:
        raise ValidationError(f"price per minute {price_per_minute!r} must be a non-negative int of minor units")
    billed = billable_units(seconds, increment) * increment
    return div_half_up(price_per_minute * billed, 60)


# ---- CSV helpers (the toll-free and the outbound rates CSV) ---------------------------------------------------------
def csv_records(text: str, what: str) -> Iterator[tuple[int, list[str]]]:
    """The non-blank records of a CSV text as (the line the record starts on, its cells); a byte order mark is
    skipped. `what` names the file in errors ("rates CSV"): text that is not a str, and broken quoting."""
    if not isinstance(text, str):
        raise ValidationError(f"{what}: pass the file's text (str)")
    reader = csv.reader(text.lstrip("\ufeff").splitlines(keepends=True))
    end = 0                      # the line the previous record ended on (a quoted field may span lines)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ValidationError(f"{what} line {reader.line_num}: {exc}; fix the quoting") from None
        line, end = end + 1, reader.line_num     # errors name the line the record starts on
        if row and any(cell.strip() for cell in row):
            yield line, row


def csv_prefix(cell: str, where: str) -> str:
    """A prefix cell: digits, an optional leading "+" dropped; `where` ("rates CSV line 3") starts the error."""
    prefix = cell.strip(" ")
    prefix = prefix[1:] if prefix.startswith("+") else prefix
    if not is_prefix(prefix):
        raise ValidationError(f"{where}: prefix {shown(cell)} must be 1-{MAX_PREFIX_DIGITS} digits")
    return prefix


def csv_amount(cell: str, where: str, label: str) -> int:
    """An amount cell in major units -> minor units; `label` ("price for prefix 7495") names it in the error."""
    try:
        return parse_amount(cell)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {label}: {exc}") from None


class FirstLines:
    """The line each prefix was first seen on: a second one is refused naming both lines."""

    def __init__(self) -> None:
        self._lines: dict[str, int] = {}

    def add(self, prefix: str, line: int, where: str, fix: str = "keep one price per prefix") -> None:
        if prefix in self._lines:
            raise ValidationError(f"{where}: prefix {prefix} is already on line {self._lines[prefix]}; {fix}")
        self._lines[prefix] = line


def csv_width(row: list[str], columns: int, where: str) -> None:
    """A record of a rates CSV has at least prefix and price and no more cells than the header."""
    if len(row) > columns or len(row) < 2:
        raise ValidationError(f"{where}: {len(row)} columns, the header has {columns}; quote a price with a decimal "
                              f"comma (\"3,50\") or a description with commas")


def csv_description(row: list[str], column: int | None, where: str) -> str:
    """The description cell (column `column`; "" when the file has none or the row is short), printable text."""
    description = row[column].strip(" ") if column is not None and len(row) > column else ""
    return printable_text("description", description, obj=where)


def parse_rates_csv(text: str) -> list[tuple[str, int, str]]:
    """Parse a rates CSV (header `prefix,price[,description]`, price in major units) into (prefix, price, description).

    A prefix may start with "+" (dropped). Blank lines are skipped. Errors name the line number and the fix.
    """
    header: list[str] | None = None
    rates: list[tuple[str, int, str]] = []
    seen = FirstLines()
    for line, row in csv_records(text, "rates CSV"):
        where = f"rates CSV line {line}"
        if header is None:
            header = [cell.strip(" ").lower() for cell in row]
            if header not in (["prefix", "price"], ["prefix", "price", "description"]):
                hint = " (separate columns with commas, not semicolons)" if ";" in ",".join(row) else ""
                raise ValidationError(f"{where}: header is {','.join(row)!r}; "
                                      f"it must be prefix,price or prefix,price,description{hint}")
            continue
        csv_width(row, len(header), where)
        prefix = csv_prefix(row[0], where)
        price = csv_amount(row[1], where, f"price for prefix {prefix}")
        seen.add(prefix, line, where)
        rates.append((prefix, price, csv_description(row, 2, where)))
    if header is None:
        raise ValidationError("rates CSV is empty; the first line must be the header prefix,price[,description]")
    if not rates:
        raise ValidationError("rates CSV has no rates after the header; add lines like 7495,2.00,Moscow")
    return rates

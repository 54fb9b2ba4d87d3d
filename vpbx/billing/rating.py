"""Toll-free rating: the caller's prefix -> price per minute (longest prefix wins), billed increments, call cost.

Rule: pure, no SQL, no I/O, no Click, no asyncio: `parse_rates_csv` takes the CSV's text, `PrefixTable` is built from
(prefix, price) pairs the caller loaded. Prices are int minor units per minute.

Speed: PrefixTable keeps one dict prefix -> price and the prefix lengths that exist, longest first; a lookup tries
number[:n] for those lengths only, so it costs a few dict probes whatever the table's size (bench/rating.py: 1 M
lookups against 100 k prefixes).
"""
from __future__ import annotations

import csv
from collections.abc import Iterable

from vpbx.billing.money import div_half_up, parse_amount
from vpbx.domain.errors import ValidationError
from vpbx.domain.validation import printable_text, shown

MAX_PREFIX_DIGITS = 15


def _is_digits(s: str) -> bool:
    return s.isascii() and s.isdigit()


class PrefixTable:
    """Longest-prefix match of phone numbers against a price table (prefix digits -> price per minute)."""

    __slots__ = ("_lengths", "_prices")

    def __init__(self, entries: Iterable[tuple[str, int]]) -> None:
        prices: dict[str, int] = {}
        for entry in entries:
            prefix, price = entry
            if not isinstance(prefix, str) or not _is_digits(prefix) or not 1 <= len(prefix) <= MAX_PREFIX_DIGITS:
                raise ValidationError(f"rate prefix {prefix!r} must be 1-{MAX_PREFIX_DIGITS} digits "
                                      f"(no +, spaces or dashes)")
            if isinstance(price, bool) or not isinstance(price, int) or price < 0:
                raise ValidationError(f"rate for prefix {prefix} has price {price!r}; "
                                      f"give a non-negative int of minor units")
            if prefix in prices:
                raise ValidationError(f"rate prefix {prefix} is listed twice; keep one price per prefix")
            prices[prefix] = price
        self._prices = prices
        self._lengths = tuple(sorted({len(p) for p in prices}, reverse=True))

    def __len__(self) -> int:
        return len(self._prices)

    def __contains__(self, prefix: object) -> bool:
        return prefix in self._prices

    def lookup(self, number: str) -> tuple[str, int] | None:
        """(prefix, price per minute) of the longest prefix of `number` ("+7..." or digits), None when none matches."""
        digits = number[1:] if number[:1] == "+" else number
        get = self._prices.get
        size = len(digits)
        for n in self._lengths:
            if n <= size:
                prefix = digits[:n]
                price = get(prefix)
                if price is not None:
                    return prefix, price
        return None


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


def parse_rates_csv(text: str) -> list[tuple[str, int, str]]:
    """Parse a rates CSV (header `prefix,price[,description]`, price in major units) into (prefix, price, description).

    A prefix may start with "+" (dropped). Blank lines are skipped. Errors name the line number and the fix.
    """
    if not isinstance(text, str):
        raise ValidationError("rates CSV: pass the file's text (str)")
    reader = csv.reader(text.lstrip("\ufeff").splitlines(keepends=True))
    header: list[str] | None = None
    rates: list[tuple[str, int, str]] = []
    first_line: dict[str, int] = {}
    end = 0                      # the line the previous record ended on (a quoted field may span lines)
    try:
        for row in reader:
            line, end = end + 1, reader.line_num     # errors name the line the record starts on
            if not row or all(not cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip(" ").lower() for cell in row]
                if header not in (["prefix", "price"], ["prefix", "price", "description"]):
                    hint = " (separate columns with commas, not semicolons)" if ";" in ",".join(row) else ""
                    raise ValidationError(f"rates CSV line {line}: header is {','.join(row)!r}; "
                                          f"it must be prefix,price or prefix,price,description{hint}")
                continue
            if len(row) > len(header) or len(row) < 2:
                raise ValidationError(f"rates CSV line {line}: {len(row)} columns, the header has {len(header)}; "
                                      f"quote a price with a decimal comma (\"3,50\") or a description with commas")
            prefix = row[0].strip(" ")
            prefix = prefix[1:] if prefix.startswith("+") else prefix
            if not _is_digits(prefix) or not 1 <= len(prefix) <= MAX_PREFIX_DIGITS:
                raise ValidationError(f"rates CSV line {line}: prefix {shown(row[0])} must be "
                                      f"1-{MAX_PREFIX_DIGITS} digits")
            try:
                price = parse_amount(row[1])
            except ValidationError as exc:
                raise ValidationError(f"rates CSV line {line}: price for prefix {prefix}: {exc}") from None
            if prefix in first_line:
                raise ValidationError(f"rates CSV line {line}: prefix {prefix} is already on line "
                                      f"{first_line[prefix]}; keep one price per prefix")
            first_line[prefix] = line
            description = row[2].strip(" ") if len(row) > 2 else ""
            printable_text("description", description, obj=f"rates CSV line {line}")
            rates.append((prefix, price, description))
    except csv.Error as exc:
        raise ValidationError(f"rates CSV line {reader.line_num}: {exc}; fix the quoting") from None
    if header is None:
        raise ValidationError("rates CSV is empty; the first line must be the header prefix,price[,description]")
    if not rates:
        raise ValidationError("rates CSV has no rates after the header; add lines like 7495,2.00,Moscow")
    return rates

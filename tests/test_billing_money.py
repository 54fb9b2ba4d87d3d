"""vpbx.billing.money: amounts typed by sysadmins -> int minor units and back, half-up division."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpbx.billing.money import MAX_MINOR, div_half_up, format_amount, parse_amount
from vpbx.domain.errors import ValidationError


@pytest.mark.parametrize(("text", "minor"), [
    ("2500", 250000),
    ("2 500", 250000),
    ("2\u00a0500", 250000),
    ("2\u202f500", 250000),
    ("2500.5", 250050),
    ("2500.50", 250050),
    ("3,50", 350),
    ("0.01", 1),
    ("0", 0),
    ("  12.3  ", 1230),
    ("1 000 000", 100000000),
    ("+5", 500),
    ("007", 700),
    ("1000000000000", 10**14),          # exactly 10^12 major units is still accepted
    ("1 000 000 000 000.00", 10**14),
])
def test_parse_amount(text: str, minor: int) -> None:
    assert parse_amount(text) == minor


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "empty"),
    ("   ", "empty"),
    ("abc", "not a number"),
    ("NaN", "not a number"),
    ("nan", "not a number"),
    ("inf", "not a number"),
    ("-inf", "not a number"),
    ("Infinity", "not a number"),
    ("1e3", "not a number"),
    ("12.", "not a number"),
    (".5", "not a number"),
    ("1.2.3", "not a number"),
    ("2 50 0", "not a number"),
    ("1 0000", "not a number"),
    ("--1", "not a number"),
    ("\u0663", "not a number"),            # an Arabic-Indic digit is not accepted as 3
    ("12 RUB", "not a number"),
    ("1.234", "more than 2 decimals"),
    ("2,500", "more than 2 decimals"),     # ambiguous thousands comma is refused, never read as 2.5
    ("-5", "negative"),
    ("-0.01", "negative"),
    ("1000000000000.01", "too large"),
    ("10000000000000", "too large"),
    ("100\n", "not a number"),            # whitespace around is spaces only: a newline is junk, never stripped
    ("\t100", "not a number"),
    ("100\r\n", "not a number"),
    ("1\u2028000", "not a number"),
    ("100\x00", "not a number"),
])
def test_parse_amount_refuses(text: str, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment) as info:
        parse_amount(text)
    if text.strip():
        assert repr(text) in str(info.value)     # the message names the amount


@pytest.mark.parametrize("value", [12, 1.5, None, b"12"])
def test_parse_amount_refuses_non_text(value: object) -> None:
    with pytest.raises(ValidationError, match="not text"):
        parse_amount(value)  # type: ignore[arg-type]


def test_parse_amount_negative_when_allowed() -> None:
    assert parse_amount("-12.30", allow_negative=True) == -1230
    assert parse_amount("-2 500", allow_negative=True) == -250000
    assert parse_amount("-0,05", allow_negative=True) == -5
    with pytest.raises(ValidationError, match="too large"):
        parse_amount("-10000000000000", allow_negative=True)


@pytest.mark.parametrize(("minor", "currency", "text"), [
    (250000, "", "2 500.00"),
    (-1230, "", "-12.30"),
    (250000, "RUB", "2 500.00 RUB"),
    (0, "", "0.00"),
    (5, "", "0.05"),
    (-5, "USD", "-0.05 USD"),
    (99, "", "0.99"),
    (100000000, "", "1 000 000.00"),
    (123456789, "", "1 234 567.89"),
    (99999, "", "999.99"),
])
def test_format_amount(minor: int, currency: str, text: str) -> None:
    assert format_amount(minor, currency) == text


@pytest.mark.parametrize("value", [1.5, True, "100", None])
def test_format_amount_refuses_non_int(value: object) -> None:
    with pytest.raises(ValidationError, match="minor units"):
        format_amount(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("num", "den", "result"), [
    (5, 10, 1), (4, 10, 0), (15, 10, 2), (25, 10, 3), (-15, 10, -2), (-25, 10, -3), (-14, 10, -1),
    (1, 2, 1), (1, 3, 0), (2, 3, 1), (0, 7, 0), (100, 1, 100),
])
def test_div_half_up(num: int, den: int, result: int) -> None:
    assert div_half_up(num, den) == result


@pytest.mark.parametrize("den", [0, -3])
def test_div_half_up_refuses_bad_divisor(den: int) -> None:
    with pytest.raises(ValidationError, match="divisor"):
        div_half_up(10, den)


@given(st.integers(min_value=-MAX_MINOR, max_value=MAX_MINOR))
def test_format_then_parse_round_trips(minor: int) -> None:
    assert parse_amount(format_amount(minor), allow_negative=True) == minor


@given(st.integers(min_value=-10**15, max_value=10**15), st.integers(min_value=1, max_value=10**6))
def test_div_half_up_matches_decimal_round_half_up(num: int, den: int) -> None:
    expected = (Decimal(num) / Decimal(den)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert div_half_up(num, den) == int(expected)

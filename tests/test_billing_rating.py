"""vpbx.billing.rating: longest-prefix price look-up, per-started-increment billing, the rates CSV."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpbx.billing.rating import PrefixTable, billable_units, call_cost, parse_rates_csv
from vpbx.domain.errors import ValidationError

SEED_RATES = Path(__file__).resolve().parent.parent / "tariffs" / "tollfree-rates-ru.csv"


@pytest.fixture(scope="module")
def seed_table() -> PrefixTable:
    return PrefixTable((prefix, price) for prefix, price, _ in parse_rates_csv(SEED_RATES.read_text(encoding="utf-8")))


def test_seed_rates_file() -> None:
    assert parse_rates_csv(SEED_RATES.read_text(encoding="utf-8")) == [
        ("7495", 200, "Moscow"),
        ("7499", 200, "Moscow"),
        ("7812", 200, "St Petersburg"),
        ("78432", 350, "Kazan"),
        ("78435", 350, "Kazan"),
        ("73432", 300, "Yekaterinburg"),
        ("73433", 300, "Yekaterinburg"),
        ("79", 350, "Russia mobile"),
        ("7", 350, "Russia other"),
    ]


@pytest.mark.parametrize(("caller", "hit"), [
    ("+74951234567", ("7495", 200)),
    ("74991234567", ("7499", 200)),        # digits without "+" work too
    ("+78121234567", ("7812", 200)),
    ("+78432123456", ("78432", 350)),      # Kazan 78432 beats the catch-all 7
    ("+78435123456", ("78435", 350)),
    ("+78431123456", ("7", 350)),          # 78431 is not listed: other Russian
    ("+73432123456", ("73432", 300)),
    ("+73433123456", ("73433", 300)),
    ("+73434123456", ("7", 350)),
    ("+79161234567", ("79", 350)),
    ("+73952123456", ("7", 350)),
    ("+380441234567", None),               # no match
    ("", None),
    ("+", None),
])
def test_seed_lookups(seed_table: PrefixTable, caller: str, hit: tuple[str, int] | None) -> None:
    assert seed_table.lookup(caller) == hit


def test_longest_prefix_wins() -> None:
    table = PrefixTable([("7", 350), ("78432", 300), ("784", 100)])
    assert table.lookup("+78432000000") == ("78432", 300)
    assert table.lookup("+78439000000") == ("784", 100)
    assert table.lookup("+78000000000") == ("7", 350)
    assert table.lookup("784") == ("784", 100)        # a number as long as the prefix
    assert table.lookup("78") == ("7", 350)           # shorter than the longer prefixes
    assert table.lookup("+1") is None
    assert len(table) == 3 and "784" in table and "78" not in table


def test_empty_table_matches_nothing() -> None:
    assert PrefixTable([]).lookup("+74951234567") is None


@pytest.mark.parametrize(("entries", "fragment"), [
    ([("7495", 200), ("7495", 300)], "prefix 7495 is listed twice"),
    ([("+7", 1)], r"prefix '\+7' must be 1-15 digits"),
    ([("7a", 1)], "prefix '7a'"),
    ([("", 1)], "prefix ''"),
    ([("1234567890123456", 1)], "prefix '1234567890123456'"),
    ([("\u0667", 1)], "prefix"),                      # a non-ASCII digit
    ([(7, 1)], "prefix 7"),
    ([("7", -1)], "prefix 7 has price -1"),
    ([("7", 1.5)], "prefix 7 has price 1.5"),
    ([("7", True)], "prefix 7 has price True"),
])
def test_prefix_table_refuses(entries: list[tuple[object, object]], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        PrefixTable(entries)  # type: ignore[arg-type]


def test_fifteen_digit_prefix_is_fine() -> None:
    assert PrefixTable([("123456789012345", 0)]).lookup("+123456789012345") == ("123456789012345", 0)


# ---------------------------------------------------------------------------------------------------------------------
# Increments and cost


@pytest.mark.parametrize(("seconds", "increment", "units"), [
    (0, 60, 0), (1, 60, 1), (59, 60, 1), (60, 60, 1), (61, 60, 2), (3600, 60, 60), (3601, 60, 61),
    (61, 1, 61), (0, 1, 0), (31, 30, 2), (30, 30, 1),
])
def test_billable_units(seconds: int, increment: int, units: int) -> None:
    assert billable_units(seconds, increment) == units


def test_billable_units_default_is_per_started_minute() -> None:
    assert [billable_units(s) for s in (0, 1, 60, 61, 120, 121)] == [0, 1, 1, 2, 2, 3]


@pytest.mark.parametrize(("seconds", "increment", "fragment"), [
    (-1, 60, "call duration -1"), (1.5, 60, "call duration 1.5"), (10, 0, "billing increment 0"),
    (10, -60, "billing increment -60"),
])
def test_billable_units_refuses(seconds: int, increment: int, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        billable_units(seconds, increment)


@pytest.mark.parametrize(("price", "seconds", "increment", "cost"), [
    (200, 0, 60, 0),
    (200, 1, 60, 200),       # a started minute is a minute
    (200, 60, 60, 200),
    (200, 61, 60, 400),
    (350, 125, 60, 1050),    # 3 minutes of Kazan
    (350, 61, 1, 356),       # per second: 350 * 61 / 60 = 355.83 -> 356
    (200, 90, 1, 300),
    (1, 30, 1, 1),           # 0.5 kopeck rounds half up
    (3, 10, 1, 1),           # 0.5 -> 1
    (1, 29, 1, 0),           # 0.483 -> 0
    (200, 31, 30, 200),      # two started 30 s increments = one minute
    (200, 29, 30, 100),
    (0, 600, 60, 0),
])
def test_call_cost(price: int, seconds: int, increment: int, cost: int) -> None:
    assert call_cost(price, seconds, increment) == cost


def test_call_cost_refuses_bad_price() -> None:
    with pytest.raises(ValidationError, match="price per minute -1"):
        call_cost(-1, 60)
    with pytest.raises(ValidationError, match=r"price per minute 2\.0"):
        call_cost(2.0, 60)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------------
# The CSV


def test_csv_spellings() -> None:
    text = '\ufeffPrefix , Price,Description\n+7495,"2,00",Moscow\n7812, 2 ,\n\n79,"1 000.50"\n'
    assert parse_rates_csv(text) == [("7495", 200, "Moscow"), ("7812", 200, ""), ("79", 100050, "")]
    assert parse_rates_csv("prefix,price\n7,3.5\r\n") == [("7", 350, "")]


@pytest.mark.parametrize(("text", "fragment"), [
    ("prefix,price\n7495,2.00\n7x99,1\n", "line 3: prefix '7x99' must be 1-15 digits"),
    ("prefix,price\n7495,abc\n", "line 2: price for prefix 7495: amount 'abc' is not a number"),
    ("prefix,price\n7495,2.005\n", "line 2: .*more than 2 decimals"),
    ("prefix,price\n7495,-1\n", "line 2: .*negative"),
    ("prefix,price\n7495,\n", "line 2: .*empty"),
    ("prefix,price\n7495,2\n7499,2\n7495,3\n", "line 4: prefix 7495 is already on line 2"),
    ("prefix;price\n7495;2\n", "line 1: header .*semicolons"),
    ("number,price\n7495,2\n", "line 1: header is 'number,price'"),
    ("prefix,price,description,extra\n7,1,a,b\n", "line 1: header"),
    ("prefix,price\n7495,3,50\n", "line 2: 3 columns, the header has 2"),
    ("prefix,price\n7495\n", "line 2: 1 columns"),
    ("prefix,price\n\n7495,2\n\n7x,1\n", "line 5: prefix '7x'"),     # blank lines still count
    ("prefix,price\n,2\n", "line 2: prefix ''"),
    ("prefix,price\n1234567890123456,2\n", "line 2: prefix '1234567890123456'"),
    ("", "rates CSV is empty"),
    ("\n\n", "rates CSV is empty"),
    ("prefix,price\n", "no rates after the header"),
    ('prefix,price\n"7495\n",2\n', "line 2: prefix '7495\\\\n' must be"),      # a quoted newline is not stripped
    ('prefix,price\n7495,"2.00\n"\n', "line 2: price for prefix 7495: amount '2.00\\\\n' is not a number"),
    ('prefix,price,description\n7495,2,"Moscow\n"\n', "line 2: description contains '\\\\n'"),
    ('prefix,price,description\n7495,2,"a\u2028b"\n', "line 2: description contains '\\\\u2028'"),
])
def test_bad_csv_names_the_line(text: str, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        parse_rates_csv(text)


# ---------------------------------------------------------------------------------------------------------------------
# Properties

PREFIX = st.text(alphabet="0123", min_size=1, max_size=6)   # a small alphabet, so prefixes nest and collide


def _brute(prefixes: dict[str, int], number: str) -> tuple[str, int] | None:
    digits = number.lstrip("+")
    hits = [p for p in prefixes if digits.startswith(p)]
    if not hits:
        return None
    best = max(hits, key=len)
    return best, prefixes[best]


@given(st.dictionaries(PREFIX, st.integers(min_value=0, max_value=10**6), max_size=60),
       st.lists(st.text(alphabet="0123", min_size=0, max_size=9), min_size=1, max_size=30),
       st.booleans())
def test_lookup_equals_brute_force_longest_prefix(prefixes: dict[str, int], numbers: list[str], plus: bool) -> None:
    table = PrefixTable(prefixes.items())
    for number in numbers:
        caller = "+" + number if plus else number
        assert table.lookup(caller) == _brute(prefixes, caller)


@given(st.integers(min_value=0, max_value=10**5), st.integers(min_value=0, max_value=10**5),
       st.sampled_from([1, 6, 30, 60]))
def test_call_cost_properties(price: int, seconds: int, increment: int) -> None:
    cost = call_cost(price, seconds, increment)
    units = billable_units(seconds, increment)
    assert (units - 1) * increment < seconds <= units * increment or seconds == units == 0
    assert cost <= call_cost(price, seconds + 1, increment)          # longer calls never cost less
    assert abs(120 * cost - 2 * price * units * increment) <= 60     # within half a kopeck of exact
    if increment == 60:
        assert cost == price * units

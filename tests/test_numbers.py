"""vpbx.domain.numbers: the beauty-category table and E.164 parsing (type / city / operator / subscriber part)."""
from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vpbx.domain.errors import ValidationError
from vpbx.domain.numbers import CATEGORIES, CATEGORY_RULES, NumberInfo, category_of, parse

# One example per row of CATEGORY_RULES (by row index): the row must be the FIRST one that matches it.
ROW_EXAMPLES = {
    0: "7777777",    # platinum: all digits the same
    1: "1000000",    # platinum: 6+ same digits in a row
    2: "1255555",    # gold: 5 same in a row
    3: "1211211",    # gold: only two different digits
    4: "9876543",    # gold: 6+ run (descending)
    5: "1230000",    # silver: 4 same in a row
    6: "1234321",    # silver: mirror of the whole part
    7: "123123",     # silver: one block of 3 repeated
    8: "1212345",    # silver: 5 digit run
    9: "1234777",    # bronze: ends in 3 same digits
    10: "1231221",   # bronze: ends in a mirror of 4
    11: "1231122",   # bronze: ends in two pairs
    12: "9071234",   # bronze: 4 digit run
}
REGULAR = ["2718459", "3141592", "5820917", "2749163", "8052639", "271845", "90817263"]


def _first_row(digits: str) -> int | None:
    for i, (_name, _why, test) in enumerate(CATEGORY_RULES):
        if test(digits):
            return i
    return None


def test_every_row_has_an_example() -> None:
    assert sorted(ROW_EXAMPLES) == list(range(len(CATEGORY_RULES)))


@pytest.mark.parametrize("row", sorted(ROW_EXAMPLES))
def test_category_row_example(row: int) -> None:
    digits = ROW_EXAMPLES[row]
    name, why, test = CATEGORY_RULES[row]
    assert why.strip()
    assert test(digits) is True
    assert _first_row(digits) == row
    assert category_of(digits) == name


def test_table_is_ordered_best_category_first() -> None:
    ranks = [CATEGORIES.index(name) for name, _why, _test in CATEGORY_RULES]
    assert ranks == sorted(ranks, reverse=True)
    assert set(name for name, _w, _t in CATEGORY_RULES) == set(CATEGORIES) - {"regular"}


@pytest.mark.parametrize("digits", REGULAR)
def test_regular_examples(digits: str) -> None:
    assert _first_row(digits) is None
    assert category_of(digits) == "regular"


@pytest.mark.parametrize("digits, expected", [
    ("1234567", "gold"), ("7654321", "gold"), ("5555555", "platinum"), ("0000001", "platinum"),
    ("1223334", "regular"), ("5551234", "bronze"), ("9123456", "gold"), ("1200000", "gold"),
    ("4454545", "gold"), ("1234512", "silver"), ("8888123", "silver"),
])
def test_category_more_examples(digits: str, expected: str) -> None:
    assert category_of(digits) == expected


@given(st.text(alphabet="0123456789", max_size=20))
@settings(max_examples=500, deadline=None)
def test_category_of_total(digits: str) -> None:
    assert category_of(digits) in CATEGORIES


@given(st.sampled_from("0123456789"), st.integers(min_value=6, max_value=12))
def test_same_digit_run_is_platinum(digit: str, length: int) -> None:
    assert category_of(digit * length) == "platinum"


# ---- parse ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("number_, expected", [
    # UA
    ("+380441234567", NumberInfo("+380441234567", "UA", "geographic", "Kyiv city", "", "1234567", "gold")),
    ("+380442718459", NumberInfo("+380442718459", "UA", "geographic", "Kyiv city", "", "2718459", "regular")),
    ("+380671234777", NumberInfo("+380671234777", "UA", "mobile", "", "Kyivstar", "1234777", "bronze")),
    ("+380502718459", NumberInfo("+380502718459", "UA", "mobile", "", "Vodafone", "2718459", "regular")),
    ("+380800123456", NumberInfo("+380800123456", "UA", "tollfree", "", "", "123456", "gold")),
    # RU
    ("+74952718459", NumberInfo("+74952718459", "RU", "geographic", "Moscow", "", "2718459", "regular")),
    ("+79032718459", NumberInfo("+79032718459", "RU", "mobile", "", "Beeline", "2718459", "regular")),
    ("+78002718459", NumberInfo("+78002718459", "RU", "tollfree", "", "", "2718459", "regular")),
    # US (phonenumbers cannot tell US mobile from fixed: FIXED_LINE_OR_MOBILE maps to geographic)
    ("+12122718459", NumberInfo("+12122718459", "US", "geographic", "New York, NY", "", "2718459", "regular")),
    ("+18002718459", NumberInfo("+18002718459", "US", "tollfree", "", "", "2718459", "regular")),
    ("+18887777777", NumberInfo("+18887777777", "US", "tollfree", "", "", "7777777", "platinum")),
])
def test_parse(number_: str, expected: NumberInfo) -> None:
    assert parse(number_) == expected


@pytest.mark.parametrize("bad", ["380441234567", "+380 44 123 4567", "+380-44-1234567", "+0441234567", "+1", "",
                                 "+12345678901234567", "+38044123", "+380001234567", "+1555", "++380441234567",
                                 "+38044123456a"])
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse(bad)
    assert repr(bad) in str(exc.value)


@given(st.sampled_from(["+38044", "+38067", "+7495", "+7903", "+1212"]),
       st.text(alphabet="0123456789", min_size=7, max_size=7))
@settings(max_examples=200, deadline=None)
def test_parse_category_is_category_of_subscriber(prefix: str, digits: str) -> None:
    number_ = prefix + digits
    try:
        info = parse(number_)
    except ValidationError:
        assume(False)  # hypothesis fails the test if it has to discard too many
        raise
    assert info.number == number_
    assert info.category == category_of(info.subscriber)
    assert number_.endswith(info.subscriber)
    assert info.type in ("geographic", "mobile", "tollfree", "other")

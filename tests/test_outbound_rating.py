"""vpbx.billing.outbound: billed intervals (60/60, 30/6, 1/1), the cost of a call, what a sum of money affords, the
outbound rates CSV and the longest-prefix table. Pure: no store, no Asterisk."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpbx.billing import div_half_up
from vpbx.billing.outbound import (
    MAX_INTERVAL,
    UNLIMITED_SECONDS,
    OutboundRate,
    OutboundRateTable,
    affordable_seconds,
    billed_seconds,
    format_increment,
    outbound_cost,
    parse_increment,
    parse_outbound_rates_csv,
)
from vpbx.domain.errors import ValidationError

SEED = Path(__file__).resolve().parent.parent / "tariffs" / "outbound-rates-ru.csv"


def R(price: int, initial: int = 60, increment: int = 60, connection: int = 0, prefix: str = "49") -> OutboundRate:
    return OutboundRate(prefix, price, initial, increment, connection)


# ---- billed seconds -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("seconds", "initial", "increment", "billed"), [
    (0, 60, 60, 0), (1, 60, 60, 60), (59, 60, 60, 60), (60, 60, 60, 60), (61, 60, 60, 120), (120, 60, 60, 120),
    (121, 60, 60, 180), (3600, 60, 60, 3600), (3601, 60, 60, 3660),
    (0, 30, 6, 0), (1, 30, 6, 30), (30, 30, 6, 30), (31, 30, 6, 36), (36, 30, 6, 36), (37, 30, 6, 42),
    (61, 30, 6, 66), (0, 1, 1, 0), (1, 1, 1, 1), (61, 1, 1, 61), (3599, 1, 1, 3599),
    (1, 60, 1, 60), (61, 60, 1, 61), (61, 1, 60, 61), (62, 1, 60, 121),
])
def test_billed_seconds(seconds: int, initial: int, increment: int, billed: int) -> None:
    assert billed_seconds(seconds, initial, increment) == billed


def _brute_billed(seconds: int, initial: int, increment: int) -> int:
    """The definition: the first interval end (initial, initial + increment, ...) at or after `seconds`."""
    if seconds == 0:
        return 0
    return next(end for end in itertools.count(initial, increment) if end >= seconds)


def test_billed_seconds_against_the_definition_exhaustively() -> None:
    for initial, increment in itertools.product((1, 2, 5, 6, 30, 60, 61), (1, 2, 6, 7, 60)):
        for seconds in range(0, 400):
            assert billed_seconds(seconds, initial, increment) == _brute_billed(seconds, initial, increment), \
                (seconds, initial, increment)


@pytest.mark.parametrize(("args", "fragment"), [
    ((-1, 60, 60), "call duration -1"), ((1.5, 60, 60), "call duration 1.5"), ((True, 60, 60), "call duration True"),
    ((10, 0, 60), "initial interval 0"), ((10, 60, 0), "billing increment 0"), ((10, -6, 6), "initial interval -6"),
    ((10, 30, True), "billing increment True"),
])
def test_billed_seconds_refuses(args: tuple[object, object, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        billed_seconds(*args)  # type: ignore[arg-type]


# ---- cost ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("rate", "seconds", "cost"), [
    (R(200), 0, 0),                          # unanswered: nothing, not even the connection charge
    (R(200, connection=50), 0, 0),
    (R(200), 1, 200), (R(200), 60, 200), (R(200), 61, 400),
    (R(200, connection=50), 1, 250),         # connection once, on an answered call
    (R(200, connection=50), 125, 650),
    (R(250, 30, 6), 1, 125),                 # 30 s of 2.50/min
    (R(250, 30, 6), 31, 150),                # 36 s: 150
    (R(250, 30, 6), 61, 275),                # 66 s: 275
    (R(100, 1, 1), 1, 2),                    # 1.67 -> 2
    (R(1, 1, 1), 30, 1),                     # 0.5 rounds half up
    (R(1, 1, 1), 29, 0),                     # 0.483 -> 0
    (R(1, 1, 1, connection=7), 29, 7),
    (R(0), 600, 0), (R(0, connection=30), 600, 30),
    (R(350, 60, 60), 3600, 21000),
])
def test_outbound_cost(rate: OutboundRate, seconds: int, cost: int) -> None:
    assert outbound_cost(rate, seconds) == cost


def test_outbound_cost_refuses_a_negative_duration() -> None:
    with pytest.raises(ValidationError, match="call duration -5"):
        outbound_cost(R(100), -5)


# ---- what money affords ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("rate", "money", "seconds"), [
    (R(200), 0, 0), (R(200), 199, 0), (R(200), 200, 60), (R(200), 399, 60), (R(200), 400, 120),
    (R(200), -1, 0), (R(200), -10**9, 0),                 # an account in debt pays for nothing
    (R(200, connection=50), 249, 0), (R(200, connection=50), 250, 60), (R(200, connection=50), 449, 60),
    (R(250, 30, 6, 10), 134, 0), (R(250, 30, 6, 10), 135, 30), (R(250, 30, 6, 10), 159, 30),
    (R(250, 30, 6, 10), 160, 36), (R(250, 30, 6, 10), 1000, 234),
    (R(1, 1, 1), 0, 29), (R(1, 1, 1), 1, 89),             # rounding half up: 29 s cost 0, 89 s cost 1
    (R(3, 1, 1), 0, 9),                                   # 0.45 -> 0; 10 s = 0.5 -> 1
    (R(0), 0, UNLIMITED_SECONDS), (R(0), -1, 0),          # a free rate: any money >= 0, but not a debt
    (R(0, connection=50), 49, 0), (R(0, connection=50), 50, UNLIMITED_SECONDS),
    (R(200), 10**12, UNLIMITED_SECONDS),                  # capped
    (R(1, 60, 7), 10**12, 60 + (UNLIMITED_SECONDS - 60) // 7 * 7),      # capped at an interval's end
    (R(1, 60, 7), 0, 0),
])
def test_affordable_seconds(rate: OutboundRate, money: int, seconds: int) -> None:
    assert affordable_seconds(rate, money) == seconds


def _brute_affordable(rate: OutboundRate, money: int) -> int:
    best = 0
    for end in itertools.count(rate.initial, rate.increment):
        if end > UNLIMITED_SECONDS or outbound_cost(rate, end) > money:
            return best
        best = end


def test_affordable_seconds_against_the_definition_exhaustively() -> None:
    for price, (initial, increment), connection in itertools.product(
            (1, 3, 59, 60, 61, 200, 999), ((60, 60), (30, 6), (1, 1), (45, 7)), (0, 25)):
        rate = R(price, initial, increment, connection)
        for money in (*range(-2, 400), 1234, 9999):
            assert affordable_seconds(rate, money) == _brute_affordable(rate, money), (rate, money)


RATES = st.builds(OutboundRate, st.just("7"), st.integers(0, 100_000), st.integers(1, MAX_INTERVAL),
                  st.integers(1, MAX_INTERVAL), st.integers(0, 5_000))


@given(RATES, st.integers(0, 10**9))
def test_affordable_time_never_costs_more_than_the_money_and_one_more_interval_would(rate: OutboundRate,
                                                                                   money: int) -> None:
    seconds = affordable_seconds(rate, money)
    assert 0 <= seconds <= UNLIMITED_SECONDS
    assert outbound_cost(rate, seconds) <= money
    assert billed_seconds(seconds, rate.initial, rate.increment) == seconds       # whole intervals
    following = seconds + (rate.initial if seconds == 0 else rate.increment)
    if rate.price == 0 and rate.connection == 0:     # free: the last interval end within the cap
        assert seconds + rate.increment > UNLIMITED_SECONDS
    elif following <= UNLIMITED_SECONDS:          # not capped: one more interval is more than the money
        assert outbound_cost(rate, following) > money


@given(RATES, st.integers(-1000, 10**7), st.integers(0, 10**6))
def test_more_money_never_affords_less(rate: OutboundRate, money: int, more: int) -> None:
    assert affordable_seconds(rate, money + more) >= affordable_seconds(rate, money)


def test_affordable_seconds_refuses_money_that_is_not_an_int() -> None:
    with pytest.raises(ValidationError, match=r"money 1\.5"):
        affordable_seconds(R(100), 1.5)  # type: ignore[arg-type]


# ---- the rate record and its increment ------------------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "fragment"), [
    (("+49", 100), r"prefix '\+49' must be 1-15 digits"),
    (("", 100), "prefix ''"),
    (("1234567890123456", 100), "prefix '1234567890123456'"),
    (("4\u0669", 100), "prefix"),                       # a non-ASCII digit
    (("49", -1), "outbound rate 49: price -1"),
    (("49", True), "outbound rate 49: price True"),
    (("49", 1.5), "outbound rate 49: price 1.5"),
    (("49", 100, 0, 60), "increment 0/60"),
    (("49", 100, 60, 0), "increment 60/0"),
    (("49", 100, MAX_INTERVAL + 1, 60), f"increment {MAX_INTERVAL + 1}/60"),
    (("49", 100, 60, 60, -1), "connection charge -1"),
    (("49", 100, 60, 60, 0, "Ber\nlin"), "description contains"),
])
def test_outbound_rate_refuses(fields: tuple[object, ...], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        OutboundRate(*fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "parsed"), [
    ("60/60", (60, 60)), ("30/6", (30, 6)), ("1/1", (1, 1)), ("60", (60, 60)), ("6", (6, 6)),
    (" 30 / 6 ", (30, 6)), ("060/06", (60, 6)), (f"{MAX_INTERVAL}/1", (MAX_INTERVAL, 1)),
])
def test_parse_increment(text: str, parsed: tuple[int, int]) -> None:
    assert parse_increment(text) == parsed
    assert parse_increment(format_increment(*parsed)) == parsed


@pytest.mark.parametrize("text", ["", "/", "30/", "/6", "0/6", "30/0", f"{MAX_INTERVAL + 1}/1", "a/b", "30/6/1",
                                  "-1/1", "30/6\n", "\u0663/1", "30.5/6", "30,6"])
def test_parse_increment_refuses(text: str) -> None:
    with pytest.raises(ValidationError, match="increment"):
        parse_increment(text)


def test_format_increment() -> None:
    assert format_increment(30, 6) == "30/6" and format_increment(60, 60) == "60/60"


# ---- the CSV ---------------------------------------------------------------------------------------------------------
def test_seed_outbound_rates_file() -> None:
    rates = parse_outbound_rates_csv(SEED.read_text(encoding="utf-8"))
    assert rates[:2] == [OutboundRate("7495", 150, 60, 60, 0, "Moscow"), OutboundRate("7499", 150, 60, 60, 0, "Moscow")]
    assert OutboundRate("49", 600, 30, 6, 50, "Germany") in rates
    table = OutboundRateTable(rates)
    assert table.lookup("+4930123456") == OutboundRate("4930", 400, 30, 6, 0, "Berlin")
    assert table.lookup("+4989123456") == OutboundRate("49", 600, 30, 6, 50, "Germany")
    assert table.lookup("+12125550123") == OutboundRate("1", 300, 1, 1, 0, "USA and Canada")


def test_csv_spellings() -> None:
    text = ('\ufeffPrefix , Price,Description, increment,CONNECTION\n'
            '+4930,"2,50",Berlin,30/6,"0,10"\n'
            '49, 3 ,,,\n'            # empty increment and connection: 60/60 and 0
            '\n'
            '380,1.5,Ukraine,1\n'    # a short row: connection 0; N is N/N
            '1,0.20\n')
    assert parse_outbound_rates_csv(text) == [
        OutboundRate("4930", 250, 30, 6, 10, "Berlin"), OutboundRate("49", 300, 60, 60, 0, ""),
        OutboundRate("380", 150, 1, 1, 0, "Ukraine"), OutboundRate("1", 20, 60, 60, 0, "")]
    assert parse_outbound_rates_csv("prefix,price\n7,3.5\r\n") == [OutboundRate("7", 350)]
    assert parse_outbound_rates_csv("prefix,price,connection\n7,1,2\n") == [OutboundRate("7", 100, connection=200)]


@pytest.mark.parametrize(("text", "fragment"), [
    ("prefix,price\n4930,2.00\n49x,1\n", "outbound rates CSV line 3: prefix '49x' must be 1-15 digits"),
    ("prefix,price\n4930,abc\n", "line 2: price for prefix 4930: amount 'abc' is not a number"),
    ("prefix,price\n4930,2.005\n", "line 2: .*more than 2 decimals"),
    ("prefix,price\n4930,-1\n", "line 2: .*negative"),
    ("prefix,price\n4930,\n", "line 2: .*empty"),
    ("prefix,price,increment\n4930,2,30/0\n", "line 2: prefix 4930: increment '30/0' is out of range"),
    ("prefix,price,increment\n4930,2,30-6\n", "line 2: prefix 4930: increment '30-6' is not INITIAL/NEXT"),
    ("prefix,price,increment\n4930,2,\"30/6\n\"\n", "line 2: prefix 4930: increment '30/6\\\\n'"),
    ("prefix,price,connection\n4930,2,-0.10\n", "line 2: connection charge for prefix 4930: .*negative"),
    ("prefix,price,connection\n4930,2,x\n", "line 2: connection charge for prefix 4930: amount 'x'"),
    ("prefix,price\n4930,2\n49,2\n+4930,3\n", "line 4: prefix 4930 is already on line 2; keep one rate per prefix"),
    ("prefix;price\n4930;2\n", "line 1: header .*semicolons"),
    ("number,price\n4930,2\n", "line 1: header is 'number,price'; it must be prefix,price, then any of increment"),
    ("price,prefix\n2,4930\n", "line 1: header is 'price,prefix'"),
    ("prefix,price,increment,increment\n4930,2,1,1\n", "line 1: header"),
    ("prefix,price,extra\n4930,2,x\n", "line 1: header"),
    ("prefix\n4930\n", "line 1: header"),
    ("prefix,price\n4930,3,50\n", "line 2: 3 columns, the header has 2"),
    ("prefix,price\n4930\n", "line 2: 1 columns"),
    ("prefix,price\n\n4930,2\n\n49x,1\n", "line 5: prefix '49x'"),     # blank lines still count
    ("prefix,price\n,2\n", "line 2: prefix ''"),
    ("prefix,price\n1234567890123456,2\n", "line 2: prefix '1234567890123456'"),
    ("", "outbound rates CSV is empty"),
    ("\n\n", "outbound rates CSV is empty"),
    ("prefix,price\n", "no rates after the header"),
    ('prefix,price,description\n4930,2,"Berlin\n"\n', "line 2: description contains '\\\\n'"),
    ('prefix,price,description\n4930,2,"a\u2028b"\n', "line 2: description contains '\\\\u2028'"),
    ('prefix,price,description\n4930,2,' + "x" * 256 + "\n", "line 2: description is 256 characters"),
])
def test_bad_csv_names_the_line_and_the_fix(text: str, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        parse_outbound_rates_csv(text)


def test_csv_text_must_be_text() -> None:
    with pytest.raises(ValidationError, match="outbound rates CSV: pass the file's text"):
        parse_outbound_rates_csv(b"prefix,price\n")  # type: ignore[arg-type]


# ---- the table -------------------------------------------------------------------------------------------------------
def test_longest_prefix_wins() -> None:
    table = OutboundRateTable([R(600, prefix="49"), R(400, prefix="4930"), R(500, prefix="493")])
    assert table.lookup("+4930123456").prefix == "4930"        # type: ignore[union-attr]
    assert table.lookup("4931123456").prefix == "493"          # type: ignore[union-attr]   digits without + too
    assert table.lookup("+4989123456").prefix == "49"          # type: ignore[union-attr]
    assert table.lookup("+380441234567") is None
    assert table.lookup("") is None and table.lookup("+") is None
    assert len(table) == 3 and "4930" in table and "4" not in table
    assert OutboundRateTable([]).lookup("+4930123456") is None


def test_table_refuses_duplicates_and_other_objects() -> None:
    with pytest.raises(ValidationError, match="prefix 49 is listed twice; keep one rate per prefix"):
        OutboundRateTable([R(600), R(500)])
    with pytest.raises(ValidationError, match="is not an OutboundRate"):
        OutboundRateTable([("49", 600)])  # type: ignore[list-item]


PREFIX = st.text(alphabet="0123", min_size=1, max_size=6)      # a small alphabet, so prefixes nest and collide


@given(st.dictionaries(PREFIX, st.integers(0, 10**6), max_size=60),
       st.lists(st.text(alphabet="0123", max_size=9), min_size=1, max_size=30), st.booleans())
def test_lookup_equals_brute_force_longest_prefix(prices: dict[str, int], numbers: list[str], plus: bool) -> None:
    table = OutboundRateTable(OutboundRate(p, price) for p, price in prices.items())
    for number in numbers:
        hits = [p for p in prices if number.startswith(p)]
        found = table.lookup(("+" if plus else "") + number)
        if not hits:
            assert found is None
        else:
            best = max(hits, key=len)
            assert found == OutboundRate(best, prices[best])


def test_cost_formula_is_the_toll_free_rounding() -> None:
    # the same half-up rounding as toll-free rating: price * billed / 60
    for price, seconds in itertools.product((1, 7, 250, 999), (1, 29, 30, 31, 59, 61, 3599)):
        assert outbound_cost(R(price, 1, 1), seconds) == div_half_up(price * seconds, 60)

"""vpbx.billing.tariff: the seed price list's figures, strict TOML validation (the bad key is named), fee look-ups."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from vpbx.billing.tariff import Plan, Tariff, area_code, connection_fee, find_plan, monthly_fee, parse_tariff
from vpbx.domain.errors import ValidationError

SEED = Path(__file__).resolve().parent.parent / "tariffs" / "seed-ru.toml"

MINIMAL = """
currency = "EUR"
[connection]
default = 10
[monthly.geographic]
regular = "4.99"
"""


@pytest.fixture(scope="module")
def seed() -> Tariff:
    return parse_tariff(SEED.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------------------------
# The seed tariff


def test_seed_basics(seed: Tariff) -> None:
    assert seed.currency == "RUB"
    assert seed.source == SEED.read_text(encoding="utf-8")
    assert seed.connection_default == 100000
    assert seed.prepay_discounts == {3: 5, 6: 10, 12: 15}
    assert (seed.volume_min_numbers, seed.volume_percent) == (5, 5)
    assert seed.tollfree_increment_seconds == 60


@pytest.mark.parametrize(("number", "type", "fee"), [
    ("+74951234567", "geographic", 250000),   # Moscow 495: 2 500 RUB
    ("+74991234567", "geographic", 100000),
    ("+78121234567", "geographic", 100000),
    ("+73431234567", "geographic", 100000),
    ("+78311234567", "geographic", 100000),
    ("+78631234567", "geographic", 100000),
    ("+78431234567", "geographic", 100000),
    ("+78001234567", "tollfree", 295000),     # 8-800: 2 950 RUB
    ("+73952123456", "geographic", 100000),   # Irkutsk: no rule, the default
    ("+79161234567", "mobile", 100000),       # mobile: the default
])
def test_seed_connection_fees(seed: Tariff, number: str, type: str, fee: int) -> None:
    assert connection_fee(seed, number, type) == fee


def test_seed_connection_table(seed: Tariff) -> None:
    assert seed.connection_by_area == {"495": 250000, "499": 100000, "812": 100000, "343": 100000, "831": 100000,
                                       "863": 100000, "843": 100000}
    assert seed.connection_by_type == {"tollfree": 295000}


@pytest.mark.parametrize(("type", "category", "fee"), [
    ("geographic", "regular", 50000),
    ("geographic", "bronze", 100000),
    ("geographic", "silver", 200000),
    ("geographic", "gold", 500000),
    ("geographic", "platinum", 1000000),
    ("mobile", "regular", 50000),
    ("mobile", "gold", 500000),
    ("tollfree", "regular", 150000),
    ("tollfree", "platinum", 2000000),
    ("other", "regular", 50000),
    ("other", "gold", 50000),                 # no gold fee for `other`: falls back to regular
])
def test_seed_monthly_fees(seed: Tariff, type: str, category: str, fee: int) -> None:
    assert monthly_fee(seed, type, category) == fee


def test_seed_plans(seed: Tariff) -> None:
    assert seed.plans == {
        "prosto": Plan(key="prosto", name="Просто", monthly=100000, call_credit=20000, types=("geographic", "mobile")),
        "standart": Plan(key="standart", name="Стандарт", monthly=150000, call_credit=0, types=("tollfree",)),
    }
    assert monthly_fee(seed, "geographic", "gold", "prosto") == 100000
    assert monthly_fee(seed, "mobile", "regular", "prosto") == 100000
    assert monthly_fee(seed, "tollfree", "silver", "standart") == 150000
    assert find_plan(seed, "prosto").key == "prosto"
    assert find_plan(seed, "Просто").key == "prosto"          # a front end may resolve display names ...
    assert find_plan(seed, " стандарт ").key == "standart"
    with pytest.raises(ValidationError, match="plan 'Просто' is not in the tariff"):
        monthly_fee(seed, "geographic", "regular", "Просто")  # ... the fee look-ups take keys only
    with pytest.raises(ValidationError, match=r"plan 'Simple' is not in the tariff \(plans: prosto \(Просто\), "
                                              r"standart \(Стандарт\)\)"):
        find_plan(seed, "Simple")


def test_plan_errors(seed: Tariff) -> None:
    with pytest.raises(ValidationError, match=r"plan 'standart' is not for geographic numbers"):
        monthly_fee(seed, "geographic", "regular", "standart")
    with pytest.raises(ValidationError, match=r"plan 'gold-plus' is not in the tariff \(plans: prosto \(Просто\)"):
        monthly_fee(seed, "geographic", "regular", "gold-plus")


def test_monthly_fee_errors(seed: Tariff) -> None:
    with pytest.raises(ValidationError, match="number type 'landline' is unknown"):
        monthly_fee(seed, "landline", "regular")
    with pytest.raises(ValidationError, match="category 'diamond' is unknown"):
        monthly_fee(seed, "geographic", "diamond")
    minimal = parse_tariff(MINIMAL)
    with pytest.raises(ValidationError, match=r"no monthly fee for mobile numbers; add \[monthly.mobile\]"):
        monthly_fee(minimal, "mobile", "regular")


def test_tariff_is_frozen(seed: Tariff) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        seed.currency = "USD"  # type: ignore[misc]


def test_minimal_tariff_defaults() -> None:
    t = parse_tariff(MINIMAL)
    assert t.currency == "EUR"
    assert t.connection_default == 1000
    assert t.monthly == {"geographic": {"regular": 499}}
    assert (t.connection_by_area, t.connection_by_type, t.plans, t.prepay_discounts) == ({}, {}, {}, {})
    assert t.volume_percent == 0
    assert t.tollfree_increment_seconds == 60
    assert monthly_fee(t, "geographic", "platinum") == 499


# ---------------------------------------------------------------------------------------------------------------------
# Area codes and connection precedence


@pytest.mark.parametrize(("number", "code"), [
    ("+74951234567", "495"),
    ("+78001234567", "800"),
    ("+79161234567", "916"),
    ("+380441234567", "44"),       # Kyiv, via phonenumbers
    ("+12125550100", "212"),
    ("+442079460000", "20"),       # London
    ("+4915112345678", ""),        # a German mobile has no geographic area code
])
def test_area_code(number: str, code: str) -> None:
    assert area_code(number) == code


@pytest.mark.parametrize("number", ["74951234567", "+7 495 123", "", "+0123456789"])
def test_area_code_refuses_non_e164(number: str) -> None:
    with pytest.raises(ValidationError, match=r"not E\.164"):
        area_code(number)


def test_connection_fee_precedence() -> None:
    t = parse_tariff(MINIMAL + """
[connection.area]
800 = 30
[connection.type]
tollfree = 20
[monthly.tollfree]
regular = 1
""")
    assert connection_fee(t, "+78001234567", "tollfree") == 3000     # area code first
    assert connection_fee(t, "+78041234567", "tollfree") == 2000     # then type
    assert connection_fee(t, "+74951234567", "geographic") == 1000   # then default
    with pytest.raises(ValidationError, match="number type 'fixed' is unknown"):
        connection_fee(t, "+74951234567", "fixed")


# ---------------------------------------------------------------------------------------------------------------------
# Strict validation: every bad file names the key


BASE_HEAD = 'currency = "RUB"\n'
BASE_CONN = '[connection]\ndefault = 1000\n'
BASE_MONTHLY = '[monthly.geographic]\nregular = 500\n'


def _doc(*extra: str, head: str = BASE_HEAD, conn: str = BASE_CONN, monthly: str = BASE_MONTHLY) -> str:
    return head + conn + monthly + "".join(extra)


@pytest.mark.parametrize(("text", "fragment"), [
    (_doc(head='curency = "RUB"\ncurrency = "RUB"\n'), "key 'curency' is unknown"),
    (_doc(head='currency = "rub"\n'), "currency"),
    (_doc(head='currency = "RUBL"\n'), "currency"),
    (_doc(head=""), "'currency'"),
    (_doc(conn='[connection]\ndefault = 1000\naera = 5\n'), "key 'connection.aera' is unknown"),
    (_doc(conn='[connection]\n'), "'connection.default' is missing"),
    (_doc(conn=''), r"\[connection\] is missing"),
    (_doc(conn='connection = 5\n'), "'connection' must be a table"),
    (_doc('[connection.area]\n49a = 5\n'), "connection.area.49a"),
    (_doc('[connection.type]\nlandline = 5\n'), "connection.type.landline"),
    (_doc(monthly=''), r"\[monthly\] is missing"),
    (_doc(monthly='[monthly]\n'), r"\[monthly\] is empty"),
    (_doc(monthly='[monthly.geographic]\nregular = 500\ngolden = 5\n'), "key 'monthly.geographic.golden' is unknown"),
    (_doc(monthly='[monthly.landline]\nregular = 500\n'), "monthly.landline"),
    (_doc(monthly='[monthly.geographic]\nregular = 3.5\n'), "'monthly.geographic.regular'.*float"),
    (_doc(monthly='[monthly.geographic]\nregular = "3.505"\n'), "'monthly.geographic.regular'.*more than 2 decimals"),
    (_doc(monthly='[monthly.geographic]\nregular = -5\n'), "'monthly.geographic.regular'.*out of range"),
    (_doc(monthly='[monthly.geographic]\nregular = "-5"\n'), "'monthly.geographic.regular'.*negative"),
    (_doc(monthly='[monthly.geographic]\nregular = true\n'), "'monthly.geographic.regular'.*not an amount"),
    (_doc(monthly='[monthly.geographic]\nregular = [1]\n'), "'monthly.geographic.regular'.*not an amount"),
    (_doc(monthly='[monthly.geographic]\ngold = 500\n'), "'monthly.geographic.regular' is missing"),
    (_doc('[monthly.mobile]\ngold = 500\n'), "'monthly.mobile.regular' is missing"),
    (_doc('[connection.type]\ntollfree = 2950\n'), "'monthly.tollfree.regular' is missing"),
    (_doc('[plans.std]\nname = "S"\nmonthly = 1\ntypes = ["tollfree"]\n'), "'monthly.tollfree.regular' is missing"),
    (_doc('[plans.prosto]\nname = "P"\nmonthly = 1000\ncredit = 200\ntypes = ["geographic"]\n'),
     "key 'plans.prosto.credit' is unknown"),
    (_doc('[plans.prosto]\nname = "P"\ntypes = ["geographic"]\n'), "'plans.prosto.monthly' is missing"),
    (_doc('[plans.prosto]\nname = "P"\nmonthly = 100\ncall_credit = 200\ntypes = ["geographic"]\n'),
     "'plans.prosto.call_credit' is more than"),
    (_doc('[plans.prosto]\nname = "P"\nmonthly = 100\ntypes = []\n'), "'plans.prosto.types' must be a non-empty list"),
    (_doc('[plans.prosto]\nname = "P"\nmonthly = 100\ntypes = ["geographic", "geographic"]\n'), "lists a type twice"),
    (_doc('[plans.prosto]\nname = "P"\nmonthly = 100\ntypes = ["fax"]\n'), "plans.prosto.types.*'fax'"),
    (_doc('[plans.prosto]\nname = ""\nmonthly = 100\ntypes = ["geographic"]\n'), "'plans.prosto.name' must be"),
    (_doc('[plans."Просто"]\nname = "P"\nmonthly = 100\ntypes = ["geographic"]\n'),
     "key 'plans.Просто' is not a plan key"),
    (_doc('[plans.a]\nname = "P"\nmonthly = 100\ntypes = ["geographic"]\n'
          '[plans.b]\nname = "p"\nmonthly = 100\ntypes = ["geographic"]\n'),
     "'plans.b.name'.*already the name of plan 'a'"),
    (_doc('[plans."prosto\\n"]\nname = "P"\nmonthly = 100\ntypes = ["geographic"]\n'),
     "key 'plans.prosto\n' is not a plan key"),
    (_doc('[plans.prosto]\nname = "P\\n"\nmonthly = 100\ntypes = ["geographic"]\n'),
     "'plans.prosto.name' = 'P\\\\n' is not one line of plain text"),
    (_doc('[plans.prosto]\nname = "P\\u2028"\nmonthly = 100\ntypes = ["geographic"]\n'),
     "'plans.prosto.name' = 'P\\\\u2028' is not one line"),
    (_doc('[discounts.prepay]\n4 = 5\n'), "key 'discounts.prepay.4' is not a prepay period"),
    (_doc('[discounts.prepay]\n3 = 101\n'), "'discounts.prepay.3' = 101 must be a whole number from 0 to 100"),
    (_doc('[discounts.prepay]\n3 = "5"\n'), "'discounts.prepay.3'"),
    (_doc('[discounts.prepay]\n3 = 5.5\n'), "'discounts.prepay.3'"),
    (_doc('[discounts.volume]\npercent = 5\n'), "'discounts.volume.min_numbers' is missing"),
    (_doc('[discounts.volume]\nmin_numbers = 5\npercent = 150\n'), "'discounts.volume.percent' = 150"),
    (_doc('[discounts.volume]\nmin_numbers = 0\npercent = 5\n'), "'discounts.volume.min_numbers' = 0"),
    (_doc('[discounts]\nloyalty = 5\n'), "key 'discounts.loyalty' is unknown"),
    (_doc('[rating]\ntollfree_increment_seconds = 0\n'), "'rating.tollfree_increment_seconds' = 0"),
    (_doc('[rating]\nincrement = 60\n'), "key 'rating.increment' is unknown"),
    ('currency = "RUB"\n[connection\n', "not valid TOML"),
])
def test_bad_tariffs_name_the_key(text: str, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment) as info:
        parse_tariff(text)
    assert str(info.value).startswith("tariff")


def test_good_base_document_parses() -> None:
    # the fixture the bad cases above are built from is itself valid, so each failure is the one change made
    t = parse_tariff(_doc())
    assert t.monthly == {"geographic": {"regular": 50000}}
    assert t.connection_default == 100000


def test_amount_spellings_in_toml() -> None:
    t = parse_tariff(_doc(monthly='[monthly.geographic]\nregular = "2 500"\nbronze = "3,50"\nsilver = 2500\n'
                                  'gold = "0.01"\n'))
    assert t.monthly["geographic"] == {"regular": 250000, "bronze": 350, "silver": 250000, "gold": 1}

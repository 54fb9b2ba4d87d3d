"""Tariffs: the provider's price list (TOML) parsed into a frozen Tariff, and the fee look-ups orders and renewals use.

Rule: pure, no SQL, no I/O, no Click, no asyncio: `parse_tariff` takes the file's text (the caller reads the file and
stores `Tariff.source`). Amounts are written in MAJOR units, as strings ("2 500", "3.50") or ints (2500), never as
TOML floats, and held as int minor units. Validation is strict: an unknown key, type, category or month count is
refused with ValidationError naming the key, so a typo never silently prices a number at the default.

The file's shape (tariffs/seed-ru.toml is the full example, documented at its top):

    currency = "RUB"
    [connection]                    default = "1 000"              one-off fee when no rule below matches
    [connection.area]               495 = "2 500"                  by national area code (+7 495 ... -> "495")
    [connection.type]               tollfree = "2 950"             by number type, when no area code matched
    [monthly.geographic]            regular = 500, gold = "5 000"  by type, then category; `regular` is required
    [plans.prosto]                  name, monthly, call_credit, types = ["geographic", "mobile"]
    [discounts.prepay]              3 = 5, 6 = 10, 12 = 15         months paid in advance = percent off
    [discounts.volume]              min_numbers = 5, percent = 5   numbers in one order = percent off
    [rating]                        tollfree_increment_seconds = 60
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any

from vpbx.billing.money import MAX_MAJOR, MINOR_PER_MAJOR, parse_amount
from vpbx.domain.errors import ValidationError
from vpbx.domain.numbers import CATEGORIES, TYPES, is_e164
from vpbx.domain.validation import TEXT_MAX, shown

PREPAY_MONTHS = (3, 6, 12)
PLAN_KEY_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,31}\Z")
AREA_CODE_RE = re.compile(r"\A[0-9]{1,6}\Z")
CURRENCY_RE = re.compile(r"\A[A-Z]{3}\Z")
DEFAULT_TOLLFREE_INCREMENT = 60


@dataclass(frozen=True)
class Plan:
    """A named bundle: a monthly fee (of which `call_credit` is credit for calls, not rolled over) for some types."""

    key: str
    name: str
    monthly: int
    call_credit: int
    types: tuple[str, ...]


@dataclass(frozen=True)
class Tariff:
    """A parsed price list; every amount is int minor units of `currency`."""

    currency: str
    connection_default: int
    connection_by_area: dict[str, int]
    connection_by_type: dict[str, int]
    monthly: dict[str, dict[str, int]]  # type -> category -> fee
    plans: dict[str, Plan]
    prepay_discounts: dict[int, int]  # months -> percent
    volume_min_numbers: int
    volume_percent: int
    tollfree_increment_seconds: int
    source: str  # the TOML text


# --------------------------------------------------------------------------------------------------------------------
# Parsing


def _err(key: str, problem: str) -> ValidationError:
    return ValidationError(f"tariff: {key} {problem}")


def _table(
    doc: dict[str, Any], key: str, path: str, known: tuple[str, ...] | None, *, required: bool,
) -> dict[str, Any]:
    """doc[key] as a table (empty when absent and not required), refusing keys outside `known`."""
    full = f"{path}.{key}" if path else key
    if key not in doc:
        if required:
            raise _err(f"[{full}]", "is missing; add the table (see tariffs/seed-ru.toml)")
        return {}
    value = doc[key]
    if not isinstance(value, dict):
        raise _err(f"'{full}'", "must be a table ([" + full + "]), not a single value")
    if known is not None:
        _refuse_unknown(value, full, known)
    return value


def _refuse_unknown(table: dict[str, Any], path: str, known: tuple[str, ...]) -> None:
    for k in table:
        if k not in known:
            full = f"{path}.{k}" if path else k
            raise _err(f"key '{full}'", f"is unknown; known keys here: {', '.join(known)}")


def _amount(value: Any, key: str) -> int:
    """A fee written in major units: "2 500", "3.50" or an int; int minor units out."""
    if isinstance(value, bool):
        raise _err(f"'{key}'", f"= {value!r} is not an amount; write it like 2500 or \"2 500\" or \"3.50\"")
    if isinstance(value, int):
        if not 0 <= value <= MAX_MAJOR:
            raise _err(f"'{key}'", f"= {value} is out of range; give 0 to 10^12")
        return value * MINOR_PER_MAJOR
    if isinstance(value, float):
        raise _err(f"'{key}'", f"= {value!r} is a float; write amounts with decimals as strings, e.g. \"3.50\"")
    if isinstance(value, str):
        try:
            return parse_amount(value)
        except ValidationError as exc:
            raise _err(f"'{key}'", f"is not a valid amount: {exc}") from None
    raise _err(f"'{key}'", f"= {value!r} is not an amount; write it like 2500 or \"2 500\" or \"3.50\"")


def _int(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _err(f"'{key}'", f"= {value!r} must be a whole number from {low} to {high}")
    return value


def _type(name: str, key: str) -> str:
    if name not in TYPES:
        raise _err(f"key '{key}'", f"names an unknown number type {name!r}; types are {', '.join(TYPES)}")
    return name


def parse_tariff(text: str) -> Tariff:
    """Parse and validate a tariff file's TOML text; ValidationError names the offending key and the fix."""
    if not isinstance(text, str):
        raise ValidationError("tariff: pass the file's text (str) to parse_tariff")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"tariff is not valid TOML ({exc}); fix the syntax (see tariffs/seed-ru.toml)") from None
    _refuse_unknown(doc, "", ("currency", "connection", "monthly", "plans", "discounts", "rating"))

    currency = doc.get("currency")
    if not isinstance(currency, str) or not CURRENCY_RE.fullmatch(currency):
        raise _err("'currency'", f"= {currency!r} must be a 3-letter upper-case ISO code, e.g. currency = \"RUB\"")

    connection = _table(doc, "connection", "", ("default", "area", "type"), required=True)
    if "default" not in connection:
        raise _err("'connection.default'",
                   "is missing; add the fee for numbers no other rule matches, e.g. default = 1000")
    connection_default = _amount(connection["default"], "connection.default")
    by_area: dict[str, int] = {}
    for code, fee in _table(connection, "area", "connection", None, required=False).items():
        if not AREA_CODE_RE.fullmatch(code):
            raise _err(f"key 'connection.area.{code}'", "is not an area code; use 1-6 digits without the country code")
        by_area[code] = _amount(fee, f"connection.area.{code}")
    by_type: dict[str, int] = {}
    for name, fee in _table(connection, "type", "connection", None, required=False).items():
        by_type[_type(name, f"connection.type.{name}")] = _amount(fee, f"connection.type.{name}")

    monthly: dict[str, dict[str, int]] = {}
    monthly_doc = _table(doc, "monthly", "", None, required=True)
    if not monthly_doc:
        raise _err("[monthly]", "is empty; add at least [monthly.geographic] with regular = ...")
    for name in monthly_doc:
        _type(name, f"monthly.{name}")
        fees = _table(monthly_doc, name, "monthly", CATEGORIES, required=True)
        monthly[name] = {cat: _amount(fee, f"monthly.{name}.{cat}") for cat, fee in fees.items()}

    plans: dict[str, Plan] = {}
    for key in _table(doc, "plans", "", None, required=False):
        path = f"plans.{key}"
        if not PLAN_KEY_RE.fullmatch(key):
            raise _err(f"key '{path}'", "is not a plan key; use lower-case latin letters, digits, - or _ "
                       "(the display name goes in name = \"...\")")
        p = _table(doc["plans"], key, "plans", ("name", "monthly", "call_credit", "types"), required=True)
        for needed in ("name", "monthly", "types"):
            if needed not in p:
                raise _err(f"'{path}.{needed}'", "is missing; a plan needs name, monthly and types")
        pname = p["name"]
        if not isinstance(pname, str) or not pname.strip(" "):
            raise _err(f"'{path}.name'", "must be a non-empty string")
        if not pname.isprintable() or len(pname) > TEXT_MAX:
            raise _err(f"'{path}.name'", f"= {shown(pname)} is not one line of plain text (printable, at most "
                                         f"{TEXT_MAX} characters); remove line breaks and control characters")
        pname = pname.strip(" ")
        fee = _amount(p["monthly"], f"{path}.monthly")
        credit = _amount(p.get("call_credit", 0), f"{path}.call_credit")
        if credit > fee:
            raise _err(f"'{path}.call_credit'", "is more than the plan's monthly fee; the credit is part of that fee")
        types = p["types"]
        if not isinstance(types, list) or not types or not all(isinstance(x, str) for x in types):
            raise _err(f"'{path}.types'", "must be a non-empty list of number types, e.g. [\"geographic\", \"mobile\"]")
        if len(set(types)) != len(types):
            raise _err(f"'{path}.types'", "lists a type twice; list each type once")
        for x in types:
            _type(x, f"{path}.types")
        clash = [q.key for q in plans.values() if q.name.casefold() == pname.casefold()]
        if clash:
            raise _err(f"'{path}.name'",
                       f"= {pname!r} is already the name of plan {clash[0]!r}; give each plan its own name")
        plans[key] = Plan(key=key, name=pname, monthly=fee, call_credit=credit, types=tuple(types))

    discounts = _table(doc, "discounts", "", ("prepay", "volume"), required=False)
    prepay: dict[int, int] = {}
    for months, percent in _table(discounts, "prepay", "discounts", None, required=False).items():
        if months not in tuple(str(m) for m in PREPAY_MONTHS):
            raise _err(f"key 'discounts.prepay.{months}'", "is not a prepay period; use 3, 6 or 12 (months)")
        prepay[int(months)] = _int(percent, f"discounts.prepay.{months}", 0, 100)
    volume = _table(discounts, "volume", "discounts", ("min_numbers", "percent"), required=False)
    if volume and set(volume) != {"min_numbers", "percent"}:
        missing = "min_numbers" if "min_numbers" not in volume else "percent"
        raise _err(f"'discounts.volume.{missing}'", "is missing; the volume discount needs min_numbers and percent")
    volume_min = _int(volume.get("min_numbers", 1), "discounts.volume.min_numbers", 1, 1_000_000)
    volume_percent = _int(volume.get("percent", 0), "discounts.volume.percent", 0, 100)

    rating = _table(doc, "rating", "", ("tollfree_increment_seconds",), required=False)
    increment = _int(rating.get("tollfree_increment_seconds", DEFAULT_TOLLFREE_INCREMENT),
                     "rating.tollfree_increment_seconds", 1, 3600)

    used = set(monthly) | set(by_type) | {x for plan in plans.values() for x in plan.types}
    for name in sorted(used):
        if "regular" not in monthly.get(name, {}):
            raise _err(f"'monthly.{name}.regular'", f"is missing; every number type the tariff uses needs a regular "
                       f"monthly fee (add [monthly.{name}] regular = ...)")

    return Tariff(
        currency=currency,
        connection_default=connection_default,
        connection_by_area=by_area,
        connection_by_type=by_type,
        monthly=monthly,
        plans=plans,
        prepay_discounts=prepay,
        volume_min_numbers=volume_min,
        volume_percent=volume_percent,
        tollfree_increment_seconds=increment,
        source=text,
    )


# --------------------------------------------------------------------------------------------------------------------
# Look-ups


def area_code(number: str) -> str:
    """The national area code used for connection fees: for +7 the 3 digits after "+7" (+74951234567 -> "495",
    +78001234567 -> "800"); elsewhere phonenumbers' geographic area code (+380441234567 -> "44"), "" when none."""
    if not is_e164(number):
        raise ValidationError(f"number {shown(number)} is not E.164; write it as + country code and digits, "
                              f"e.g. +74951234567")
    if number.startswith("+7"):
        return number[2:5]
    import phonenumbers

    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ""
    length = phonenumbers.length_of_geographical_area_code(parsed)
    return phonenumbers.national_significant_number(parsed)[:length] if length > 0 else ""


def _check_type(t: Tariff, type: str) -> None:
    if type not in TYPES:
        raise ValidationError(f"number type {type!r} is unknown; types are {', '.join(TYPES)}")


def connection_fee(t: Tariff, number: str, type: str) -> int:
    """The one-off connection fee: by area code first, then by number type, then the tariff's default."""
    _check_type(t, type)
    code = area_code(number)
    if code and code in t.connection_by_area:
        return t.connection_by_area[code]
    if type in t.connection_by_type:
        return t.connection_by_type[type]
    return t.connection_default


def find_plan(t: Tariff, plan: str) -> Plan:
    """The plan with that key, or else with that display name (case-insensitive: "Просто" finds `prosto`); for
    front ends that let a sysadmin type either. The other look-ups take the key only."""
    if plan in t.plans:
        return t.plans[plan]
    matches = [p for p in t.plans.values() if isinstance(plan, str) and p.name.casefold() == plan.strip(" ").casefold()]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(f"{p.key} ({p.name})" for p in t.plans.values()) or "none"
    raise ValidationError(f"plan {shown(plan)} is not in the tariff (plans: {known}); pick one of them or no plan")


def monthly_fee(t: Tariff, type: str, category: str, plan: str | None = None) -> int:
    """The monthly fee: the plan's when a plan key is given (it must exist and cover the type), else the tariff's fee
    for the type and category, falling back to the type's `regular` fee."""
    _check_type(t, type)
    if category not in CATEGORIES:
        raise ValidationError(f"category {category!r} is unknown; categories are {', '.join(CATEGORIES)}")
    if plan is not None:
        p = t.plans.get(plan)
        if p is None:
            known = ", ".join(f"{q.key} ({q.name})" for q in t.plans.values()) or "none"
            raise ValidationError(f"plan {shown(plan)} is not in the tariff (plans: {known}); "
                                  f"give a plan's key or no plan")
        if type not in p.types:
            raise ValidationError(f"plan {shown(plan)} is not for {type} numbers (it covers {', '.join(p.types)}); "
                                  f"pick another plan or no plan")
        return p.monthly
    fees = t.monthly.get(type)
    if not fees or "regular" not in fees:
        raise ValidationError(f"the tariff has no monthly fee for {type} numbers; add [monthly.{type}] regular = ... "
                              f"to the tariff and load it again")
    return fees.get(category, fees["regular"])

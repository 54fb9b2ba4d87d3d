"""Phone number rules: E.164 validation, type/city/operator lookup (phonenumbers) and the "beauty" category.

Rule: pure functions; the category is computed from the digit pattern of the subscriber part (the national number
without its area / destination code) by the first matching row of CATEGORY_RULES.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from vpbx.domain.errors import ValidationError
from vpbx.domain.validation import shown

CATEGORIES = ("regular", "bronze", "silver", "gold", "platinum")
TYPES = ("geographic", "mobile", "tollfree", "other")
# The one E.164 pattern of vpbx: '+', a country code not starting with 0, 7-15 digits in all. ASCII digits only
# (`\d` would also take Arabic-Indic and other Unicode digits) and anchored at both ends (`$` alone also matches
# before a final newline).
E164_RE = re.compile(r"\A\+[1-9][0-9]{6,14}\Z")
E164_EXAMPLE = "+380441234567"


def is_e164(text: object) -> bool:
    """`text` is a string of E.164 syntax (no check of the country's numbering plan: see parse())."""
    return isinstance(text, str) and E164_RE.fullmatch(text) is not None


def _longest_repeat(d: str) -> int:
    best = cur = 1 if d else 0
    for a, b in pairwise(d):
        cur = cur + 1 if a == b else 1
        best = max(best, cur)
    return best


def _longest_run(d: str) -> int:
    """Longest run of consecutive ascending or descending digits (1234, 9876)."""
    best = 1 if d else 0
    for step in (1, -1):
        cur = 1
        for a, b in pairwise(d):
            cur = cur + 1 if int(b) - int(a) == step else 1
            best = max(best, cur)
    return best


def _is_mirror(d: str) -> bool:
    return len(d) >= 4 and d == d[::-1]


def _repeating_block(d: str, size: int) -> bool:
    """d is one block of `size` digits repeated (121212, 123123)."""
    return len(d) >= 2 * size and len(d) % size == 0 and d == d[:size] * (len(d) // size)


# One table: the first row whose test matches the subscriber part gives the category.
CATEGORY_RULES: tuple[tuple[str, str, Callable[[str], bool]], ...] = (
    ("platinum", "all digits the same (7777777)", lambda d: len(set(d)) == 1),
    ("platinum", "6+ same digits in a row (1000000)", lambda d: _longest_repeat(d) >= 6),
    ("gold", "5 same digits in a row (1255555)", lambda d: _longest_repeat(d) >= 5),
    ("gold", "only two different digits (1211211)", lambda d: len(set(d)) == 2),
    ("gold", "6+ digit run up or down (1234567, 9876543)", lambda d: _longest_run(d) >= 6),
    ("silver", "4 same digits in a row (1230000)", lambda d: _longest_repeat(d) >= 4),
    ("silver", "mirror of the whole part (1234321)", _is_mirror),
    ("silver", "one block of 3 repeated (123123, 6-digit parts)", lambda d: _repeating_block(d, 3)),
    ("silver", "5 digit run up or down (3456789 has 7, 1212345 has 5)", lambda d: _longest_run(d) >= 5),
    ("bronze", "ends in 3 same digits (1234777)", lambda d: len(d) >= 3 and len(set(d[-3:])) == 1),
    ("bronze", "ends in a mirror of 4 (1231221)", lambda d: _is_mirror(d[-4:])),
    ("bronze", "ends in two pairs (1231122)", lambda d: len(d) >= 4 and d[-4] == d[-3] and d[-2] == d[-1]),
    ("bronze", "4 digit run up or down (5551234 excluded above; 9071234)", lambda d: _longest_run(d) >= 4),
)


def category_of(subscriber: str) -> str:
    for name, _why, test in CATEGORY_RULES:
        if test(subscriber):
            return name
    return "regular"


@dataclass(frozen=True)
class NumberInfo:
    number: str
    country: str
    type: str
    city: str
    operator: str
    subscriber: str
    category: str


def parse(number: str) -> NumberInfo:
    """Validate an E.164 number and describe it; ValidationError names the number and the fix."""
    import phonenumbers
    from phonenumbers import PhoneNumberType, carrier, geocoder

    if not is_e164(number):
        raise ValidationError(f"number {shown(number)} is not E.164; write it as + country code and digits, "
                              f"e.g. {E164_EXAMPLE}")
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(f"number {shown(number)} cannot be parsed ({exc}); write it as E.164, "
                              f"e.g. {E164_EXAMPLE}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError(f"number {shown(number)} is not a valid phone number for its country; check the digits")
    kind = phonenumbers.number_type(parsed)
    if kind == PhoneNumberType.TOLL_FREE:
        ntype = "tollfree"
    elif kind in (PhoneNumberType.MOBILE,):
        ntype = "mobile"
    elif kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        ntype = "geographic"
    else:
        ntype = "other"
    nsn = phonenumbers.national_significant_number(parsed)
    ndc = phonenumbers.length_of_national_destination_code(parsed)
    subscriber = nsn[ndc:] if 0 < ndc < len(nsn) else nsn
    return NumberInfo(
        number=number,
        country=phonenumbers.region_code_for_number(parsed) or "",
        type=ntype,
        # the *_for_valid_number forms: the number is valid and its type known (an import parses 100 000 of them);
        # a fixed-line type is geographical, and a carrier is named only for the mobile types (as name_for_number)
        city=geocoder.description_for_valid_number(parsed, "en") if ntype == "geographic" else "",
        operator=(carrier.name_for_valid_number(parsed, "en") or "") if kind in (
            PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE, PhoneNumberType.PAGER) else "",
        subscriber=subscriber,
        category=category_of(subscriber),
    )


def country_of(number: str) -> str | None:
    """The ISO 3166 alpha-2 country an E.164 number belongs to (+7 495... -> RU, +7 727... -> KZ, +1 876... -> JM);
    None for no country: unknown, and the non-geographic codes (+800 freephone, +881/+882 satellite and
    international networks, which phonenumbers names 001)."""
    import phonenumbers

    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return None
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


def is_country(code: str) -> bool:
    """`code` is an ISO 3166 alpha-2 country phone numbers are allotted for (UA, PL, US; not 001 or lowercase)."""
    import phonenumbers

    return isinstance(code, str) and code in phonenumbers.SUPPORTED_REGIONS


def same_country(a: str, b: str) -> bool:
    import phonenumbers

    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(a, None)) == \
            phonenumbers.region_code_for_number(phonenumbers.parse(b, None))
    except phonenumbers.NumberParseException:
        return False

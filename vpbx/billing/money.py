"""Money: amounts are int minor units (kopecks, cents); parsing sysadmin-typed amounts and formatting them back.

Rule: pure functions, no SQL, no I/O, no Click, no asyncio, and never a float: amounts are ints, divisions are done
in int arithmetic and rounded half up (away from zero) to a minor unit by `div_half_up`.

    parse_amount("2 500")  -> 250000      parse_amount("3,50") -> 350      parse_amount("0.01") -> 1
    format_amount(250000)  -> "2 500.00"  format_amount(-1230, "RUB") -> "-12.30 RUB"
"""
from __future__ import annotations

import re

from vpbx.domain.errors import ValidationError
from vpbx.domain.validation import shown

MINOR_PER_MAJOR = 100
# The largest amount accepted from text: 10^12 major units (anything bigger is a typo, not a price).
MAX_MAJOR = 10**12
MAX_MINOR = MAX_MAJOR * MINOR_PER_MAJOR

# Thousands separators a sysadmin may type or paste: space, no-break space, narrow no-break space, thin space.
_SPACES = " \u00a0\u202f\u2009"
_AMOUNT_RE = re.compile(
    r"\A(?P<sign>[+-]?)"
    r"(?P<int>[0-9]{1,3}(?:[" + _SPACES + r"][0-9]{3})+|[0-9]+)"
    r"(?:[.,](?P<frac>[0-9]+))?\Z"
)
_EXAMPLE = 'write it like "2500", "2 500", "2500.50" or "3,50"'


def div_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up (halves away from zero) to an int; denominator > 0."""
    if denominator <= 0:
        raise ValidationError(f"cannot divide an amount by {denominator}; the divisor must be positive")
    q = (2 * abs(numerator) + denominator) // (2 * denominator)
    return q if numerator >= 0 else -q


def parse_amount(text: str, *, allow_negative: bool = False) -> int:
    """Parse an amount in major units ("2 500", "2500.5", "3,50") into int minor units.

    Spaces (also no-break / thin spaces) group thousands by three and may surround the amount; the decimal separator
    is "." or ",", with at most two decimals. Refused with ValidationError: empty text, junk (a newline or other
    control character included), NaN/inf, more than two decimals, a negative amount unless `allow_negative`, anything
    above 10^12 major units.
    """
    if not isinstance(text, str):
        raise ValidationError(f"amount {shown(text)} is not text; {_EXAMPLE}")
    s = text.strip(_SPACES)
    if not s:
        raise ValidationError(f"amount is empty; {_EXAMPLE}")
    m = _AMOUNT_RE.fullmatch(s)
    if m is None:
        raise ValidationError(f"amount {shown(text)} is not a number; {_EXAMPLE} (spaces only between groups of three)")
    frac = m.group("frac") or ""
    if len(frac) > 2:
        raise ValidationError(
            f"amount {shown(text)} has more than 2 decimals; amounts are whole kopecks/cents "
            f"(use a space for thousands: \"2 500\", and . or , for decimals: \"3.50\")"
        )
    if m.group("sign") == "-" and not allow_negative:
        raise ValidationError(f"amount {shown(text)} is negative; give a positive amount")
    digits = re.sub(r"[^0-9]", "", m.group("int"))
    minor = int(digits) * MINOR_PER_MAJOR + int(frac.ljust(2, "0"))
    if minor > MAX_MINOR:
        raise ValidationError(f"amount {shown(text)} is too large (more than 10^12); check the digits")
    return -minor if m.group("sign") == "-" else minor


def format_amount(minor: int, currency: str = "") -> str:
    """Format int minor units as major units with two decimals and spaces between thousands: "-2 500.00 RUB"."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise ValidationError(f"amount {minor!r} is not an int number of minor units (kopecks/cents)")
    sign = "-" if minor < 0 else ""
    major, cents = divmod(abs(minor), MINOR_PER_MAJOR)
    text = f"{sign}{major:,}.{cents:02d}".replace(",", " ")
    return f"{text} {currency}" if currency else text

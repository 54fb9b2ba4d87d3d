"""Validation of every free-text value that can reach an Asterisk config file or the dialplan.

Rule: a value either passes unchanged or raises ValidationError naming the field and the fix; nothing is ever
escaped or silently cleaned. Config files are line-based `key = value` with `[section]`, `;` comments and
`#include`, so those characters are refused wherever they could change the meaning.
"""
from __future__ import annotations

import re

from vpbx.domain.errors import ValidationError

FORBIDDEN = ("\n", "\r", "\x00", "[", "]", ";", "=", "#")
LOGIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_RE = LOGIN_RE
HOST_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
IPV4_RE = re.compile(r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$")
PROMPT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
DTMF_DIGITS = set("0123456789*#")


def config_text(field: str, value: str, obj: str = "value") -> str:
    """Free text (comment, password): printable, no character that could inject config lines."""
    bad = [c for c in FORBIDDEN if c in value]
    if bad or any(ord(c) < 32 for c in value):
        shown = ", ".join(repr(c) for c in bad) or "control characters"
        raise ValidationError(f"{obj}: {field} contains {shown}, which could change the Asterisk config; "
                              f"remove newlines, [ ] ; = and #")
    return value


def login(value: str, field: str = "login") -> str:
    if not LOGIN_RE.match(value or ""):
        raise ValidationError(f"{field} {value!r} is not valid; use 1-64 letters, digits, '_', '.', '-', starting with a letter or digit")
    return value


def name(value: str, kind: str = "name") -> str:
    if not NAME_RE.match(value or ""):
        raise ValidationError(f"{kind} name {value!r} is not valid; use 1-64 letters, digits, '_', '.', '-', starting with a letter or digit")
    return value


def host(value: str) -> str:
    dotted_digits = re.fullmatch(r"[\d.]+", value or "") is not None
    if not (IPV4_RE.match(value or "") or (HOST_RE.match(value or "") and not dotted_digits)):
        raise ValidationError(f"server {value!r} is not a valid host name or IPv4 address; give e.g. sip.example.net or 127.0.0.1")
    return value


def port(value: int) -> int:
    if not 1 <= int(value) <= 65535:
        raise ValidationError(f"port {value} is out of range; use 1-65535")
    return int(value)


def password(value: str, field: str = "password") -> str:
    config_text(field, value, obj=field)
    if len(value) < 8 or " " in value:
        raise ValidationError(f"{field} must be at least 8 characters without spaces; omit it to have one generated")
    return value


def prompt_name(value: str) -> str:
    if not PROMPT_RE.match(value or ""):
        raise ValidationError(f"prompt name {value!r} is not valid; use letters, digits, '_' and '-'")
    return value


def email(value: str) -> str:
    if not EMAIL_RE.match(value or ""):
        raise ValidationError(f"e-mail address {value!r} is not valid; give e.g. office@example.com")
    return value


class about:
    """Context manager: a ValidationError raised inside names `obj` (e.g. "SIP account carol") in its message."""

    def __init__(self, obj: str) -> None:
        self.obj = obj.encode("unicode_escape").decode("ascii") if not obj.isprintable() else obj

    def __enter__(self) -> "about":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, ValidationError) and self.obj not in str(exc):
            raise ValidationError(f"{self.obj}: {exc}") from None


def dtmf(value: str) -> str:
    bad = [c for c in value if c not in DTMF_DIGITS]
    if bad:
        raise ValidationError(f"DTMF {value!r} contains {''.join(bad)!r}; use only 0-9, * and #")
    return value

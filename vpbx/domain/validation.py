"""Validation of every free-text value that can reach an Asterisk config file, the dialplan, a file name or an e-mail.

Rule: a value either passes unchanged or raises ValidationError naming the field and the fix; nothing is ever
escaped or silently cleaned. Every pattern is matched against the whole value (`fullmatch`, and the patterns are
anchored with `\\A...\\Z` so `.match()` is safe too): `$` alone also matches before a final newline, which let
`bob\\n` through and injected config lines. Config files are line-based `key = value` with `[section]`, `;`
comments and `#include`, so those characters are refused wherever they could change the meaning; so is every
character that is not printable (`str.isprintable()`: C0/C1 controls, DEL, U+2028/U+2029 line and paragraph
separators, format characters...), since editors and tools may treat them as line breaks. Error messages show the
value as `repr()` (control characters escaped) and cut long values, so they stay one line.

Length limits (characters):
    names, logins, prompt names   64  (the patterns below)
    free text (config_text,       255 (comments, city, operator, refs, plan names, rate descriptions; long enough
      printable_text)                  for a 253-character DNS name, which renderers also pass through config_text)
    passwords                     8-128
    e-mail addresses              254 (RFC 5321)
    DTMF scripts                  255 keys
"""
from __future__ import annotations

import re
from types import TracebackType

from vpbx.domain.errors import ValidationError

FORBIDDEN = ("\n", "\r", "\x00", "[", "]", ";", "=", "#")
TEXT_MAX = 255
PASSWORD_MIN = 8
PASSWORD_MAX = 128
EMAIL_MAX = 254
DTMF_MAX = 255
SHOWN_MAX = 100          # characters of a bad value quoted in an error message (a 65-character name shows whole)

LOGIN_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
NAME_RE = LOGIN_RE
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_RE = re.compile(rf"\A(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\Z")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])"
IPV4_RE = re.compile(rf"\A{_OCTET}(?:\.{_OCTET}){{3}}\Z")
PROMPT_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
EMAIL_RE = re.compile(r"\A[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\Z")

# The one DTMF key set of vpbx: the 16 RFC 4733 DTMF events (0-9, *, #, A-D). Asterisk reports all 16, the call
# machine acts on all 16 and stored IVRs may use A-D, so the smaller phone-keypad set would silently change calls.
DTMF_DIGITS = frozenset("0123456789*#ABCD")
DTMF_HELP = "0-9, *, # and A-D"


def shown(value: object, limit: int = SHOWN_MAX) -> str:
    """`value` quoted for an error message: repr() escapes control characters; a long value is cut."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(value) if isinstance(value, str) else '?'} chars)"


def cut_long_words(message: str, limit: int = 2 * SHOWN_MAX) -> str:
    """A message with every word (a run without spaces) longer than `limit` cut as `shown` cuts a value: an argument
    of 100 000 characters is not echoed whole, whichever message quotes it (the CLI applies this to every `Error:`)."""
    if len(message) <= limit:
        return message
    return " ".join(w if len(w) <= limit else f"{w[:limit]}... ({len(w)} chars)" for w in message.split(" "))


def plain(label: str) -> str:
    """An object label (which may embed user text, e.g. "number +3804...") safe for a one-line message."""
    return label if label.isprintable() else label.encode("unicode_escape").decode("ascii")


def _text(field: str, value: str, obj: str, limit: int, forbidden: tuple[str, ...] = FORBIDDEN) -> str:
    where = f"{plain(obj)}: {field}"
    if not isinstance(value, str):
        raise ValidationError(f"{where} must be text, not {shown(value)}")
    if len(value) > limit:
        raise ValidationError(f"{where} is {len(value)} characters long; keep it to {limit} or fewer")
    bad: list[str] = []
    for c in value:
        if (c in forbidden or not c.isprintable()) and c not in bad:
            bad.append(c)
    if bad:
        listed = ", ".join(repr(c) for c in bad[:5]) + (", ..." if len(bad) > 5 else "")
        if forbidden:
            raise ValidationError(f"{where} contains {listed}, which could change the Asterisk config; "
                                  f"remove newlines, control characters, [ ] ; = and #")
        raise ValidationError(f"{where} contains {listed}; remove newlines and control characters")
    return value


def config_text(field: str, value: str, obj: str = "value", limit: int = TEXT_MAX) -> str:
    """Free text (comment, city, password...): printable, at most `limit` characters, nothing that injects config."""
    return _text(field, value, obj, limit)


def printable_text(field: str, value: str, obj: str = "value", limit: int = TEXT_MAX) -> str:
    """Free text that reaches no config file (a plan name, a rate's description): printable, at most `limit`
    characters; `[ ] ; = #` are fine here."""
    return _text(field, value, obj, limit, forbidden=())


def _pattern(rx: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and rx.fullmatch(value) is not None


def login(value: str, field: str = "login") -> str:
    if not _pattern(LOGIN_RE, value):
        raise ValidationError(f"{field} {shown(value)} is not valid; "
                              f"use 1-64 letters, digits, '_', '.', '-', starting with a letter or digit")
    return value


def name(value: str, kind: str = "name") -> str:
    if not _pattern(NAME_RE, value):
        raise ValidationError(f"{kind} name {shown(value)} is not valid; "
                              f"use 1-64 letters, digits, '_', '.', '-', starting with a letter or digit")
    return value


def host(value: str) -> str:
    dotted_digits = isinstance(value, str) and re.fullmatch(r"[0-9.]+", value) is not None
    if not (_pattern(IPV4_RE, value) or (_pattern(HOST_RE, value) and not dotted_digits)):
        raise ValidationError(f"server {shown(value)} is not a valid host name or IPv4 address; "
                              f"give e.g. sip.example.net or 127.0.0.1")
    return value


def port(value: int) -> int:
    if not 1 <= int(value) <= 65535:
        raise ValidationError(f"port {value} is out of range; use 1-65535")
    return int(value)


CIDR_RE = re.compile(rf"\A({_OCTET}(?:\.{_OCTET}){{3}})/(3[0-2]|[12]?[0-9])\Z")


def cidr(value: str, field: str = "local_net") -> str:
    """An IPv4 network `a.b.c.d/n` (e.g. 192.168.0.0/16) whose host bits are zero, matched whole."""
    m = CIDR_RE.match(value) if isinstance(value, str) else None
    if m is None:
        raise ValidationError(f"{field} {shown(value)} is not an IPv4 network; give e.g. 192.168.0.0/16")
    address = 0
    for octet in m.group(1).split("."):
        address = address << 8 | int(octet)
    bits = int(m.group(2))
    mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
    if address & ~mask & 0xFFFFFFFF:
        net = address & mask
        fixed = ".".join(str(net >> s & 0xFF) for s in (24, 16, 8, 0))
        raise ValidationError(f"{field} {shown(value)} has host bits set; give the network, {fixed}/{bits}")
    return value


def password(value: str, field: str = "password") -> str:
    _text(field, value, field, PASSWORD_MAX)
    if len(value) < PASSWORD_MIN or " " in value:
        raise ValidationError(f"{field} must be at least {PASSWORD_MIN} characters without spaces; "
                              f"omit it to have one generated")
    return value


def prompt_name(value: str) -> str:
    if not _pattern(PROMPT_RE, value):
        raise ValidationError(f"prompt name {shown(value)} is not valid; use 1-64 letters, digits, '_' and '-', "
                              f"starting with a letter or digit")
    return value


def email(value: str) -> str:
    if not _pattern(EMAIL_RE, value) or len(value) > EMAIL_MAX:
        raise ValidationError(f"e-mail address {shown(value)} is not valid; give e.g. office@example.com")
    return value


def dtmf(value: str) -> str:
    """A scripted key sequence (e.g. `call simulate --dtmf 12#`); empty is fine."""
    if not isinstance(value, str):
        raise ValidationError(f"DTMF {shown(value)} is not text; use only {DTMF_HELP}")
    bad = "".join(dict.fromkeys(c for c in value if c not in DTMF_DIGITS))
    if bad:
        raise ValidationError(f"DTMF {shown(value)} contains {shown(bad)}; use only {DTMF_HELP}")
    if len(value) > DTMF_MAX:
        raise ValidationError(f"DTMF is {len(value)} keys long; keep it to {DTMF_MAX} or fewer")
    return value


def dtmf_key(value: str, field: str = "key") -> str:
    """One keypad key (an IVR option)."""
    if not isinstance(value, str) or value not in DTMF_DIGITS:
        raise ValidationError(f"{field} {shown(value)} is not a keypad key; use one of {DTMF_HELP}")
    return value


class about:
    """Context manager: a ValidationError raised inside names `obj` (e.g. "SIP account carol") in its message."""

    def __init__(self, obj: str) -> None:
        self.obj = plain(obj)

    def __enter__(self) -> about:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if isinstance(exc, ValidationError) and self.obj not in str(exc):
            raise ValidationError(f"{self.obj}: {exc}") from None

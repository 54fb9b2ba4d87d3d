"""Destination strings: the one place that parses and formats every kind a number, IVR option, group member,
forward target or fallback may name.

    sip:LOGIN                  ring a SIP account of this install
    group:NAME                 ring a ring group
    ivr:NAME                   a voice menu
    tel:+E164                  dial a phone number (out through a trunk)
    uri:sip:user@host[:port]   dial a SIP URI
    play:PROMPT                play a prompt, then hang up
    voicemail                  record a message for the number's voicemail e-mails
    hangup                     hang up

Rule: pure, no I/O. `parse()` checks the syntax of the whole string (full match: no trailing newline, control
character or other hostile text gets through) and raises DestinationError (a ValidationError) whose message names
the bad text and gives the syntax; `str(Destination)` gives the canonical text back, so `str(parse(t)) == t` for
every `t` that parses. Whether the SIP account, group, IVR or prompt exists is not checked here
(`vpbx.dialplan.compile` does that).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from vpbx.domain.errors import DestinationError
from vpbx.domain.numbers import E164_EXAMPLE, is_e164
from vpbx.domain.validation import LOGIN_RE, NAME_RE, PROMPT_RE, shown

KINDS = ("sip", "group", "ivr", "tel", "uri", "play", "voicemail", "hangup")
BARE = ("voicemail", "hangup")            # written without a value
DIALLABLE = ("sip", "tel", "uri")         # what a forward target / group member may be
FALLBACKS = ("hangup", "voicemail", "play")   # what may follow a failed forward or IVR

DESTINATION_SYNTAX = (
    "sip:LOGIN, group:NAME, ivr:NAME, tel:+E164, uri:sip:user@host[:port], voicemail, play:PROMPT or hangup"
)
TARGET_SYNTAX = "sip:LOGIN, tel:+E164 and uri:sip:user@host[:port]"
FALLBACK_SYNTAX = "hangup, play:PROMPT or voicemail"
MAX_LENGTH = 256

SIP_URI_RE = re.compile(
    r"\Asip:[A-Za-z0-9_.!~*'()&=+$,;?/%-]+"        # user
    r"@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"   # host
    r"(?::(?P<port>[0-9]{1,5}))?\Z"                 # port
)

_NAME_SYNTAX = "1-64 letters, digits, '_', '.', '-', starting with a letter or digit"


def _sip_uri(value: str) -> bool:
    m = SIP_URI_RE.fullmatch(value)
    return m is not None and (m.group("port") is None or 1 <= int(m.group("port")) <= 65535)


def _matches(rx: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda value: rx.fullmatch(value) is not None


# kind -> (value check, what a bad value is not; `{}` is the quoted value)
_RULES: dict[str, tuple[Callable[[str], bool], str]] = {
    "sip": (_matches(LOGIN_RE), f"{{}} is not a SIP login ({_NAME_SYNTAX}: sip:alice)"),
    "group": (_matches(NAME_RE), f"{{}} is not a group name ({_NAME_SYNTAX}: group:sales)"),
    "ivr": (_matches(NAME_RE), f"{{}} is not an IVR name ({_NAME_SYNTAX}: ivr:main)"),
    "tel": (is_e164, f"{{}} is not an E.164 number (+, country code, digits: tel:{E164_EXAMPLE})"),
    "uri": (_sip_uri, "{} is not a SIP URI like uri:sip:user@host[:port]"),
    "play": (_matches(PROMPT_RE), "{} is not a valid prompt name (1-64 letters, digits, '_' and '-', starting with "
                                  "a letter or digit: play:closed)"),
}


@dataclass(frozen=True)
class Destination:
    """A checked destination: `kind` is one of KINDS, `value` the part after `kind:` ("" for voicemail / hangup).

    Constructing one checks it (DestinationError), so every Destination formats to text that parses.
    """

    kind: str
    value: str = ""

    def __post_init__(self) -> None:
        text = self.kind if self.kind in BARE and not self.value else f"{self.kind}:{self.value}"
        _check(self.kind, self.value, text)

    def __str__(self) -> str:
        return self.kind if self.kind in BARE else f"{self.kind}:{self.value}"

    @property
    def diallable(self) -> bool:
        return self.kind in DIALLABLE


def _error(text: str, kind: str | None, problem: str) -> DestinationError:
    message = problem if problem.startswith(("unknown destination", "destination ")) else \
        f"destination {shown(text)}: {problem}"
    return DestinationError(message, text, kind, problem)


def _check(kind: object, value: object, text: str) -> None:
    if not isinstance(kind, str) or not isinstance(value, str) or kind not in KINDS:
        raise _error(text, None, f"unknown destination {shown(text)}; use {DESTINATION_SYNTAX}")
    if kind in BARE:
        if value:
            raise _error(text, None, f"unknown destination {shown(text)}; use {DESTINATION_SYNTAX}")
        return
    test, problem = _RULES[kind]
    if len(value) > MAX_LENGTH or not test(value):
        raise _error(text, kind, problem.format(shown(value)))


def kind_of(text: str) -> str:
    """The kind a destination string claims (`sip` for `sip:x`, `hangup` for `hangup`), unchecked."""
    return text.partition(":")[0]


def parse(text: str) -> Destination:
    """Destination string -> Destination, or DestinationError naming the bad text and giving the syntax."""
    if not isinstance(text, str):
        raise _error(repr(text), None, f"unknown destination {shown(text)}; use {DESTINATION_SYNTAX}")
    if len(text) > MAX_LENGTH:
        raise _error(text, None, f"destination {shown(text)} is longer than {MAX_LENGTH} characters; "
                                 f"use {DESTINATION_SYNTAX}")
    if text in BARE:
        return Destination(text)
    kind, sep, value = text.partition(":")
    if not sep or kind not in KINDS or kind in BARE:
        raise _error(text, None, f"unknown destination {shown(text)}; use {DESTINATION_SYNTAX}")
    return Destination(kind, value)


def parse_target(text: str) -> Destination:
    """A destination that can be dialled (forward target, group member): sip:, tel: or uri:."""
    if not isinstance(text, str) or kind_of(text) not in DIALLABLE:
        return _refuse(text, f"only {TARGET_SYNTAX} can be dialled")
    return parse(text)


def parse_fallback(text: str) -> Destination:
    """What a number falls back to when a forward or IVR fails: hangup, voicemail or play:PROMPT."""
    if not isinstance(text, str) or kind_of(text) not in FALLBACKS:
        return _refuse(text, f"a fallback is one of {FALLBACK_SYNTAX}")
    return parse(text)


def _refuse(text: object, problem: str) -> Destination:
    """Raise: `text` is not of the kinds the caller accepts."""
    claimed = kind_of(text) if isinstance(text, str) else ""
    raise _error(text if isinstance(text, str) else repr(text), claimed if claimed in KINDS else None, problem)


def try_parse(text: object) -> Destination | None:
    """The Destination `text` denotes, or None (for code scanning stored strings, e.g. "which routes use group X")."""
    if not isinstance(text, str):
        return None
    try:
        return parse(text)
    except DestinationError:
        return None

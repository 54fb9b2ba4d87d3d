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
    hours:SCHEDULE?open=DEST&closed=DEST
                               business hours: DEST (any kind above) by the schedule at the moment the call gets
                               there; a branch is never another `hours:` and holds no '&' (a SIP URI writes it %26)

Rule: pure, no I/O. `parse()` checks the syntax of the whole string (full match: no trailing newline, control
character or other hostile text gets through) and raises DestinationError (a ValidationError) whose message names
the bad text and gives the syntax; `str(Destination)` gives the canonical text back, so `str(parse(t)) == t` for
every `t` that parses. Whether the SIP account, group, IVR, prompt or schedule exists is not checked here
(`vpbx.dialplan.compile` does that).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from vpbx.domain.errors import DestinationError
from vpbx.domain.numbers import E164_EXAMPLE, is_e164
from vpbx.domain.validation import LOGIN_RE, NAME_RE, PROMPT_RE, shown

KINDS = ("sip", "group", "ivr", "tel", "uri", "play", "voicemail", "hangup", "hours")
BARE = ("voicemail", "hangup")            # written without a value
DIALLABLE = ("sip", "tel", "uri")         # what a forward target / group member may be
FALLBACKS = ("hangup", "voicemail", "play")   # what may follow a failed forward or IVR

HOURS_SYNTAX = "hours:SCHEDULE?open=DEST&closed=DEST"
HOURS_EXAMPLE = "hours:office?open=ivr:main&closed=voicemail"
DESTINATION_SYNTAX = (
    f"sip:LOGIN, group:NAME, ivr:NAME, tel:+E164, uri:sip:user@host[:port], voicemail, {HOURS_SYNTAX}, "
    f"play:PROMPT or hangup"
)
TARGET_SYNTAX = "sip:LOGIN, tel:+E164 and uri:sip:user@host[:port]"
FALLBACK_SYNTAX = "hangup, play:PROMPT or voicemail (or hours:SCHEDULE?open=A&closed=B choosing two of them)"
MAX_LENGTH = 256

SIP_URI_RE = re.compile(
    r"\Asip:[A-Za-z0-9_.!~*'()&=+$,;?/%-]+"        # user
    r"@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"   # host
    r"(?::(?P<port>[0-9]{1,5}))?\Z"                 # port
)

_NAME_SYNTAX = "1-64 letters, digits, '_', '.', '-', starting with a letter or digit"


_HOURS_RE = re.compile(r"(?P<schedule>[^?&]*)\?open=(?P<open>[^&]*)&closed=(?P<closed>[^&]*)")


def _hours_parts(value: str) -> tuple[str, str, str] | None:
    m = _HOURS_RE.fullmatch(value)
    return None if m is None else (m["schedule"], m["open"], m["closed"])


def _hours_problem(value: str) -> str | None:
    """What is wrong with the value of an `hours:` destination (None: nothing)."""
    if re.search(r"[?&](?:open|closed)=hours:", value):
        return ("a branch is another schedule route; branch to any other kind of destination (one schedule takes "
                "several --open ranges)")
    parts = _hours_parts(value)
    if parts is None:
        extra = " (a branch may not hold '&': write it as %26 in a SIP URI)" if value.count("&") > 1 else ""
        return f"{shown(value)} is not a schedule route like {HOURS_EXAMPLE}{extra}; use {HOURS_SYNTAX}"
    schedule, *branches = parts
    if NAME_RE.fullmatch(schedule) is None:
        return f"{shown(schedule)} is not a schedule name ({_NAME_SYNTAX}: {HOURS_EXAMPLE})"
    for label, branch in zip(("open", "closed"), branches, strict=True):
        try:
            parse(branch)
        except DestinationError as exc:
            return f"the {label} branch: {exc.problem}"
    return None


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

    @property
    def schedule(self) -> str | None:
        """The schedule an `hours:` destination branches on; None for every other kind."""
        parts = _hours_parts(self.value) if self.kind == "hours" else None
        return None if parts is None else parts[0]

    @property
    def branches(self) -> tuple[Destination, ...]:
        """(open, closed) of an `hours:` destination; () for every other kind."""
        parts = _hours_parts(self.value) if self.kind == "hours" else None
        return () if parts is None else (parse(parts[1]), parse(parts[2]))

    def names(self) -> tuple[Destination, ...]:
        """This destination and the ones it branches to: what a stored route names (for "who uses group X")."""
        return (self, *self.branches)


def hours(schedule: str, open_dest: Destination | str, closed_dest: Destination | str) -> Destination:
    """The `hours:` destination that goes to `open_dest` while `schedule` is open and to `closed_dest` otherwise."""
    return Destination("hours", f"{schedule}?open={open_dest}&closed={closed_dest}")


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
    if kind == "hours":
        problem = None if len(value) <= MAX_LENGTH else f"{shown(value)} is longer than {MAX_LENGTH} characters"
        problem = problem or _hours_problem(value)
        if problem is not None:
            raise _error(text, kind, problem)
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


def is_fallback(d: Destination) -> bool:
    """May `d` follow a failed forward or IVR? hangup, voicemail, play:, or an `hours:` choosing between those."""
    return d.kind in FALLBACKS or (d.kind == "hours" and all(b.kind in FALLBACKS for b in d.branches))


def parse_fallback(text: str) -> Destination:
    """What a number falls back to when a forward or IVR fails: hangup, voicemail or play:PROMPT, or by business
    hours one of those (hours:SCHEDULE?open=voicemail&closed=play:closed)."""
    if not isinstance(text, str) or kind_of(text) not in (*FALLBACKS, "hours"):
        return _refuse(text, f"a fallback is one of {FALLBACK_SYNTAX}")
    d = parse(text)
    if not is_fallback(d):
        return _refuse(text, f"a fallback is one of {FALLBACK_SYNTAX}")
    return d


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

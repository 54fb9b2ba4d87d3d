"""Rules a record must satisfy wherever it is judged: when a command writes it, when the Asterisk config is rendered
from it, and when the engine decides a call with it.

Rule: pure, no I/O. The write path (`vpbx.services`), the renderers (`vpbx.asterisk.render`) and the engine's
outbound decision (`vpbx.dialplan.outbound`) all ask these functions, so "toll-free is inbound-only", "a number comes
with 4 or more channels" and "what may reach pjsip_vpbx.conf" are each written once. Text checks come from
`vpbx.domain.validation`; this module says which check applies to which field.

Numbers
    DIRECTIONS                           in | out | both
    MIN_CHANNELS                         4
    inbound_only(type)                   True for toll-free numbers (whatever their stored direction says)
    takes_inbound(direction)             in or both: the number is reachable from trunks
    outbound_problem(type, direction)    None if the number may be presented on an outbound call, else why not
    check_direction(number, type, dir)   the direction, or ValidationError naming the number and the fix
    check_channels(number, channels)     the channel count, or ValidationError naming the number and the fix
    check_number(n)                      every field of a Number that reaches the dialplan
    check_language(code)                 en, ru, en_US: the sounds dir of a channel's prompts
Phones and trunks (every field that reaches pjsip_vpbx.conf)
    check_sip_account(a)                 login, password, domain, caller ID, channels (1..MAX_SIP_CHANNELS)
    check_trunk(t)                       name, server, port, login, password (plain text Asterisk sends), transport
"""
from __future__ import annotations

import re

from vpbx.domain import validation as validate
from vpbx.domain.errors import ValidationError
from vpbx.domain.numbers import E164_EXAMPLE, is_e164
from vpbx.domain.records import Number, SipAccount, Trunk
from vpbx.domain.validation import plain, shown

DIRECTIONS = ("in", "out", "both")
INBOUND_DIRECTIONS = ("in", "both")
OUTBOUND_DIRECTIONS = ("out", "both")
MIN_CHANNELS = 4
INBOUND_ONLY_TYPES = frozenset({"tollfree"})
LANGUAGE_RE = re.compile(r"\A[a-z]{2,3}(?:_[A-Za-z]{2,4})?\Z")
MIN_SIP_CHANNELS = 1
MAX_SIP_CHANNELS = 1000
TRANSPORTS = ("udp", "tcp", "tls")


def inbound_only(number_type: str) -> bool:
    """Numbers of this type take calls and never place them (toll-free: the callee pays, nobody may call from it)."""
    return number_type in INBOUND_ONLY_TYPES


def takes_inbound(direction: str) -> bool:
    return direction in INBOUND_DIRECTIONS


def outbound_problem(number_type: str, direction: str) -> str | None:
    """None if a number of `number_type` with `direction` may place (present its caller ID on) an outbound call; else
    the reason, worded to follow the number ("caller-ID number +7800... is toll-free, which is inbound-only")."""
    if inbound_only(number_type):
        return "is toll-free, which is inbound-only"
    if direction not in OUTBOUND_DIRECTIONS:
        return f"has direction {direction!r}; outbound needs out or both"
    return None


def check_direction(number: str, number_type: str, direction: str) -> str:
    """`direction` if a number of `number_type` may have it; else ValidationError naming `number` and the fix."""
    if direction not in DIRECTIONS:
        raise ValidationError(f"number {plain(number)}: direction {direction!r} must be in, out or both")
    if inbound_only(number_type) and direction != "in":
        raise ValidationError(f"number {plain(number)} is toll-free, which is inbound-only; use --direction in")
    return direction


def check_channels(number: str, channels: int) -> int:
    """`channels` if it is at least MIN_CHANNELS; else ValidationError naming `number` and the fix."""
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < MIN_CHANNELS:
        raise ValidationError(f"number {plain(number)}: channels must be at least {MIN_CHANNELS} (a number comes with "
                              f"{MIN_CHANNELS} or more); got {channels!r}")
    return channels


def check_number(n: Number) -> Number:
    """Every field of `n` that reaches the dialplan (extensions_vpbx.conf) or the engine's decisions."""
    if not is_e164(n.number):
        raise ValidationError(f"number {shown(n.number)} is not E.164; write it as + country code and digits, "
                              f"e.g. {E164_EXAMPLE}")
    check_direction(n.number, n.type, n.direction)
    check_channels(n.number, n.channels)
    with validate.about(f"number {n.number}"):
        check_language(n.language)
    return n


def check_language(language: str) -> str:
    """A language code (en, ru, en_US): it names the sounds dir Asterisk plays a channel's prompts from."""
    if not isinstance(language, str) or LANGUAGE_RE.fullmatch(language) is None:
        raise ValidationError(f"language {shown(language)} is not a language code such as en, ru or en_US")
    return language


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_sip_account(a: SipAccount) -> SipAccount:
    """Every field of a SIP account that reaches pjsip_vpbx.conf."""
    validate.login(a.login)
    with validate.about(f"SIP account {a.login}"):
        validate.password(a.password)
        validate.host(a.domain)
        if a.caller_id is not None and not is_e164(a.caller_id):
            raise ValidationError(f"caller ID {shown(a.caller_id)} is not an E.164 number like {E164_EXAMPLE}")
        if not _whole(a.channels, MIN_SIP_CHANNELS, MAX_SIP_CHANNELS):
            raise ValidationError(f"channels must be {MIN_SIP_CHANNELS}-{MAX_SIP_CHANNELS}, not {shown(a.channels)}")
    return a


def trunk_password(value: str, obj: str) -> str:
    """A trunk's password: Asterisk sends it as is, so it is stored plain, and Asterisk strips spaces at its ends."""
    validate.config_text("password", value, obj=obj)
    if not value or value != value.strip():
        raise ValidationError(f"{plain(obj)}: password must not be empty or start/end with spaces (Asterisk strips "
                              f"them); set a new one")
    return value


def check_trunk(t: Trunk) -> Trunk:
    """Every field of a trunk that reaches pjsip_vpbx.conf."""
    validate.name(t.name, "trunk")
    obj = f"trunk {t.name}"
    with validate.about(obj):
        validate.host(t.server)
        if not _whole(t.port, 1, 65535):
            raise ValidationError(f"port {shown(t.port)} is out of range; use 1-65535")
        validate.login(t.login, "trunk login")
        trunk_password(t.password, obj)
        if t.transport not in TRANSPORTS:
            raise ValidationError(f"transport {shown(t.transport)} is not one of {', '.join(TRANSPORTS)}")
        if not isinstance(t.register, bool):
            raise ValidationError("register must be true or false")
    return t

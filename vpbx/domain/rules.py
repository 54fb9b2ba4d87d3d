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
    check_sip_account(a)                 login, password, domain, caller ID, channels (1..MAX_SIP_CHANNELS), codecs,
                                         DTMF mode
    check_codecs(codecs, obj)            a codec list: known names (CODECS), no repeats, at least one
    check_dtmf_mode(mode, obj)           auto | rfc4733 | info | inband
    effective_codecs(a, install, opus)   the codecs an account's endpoint allows, in preference order
    check_trunk(t)                       name, server, port, login, password (plain text Asterisk sends), transport
Toll-fraud guards of a SIP account (judged by vpbx.dialplan.outbound)
    check_outbound_guards(a)             allow_countries (ISO codes or "*" alone), allow_prefixes (+digits),
                                         max_outbound_calls (0..MAX_SIP_CHANNELS), daily_minutes (1..MAX_DAILY_MINUTES)
    parse_countries(text, obj)           `UA,PL` / `all` / `default` -> the stored tuple
    parse_prefixes(text, obj)            `+38044,+4930` / `none` -> the stored tuple
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from vpbx.domain import validation as validate
from vpbx.domain.errors import ValidationError
from vpbx.domain.numbers import E164_EXAMPLE, is_country, is_e164
from vpbx.domain.records import Number, SipAccount, Trunk
from vpbx.domain.validation import plain, shown

DIRECTIONS = ("in", "out", "both")
INBOUND_DIRECTIONS = ("in", "both")
OUTBOUND_DIRECTIONS = ("out", "both")
MIN_CHANNELS = 4
MAX_CHANNELS = 100000    # a number's channels: far above any trunk, far below SQLite's INTEGER
INBOUND_ONLY_TYPES = frozenset({"tollfree"})
LANGUAGE_RE = re.compile(r"\A[a-z]{2,3}(?:_[A-Za-z]{2,4})?\Z")
MIN_SIP_CHANNELS = 1
MAX_SIP_CHANNELS = 1000
# Audio codecs a SIP account may allow (Asterisk's format names): only those Asterisk 22 (Debian) can transcode to and
# from the 8 kHz prompts, so every prompt plays whatever the phone picks (no g729: Debian ships no G.729 codec, only
# pass-through). opus needs codec_opus loaded: effective_codecs drops it otherwise.
CODECS = ("g722", "opus", "alaw", "ulaw", "gsm", "g726")
DEFAULT_CODECS = ("g722", "opus", "alaw", "ulaw")
CODEC_RE = re.compile(r"\A[a-z0-9]{2,12}\Z")
# pjsip dtmf_mode values: auto = RFC 4733 when the phone offers it, else inband
DTMF_MODES = ("rfc4733", "auto", "info", "inband")
DEFAULT_DTMF = "rfc4733"
# inband DTMF is detected by Asterisk's DSP on G.711 audio only: an inband account is offered these
INBAND_CODECS = ("alaw", "ulaw")
TRANSPORTS = ("udp", "tcp", "tls")
# toll-fraud guards: "*" alone in allow_countries lets the account call anywhere (an admin's explicit choice)
ANY_COUNTRY = "*"
PREFIX_RE = re.compile(r"\A\+[1-9][0-9]{0,14}\Z")
MAX_DAILY_MINUTES = 24 * 60 * MAX_SIP_CHANNELS
MAX_ALLOWED = 300            # entries in allow_countries / allow_prefixes


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
    if channels > MAX_CHANNELS:     # also keeps it a 64-bit SQLite INTEGER
        raise ValidationError(f"number {plain(number)}: channels must be at most {MAX_CHANNELS}; got "
                              f"{str(channels)[:20]}{'...' if len(str(channels)) > 20 else ''}")
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
    if a.codecs:
        check_codecs(a.codecs, f"SIP account {a.login}")
    check_dtmf_mode(a.dtmf, f"SIP account {a.login}")
    with validate.about(f"SIP account {a.login}"):
        if a.transport not in TRANSPORTS:
            raise ValidationError(f"transport {shown(a.transport)} is not one of {', '.join(TRANSPORTS)}")
        if not isinstance(a.srtp, bool):
            raise ValidationError("srtp must be true or false")
    if a.dtmf == "inband" and a.codecs and not set(a.codecs) & set(INBAND_CODECS):
        raise ValidationError(f"SIP account {a.login}: inband DTMF is detected on alaw/ulaw audio only; add alaw or "
                              f"ulaw to --codecs, or use --dtmf rfc4733")
    check_outbound_guards(a)
    return a


def check_outbound_guards(a: SipAccount) -> SipAccount:
    """The toll-fraud guard fields of `a` (see vpbx.dialplan.outbound.guard for what they mean)."""
    with validate.about(f"SIP account {a.login}"):
        countries, prefixes = a.allow_countries, a.allow_prefixes
        if not isinstance(countries, tuple) or not isinstance(prefixes, tuple):
            raise ValidationError("allowed countries and prefixes must be lists")
        if len(countries) > MAX_ALLOWED or len(prefixes) > MAX_ALLOWED:
            raise ValidationError(f"at most {MAX_ALLOWED} allowed countries and {MAX_ALLOWED} prefixes")
        if ANY_COUNTRY in countries and countries != (ANY_COUNTRY,):
            raise ValidationError("allowed countries: `all` stands alone; give it or a list of country codes")
        for code in countries:
            if code != ANY_COUNTRY and not is_country(code):
                raise ValidationError(f"allowed country {shown(code)} is not an ISO 3166 country code with phone "
                                      f"numbers, like UA, PL or US")
        for prefix in prefixes:
            if not isinstance(prefix, str) or PREFIX_RE.fullmatch(prefix) is None:
                raise ValidationError(f"allowed prefix {shown(prefix)} is not + and 1-15 digits, like +38044")
        for seq, what in ((countries, "country"), (prefixes, "prefix")):
            if len(set(seq)) != len(seq):
                raise ValidationError(f"an allowed {what} is listed twice: {shown(','.join(seq))}")
        if a.max_outbound_calls is not None and not _whole(a.max_outbound_calls, 0, MAX_SIP_CHANNELS):
            raise ValidationError(f"max outbound calls must be 0-{MAX_SIP_CHANNELS} (0: no outbound calls), not "
                                  f"{shown(a.max_outbound_calls)}")
        if a.daily_minutes is not None and not _whole(a.daily_minutes, 1, MAX_DAILY_MINUTES):
            raise ValidationError(f"daily minutes must be 1-{MAX_DAILY_MINUTES}, not {shown(a.daily_minutes)} "
                                  "(`none` removes the cap)")
    return a


def parse_countries(text: str, obj: str) -> tuple[str, ...]:
    """`--allow-countries`: `UA,PL` (or `ua,pl`) -> ("UA", "PL"); `all` -> ("*",) any destination; `default` -> ()
    (the caller-ID number's country)."""
    if text == "default":
        return ()
    if text == "all":
        return (ANY_COUNTRY,)
    codes = tuple(c.upper() if c.isascii() and c.isalpha() else c for c in text.split(","))
    with validate.about(obj):
        for code in codes:
            if not is_country(code):
                raise ValidationError(f"allowed country {shown(code)} is not an ISO 3166 country code with phone "
                                      "numbers, like UA, PL or US (comma-separated; or `all`, or `default`)")
    return codes


def parse_prefixes(text: str, obj: str) -> tuple[str, ...]:
    """`--allow-prefixes`: `+38044,+4930` -> ("+38044", "+4930"); `none` -> ()."""
    if text == "none":
        return ()
    prefixes = tuple(text.split(","))
    with validate.about(obj):
        for prefix in prefixes:
            if PREFIX_RE.fullmatch(prefix) is None:
                raise ValidationError(f"allowed prefix {shown(prefix)} is not + and 1-15 digits, like +38044 "
                                      "(comma-separated; `none` removes them)")
    return prefixes


def check_tls_transport(accounts: Sequence[SipAccount], tls_configured: bool) -> None:
    """A SIP account with transport tls needs vpbx's TLS transport for phones: [sip] tls_cert and tls_key."""
    for a in accounts:
        if a.transport == "tls" and not tls_configured:
            raise ValidationError(f"SIP account {a.login} uses transport tls, but vpbx.toml [sip] has no tls_cert / "
                                  f"tls_key (no TLS transport for phones); set both, or `vpbx sip set {a.login} "
                                  f"--transport udp`")


def check_codecs(codecs: tuple[str, ...] | list[str], obj: str) -> tuple[str, ...]:
    """A codec list in preference order: every name in CODECS (lower case, whole name), none twice, at least one."""
    if isinstance(codecs, str) or not codecs:
        raise ValidationError(f"{plain(obj)}: codecs must list at least one of {', '.join(CODECS)}")
    seen: list[str] = []
    for codec in codecs:
        if not isinstance(codec, str) or not CODEC_RE.match(codec) or codec not in CODECS:
            raise ValidationError(f"{plain(obj)}: codec {shown(codec)} is unknown; use some of {', '.join(CODECS)} "
                                  f"(comma-separated, preferred first)")
        if codec in seen:
            raise ValidationError(f"{plain(obj)}: codec {codec} is listed twice; list each codec once")
        seen.append(codec)
    return tuple(seen)


def check_dtmf_mode(mode: str, obj: str) -> str:
    if not isinstance(mode, str) or mode not in DTMF_MODES:
        raise ValidationError(f"{plain(obj)}: DTMF mode {shown(mode)} is unknown; use one of {', '.join(DTMF_MODES)}")
    return mode


def effective_codecs(a: SipAccount, install: tuple[str, ...], opus: bool) -> tuple[str, ...]:
    """The codecs account `a`'s endpoint allows, preferred first: its own list, else the install's; opus dropped when
    Asterisk cannot transcode it (`opus` False); an inband-DTMF account keeps only alaw/ulaw (the DSP needs G.711)."""
    codecs = tuple(c for c in (a.codecs or install) if opus or c != "opus")
    if a.dtmf == "inband":
        codecs = tuple(c for c in codecs if c in INBAND_CODECS) or INBAND_CODECS
    return codecs or ("alaw", "ulaw")


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
        if not isinstance(t.srtp, bool):
            raise ValidationError("srtp must be true or false")
    return t

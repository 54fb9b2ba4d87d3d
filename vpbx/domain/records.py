"""Plain records passed between the store, the renderers, the CLI and the call-flow compiler.

Rule: frozen dataclasses, no I/O, no behaviour beyond conversion to/from dicts.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)      # slots: an import holds 100 000 of them
class Number:
    number: str                      # E.164, e.g. +380441234567
    channels: int = 4
    direction: str = "in"            # in | out | both
    trunk: str | None = None         # trunk name the number is served by / dials out through
    comment: str = ""
    type: str = "geographic"         # geographic | mobile | tollfree | other
    city: str = ""
    operator: str = ""
    country: str = ""                # ISO 3166 alpha-2, e.g. UA
    category: str = "regular"        # regular | bronze | silver | gold | platinum
    language: str = "en"
    # routing (issue 3); `route` is a destination string: sip:LOGIN | group:NAME | ivr:NAME | tel:+E164 | uri:sip:.. |
    # voicemail | play:PROMPT | hangup.  Forwarding to several targets is stored as `forward_to` + `forward_mode`.
    route: str | None = None
    greeting: str | None = None
    forward_to: tuple[str, ...] = ()
    forward_mode: str = "simultaneous"   # simultaneous | sequential
    forward_timeout: int = 30
    fallback: str = "hangup"             # hangup | play:PROMPT | voicemail
    vm_emails: tuple[str, ...] = ()
    # lifecycle and billing (issue 5).  status: available | reserved | pending_documents | active | suspended | trial
    # | released.  A number never sold (status available, no account) is the install's own and serves calls.
    status: str = "available"
    account: str | None = None
    end_user: str = ""                   # the responsible person (law in the seed's market) ...
    m2m_device: str = ""                 # ... or the M2M device the number is for
    plan: str | None = None              # a tariff plan key, else the fee by type and category
    anchor_day: int | None = None        # renewal day of month (29-31 fall on the last day of shorter months)
    connected_on: str | None = None      # YYYY-MM-DD
    paid_until: str | None = None        # YYYY-MM-DD, last day covered
    trial_until: str | None = None       # ISO-8601 UTC instant a trial ends
    reserved_until: str | None = None    # ISO-8601 UTC instant a reservation lapses
    quarantine_until: str | None = None  # YYYY-MM-DD a released number becomes available again
    requires_documents: bool = False
    lead_days: int = 0                   # days the document check takes
    call_credit: int = 0                 # minor units of the plan's call credit left this month
    credit_renews_on: str | None = None  # YYYY-MM-DD the plan's call credit is next refilled (a renewal day)
    # call recording (vpbx.domain.recording): calls to and from the number; the prompt announces it
    record_calls: bool = False
    record_prompt: str | None = None


@dataclass(frozen=True)
class SipAccount:
    login: str
    password: str                    # stored so `vpbx sip show` can say nothing of it; rendered as a digest (md5_cred)
    domain: str = "vpbx.local"
    caller_id: str | None = None     # a Number of this install
    channels: int = 2
    codecs: tuple[str, ...] = ()     # preference order; () = the install's [sip] codecs
    dtmf: str = "rfc4733"            # auto | rfc4733 | info | inband (pjsip dtmf_mode)
    transport: str = "udp"           # udp | tcp | tls: how Asterisk reaches the phone (tls needs [sip] tls_cert/key)
    srtp: bool = False               # SRTP (SDES) required: a plain-RTP offer is refused
    # toll-fraud guards on the account's outbound calls (vpbx.dialplan.outbound.guard):
    allow_countries: tuple[str, ...] = ()   # ISO 3166 alpha-2 destination countries; ("*",) any; () see below
    allow_prefixes: tuple[str, ...] = ()    # +E.164 destination prefixes; both () = the caller-ID number's country
    max_outbound_calls: int | None = None   # concurrent outbound calls; None = `channels`
    daily_minutes: int | None = None        # outbound minutes per day (server's local day); None = no cap
    record_calls: bool = False              # record calls to and from the account (vpbx.domain.recording)
    record_prompt: str | None = None        # prompt announcing the recording
    # calls from colleagues (vpbx.dialplan.outbound.colleague_call): dialled by login or by `extension` (2-6 digits,
    # unique), the phone rings `ring_timeout` s, then `no_answer`: hangup | voicemail (to `vm_emails`) | play:PROMPT |
    # tel:+E164 (forwarded out as the caller-ID number's call)
    extension: str | None = None
    ring_timeout: int = 20
    no_answer: str = "hangup"
    vm_emails: tuple[str, ...] = ()
    # prepaid outbound calls (vpbx.services.charging): the customer's account that pays the account's outbound calls
    # (None: they are not rated)
    account: str | None = None


@dataclass(frozen=True)
class Trunk:
    name: str
    server: str
    login: str
    password: str
    port: int = 5060
    transport: str = "udp"           # udp | tcp | tls
    register: bool = True
    srtp: bool = False               # SRTP (SDES) with the carrier, required
    account: str | None = None       # a customer's own trunk: that account's calls through it are not charged
                                     # (None: the provider's trunk)


@dataclass(frozen=True)
class Group:
    name: str
    members: tuple[str, ...]
    strategy: str = "simultaneous"   # simultaneous | sequential
    timeout: int = 20                # per member for sequential, overall for simultaneous


@dataclass(frozen=True)
class Ivr:
    name: str
    prompt: str
    options: tuple[tuple[str, str], ...]     # (digit, destination)
    timeout: int = 5
    retries: int = 3
    invalid_prompt: str | None = None
    extensions: bool = False                 # caller may type an extension / organisation id


@dataclass(frozen=True)
class Account:
    name: str
    email: str
    org_id: int | None = None            # the extension a caller types on a shared number
    balance: int = 0                     # minor units; always equals the sum of the account's ledger
    record_calls: bool = False           # record calls to and from the account's numbers (vpbx.domain.recording)
    record_prompt: str | None = None     # prompt announcing the recording


@dataclass(frozen=True)
class Schedule:
    """Business hours (vpbx.domain.schedules): routes branch on it with `hours:NAME?open=DEST&closed=DEST`."""

    name: str
    tz: str                              # tz database name, e.g. Europe/Kyiv
    open: tuple[str, ...]                # "mon-fri 09:00-18:00", "sat 10:00-13:00,14:00-16:00" (local time)
    closed: tuple[str, ...] = ()         # one-off closed dates, YYYY-MM-DD
    holidays: tuple[str, ...] = ()       # yearly closed days, MM-DD


def to_dict(record: Any) -> dict[str, Any]:
    """Record -> JSON-friendly dict (tuples become lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        out[f.name] = value
    return out

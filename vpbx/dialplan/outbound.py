"""The outbound decision: what happens when a SIP account of this install dials a number.

Rule: pure, like the rest of the package: records in, a decision out; the edge loads the records and carries the
decision out (a one-target flow through the trunk, the caller ID it tells the far end).

    decide(dialled, dest, account, own, default_trunk, exten=, callee=, callee_own=)
                                                       -> Internal | Colleague | Outbound | Refused
    admit(outbound, account, usage) -> Outbound | Refused   the account's usage guards, just before the call goes out
    trunk_for(number, default_trunk) -> str | None     the trunk a number's tel: targets are dialled through
    dialled_kind(exten) -> number | extension | login  what a phone dialled, by its shape alone (below)
    colleague_call(callee, callee_own, default_trunk) -> Colleague    a call to a SIP account, as a flow number

What a phone dialled is told apart by its shape (`dialled_kind`), before anything is looked up:
- `+` and digits, or MIN_NUMBER_DIGITS (7) or more digits: a number (`380441234567` is +380441234567). A number of
  6 digits or fewer (a few exist, e.g. Austrian +43 1119) is dialled with its `+`.
- 1-6 digits: an extension: a SIP account's own `extension` (2-6 digits, unique), else an all-digit login.
- anything else that is a login (a letter, '.', '_' or '-' in it): that SIP account's login. An all-digit login of
  7 or more digits looks like a number: it is reached by an extension only.
- A login or an extension is a call between colleagues (`Colleague`): it rings the account dialled, then its own
  no-answer handling (`colleague_call`). It never reaches a trunk but as the callee's own forward to a mobile, so
  no toll-fraud guard applies; calling oneself, or a login / extension no account has, is `Refused`.
- The callee's forward to a mobile (`no_answer` tel:+E164) is the admin's setting, like a number's tel: forward: it
  goes out through the trunk of the callee's caller-ID number (else the install's default trunk), only when that
  number may call out (`forward_problem`); the callee's toll-fraud guards do not apply to it. When it cannot go out
  the flow hangs up after the ring instead (`Colleague.problem` says why). `Colleague.forward_as` is that forward as
  the callee's outbound call (caller ID shown or withheld by the same country rule).

- `dialled` is a number of this install: an internal call, routed like an inbound call to that number (`Internal`).
- Otherwise the call goes out (`Outbound`) only when the account presents a caller-ID number of this install (`own`)
  that may call out (`may_call_out`, the shared rule of vpbx.domain.rules: direction out or both, never toll-free),
  there is a trunk to dial through (the caller-ID number's, else the install's default) and the destination is a
  valid E.164 number. Anything else is `Refused` (the edge rejects the call as an unallocated number).
- The caller ID: the carrier always learns the caller-ID number; the callee is shown it only when the destination is
  in the caller-ID number's country, else it is withheld (`Outbound.shown`, `Outbound.caller`).

Toll-fraud guards (per SIP account; a refused call never reaches a trunk; `Refused.rule` names the guard):
- destination: the account may call the countries in `allow_countries` ("*": any) and the numbers starting with one
  of `allow_prefixes`; with neither set, only the caller-ID number's own country. Numbers of no country (+800,
  +881/+882 satellite and international networks) are reached only through an allowed prefix or "*".
- concurrent: at most `max_outbound_calls` (default: the account's `channels`) outbound calls at once; 0 forbids
  outbound calls.
- daily: with `daily_minutes` set, no new call once the day's outbound calls have used them, and a call that goes out
  is limited to what is left (`Outbound.limit_s`, counted from the dial, ringing included: the cap is never
  overrun by one call; calls running at the same time each get what was left when they started).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from vpbx.dialplan.model import Flow, PlayAndHangupNode, prompt_media
from vpbx.domain import numbers as nums
from vpbx.domain import rules
from vpbx.domain.destinations import Destination, try_parse
from vpbx.domain.errors import VpbxError
from vpbx.domain.records import Number, SipAccount
from vpbx.domain.rules import ANY_COUNTRY
from vpbx.domain.validation import LOGIN_RE

# the caller shown (and written to the call record) when the caller ID is withheld
ANONYMOUS = "anonymous"
# how long an outbound call may ring at the far end before it is given up (seconds)
OUTBOUND_RING_TIMEOUT = 120


@dataclass(frozen=True)
class Internal:
    """The dialled number is one of this install's: route the call like an inbound call to `number`."""

    number: Number


@dataclass(frozen=True)
class Outbound:
    """Call `dest` through `trunk` as `caller_id` (a number of this install).

    `number` is the caller-ID number turned into a one-target flow (forward to tel:`dest` through `trunk`, then hang
    up): the edge compiles and runs it like any other number's flow. `shown`: the callee may see `caller_id`, else
    the caller ID is withheld (the carrier is still told who calls).
    """

    number: Number
    dest: str
    trunk: str
    caller_id: str
    shown: bool
    login: str = ""                 # the SIP account that placed the call
    limit_s: int | None = None      # the longest the call may last (the daily cap), from the dial; None: no limit

    @property
    def caller(self) -> str:
        """The caller as the call record names it: the caller-ID number, or `anonymous` when withheld."""
        return self.caller_id if self.shown else ANONYMOUS


# Refused.rule: route = no way out (no caller ID of ours, not allowed out, no trunk, not a number); the others are the
# toll-fraud guards
GUARD_RULES = ("destination", "concurrent", "daily")
# prepaid control (vpbx.billing.prepaid), judged by the edge where the money of calls in progress is known: `rate` no
# outbound rate matches the destination of a paying account's call; `credit` its money does not pay the first interval
PREPAID_RULES = ("rate", "credit")
REFUSAL_RULES = ("route", *GUARD_RULES, *PREPAID_RULES)
NO_CREDIT_NODE = "no-credit"        # the node id of `no_credit_flow`
DISPOSITION_NO_CREDIT = "no_credit"


@dataclass(frozen=True)
class Refused:
    """The call may not go out; `reason` says why (for the log: names the account, the number and the rule)."""

    reason: str
    rule: str = "route"             # one of REFUSAL_RULES


@dataclass(frozen=True)
class Usage:
    """What an account's outbound calls use right now: calls in progress and seconds billed today."""

    active_calls: int = 0
    seconds_today: int = 0


@dataclass(frozen=True)
class Colleague:
    """A call to another SIP account of this install (dialled by login or extension): ring `callee`, then its own
    no-answer handling. `number` is that as a flow number (`colleague_call`): the edge compiles and runs it like any
    number's flow, and the call record names it (`sip:LOGIN`). `problem`: the callee's forward to a mobile cannot go
    out now (why); the flow hangs up after the ring instead. `forward_as`: how that forward goes out (the trunk, the
    callee's caller-ID number and whether the mobile may see it, as for the callee's own outbound call): what the
    edge presents on the forward's leg, and whose account pays it."""

    callee: SipAccount
    number: Number
    problem: str | None = None
    forward_as: Outbound | None = None


Decision = Internal | Colleague | Outbound | Refused

# What a phone dialled (`dialled_kind`): a number, an extension or a login.
NUMBER, EXTENSION, LOGIN = "number", "extension", "login"
MIN_NUMBER_DIGITS = 7             # fewer digits without '+' are an extension, never a number
EXTENSION_DIGITS = (2, 6)         # a SIP account's own extension (`vpbx sip set LOGIN --extension 201`)
# what a callee's no-answer handling may be: hang up, voicemail to its vm_emails, a prompt, a forward to a mobile
NO_ANSWER_KINDS = ("hangup", "voicemail", "play", "tel")
NO_ANSWER_SYNTAX = "hangup, voicemail, play:PROMPT or tel:+E164"
DEFAULT_RING_TIMEOUT = 20         # seconds a colleague's phone rings before its no-answer handling
RING_TIMEOUT_RANGE = (5, 300)
# calls to one colleague at once: not limited by vpbx (its phone answers 486 when it is busy, and the callee's busy
# handling follows); Flow.channels needs a number
COLLEAGUE_CHANNELS = 1000


def dialled_number(exten: str) -> str:
    """What a phone dialled (`380441234567` or `+380441234567`) as +E.164 text (not validated)."""
    exten = exten.strip()
    return exten if exten.startswith("+") else f"+{exten}"


def may_call_out(number: Number) -> str | None:
    """None if `number` may be presented on an outbound call, else why not: the shared rule
    (vpbx.domain.rules.outbound_problem), so toll-free numbers are inbound-only whatever their stored direction says."""
    problem = rules.outbound_problem(number.type, number.direction)
    return None if problem is None else f"caller-ID number {number.number} {problem}"


def trunk_for(number: Number | None, default_trunk: str | None) -> str | None:
    """The trunk `number`'s calls to tel: targets go out through: the number's own, else the install's default
    (None: such a target cannot be dialled)."""
    return (number.trunk if number is not None else None) or default_trunk


def dialled_kind(exten: str) -> str:
    """NUMBER, EXTENSION or LOGIN: what the text a phone dialled stands for, by its shape alone (module docstring).
    Text that is none of them (`*97`, empty) counts as a number: the number rules refuse it."""
    if exten.isascii() and exten.isdigit():
        return NUMBER if len(exten) >= MIN_NUMBER_DIGITS else EXTENSION
    return LOGIN if LOGIN_RE.fullmatch(exten) else NUMBER


def extension_problem(text: object) -> str | None:
    """None if `text` may be a SIP account's own extension (2-6 ASCII digits), else why not."""
    low, high = EXTENSION_DIGITS
    if isinstance(text, str) and text.isascii() and text.isdigit() and low <= len(text) <= high:
        return None
    return (f"an extension is {low}-{high} digits (numbers are dialled with '+' or as {MIN_NUMBER_DIGITS} or more "
            "digits)")


def decide(dialled: Number | None, dest: str, account: SipAccount | None, own: Number | None,
           default_trunk: str | None, *, exten: str = "", callee: SipAccount | None = None,
           callee_own: Number | None = None) -> Decision:
    """Decide a call that SIP account `account` placed to `dest` (+E.164 text, see `dialled_number`).

    `dialled`: the number of this install `dest` names (None: not one of ours); `own`: the account's caller-ID number
    as stored (None: the account has none, or it is not a number of this install); `default_trunk`: the install's
    trunk for numbers that name none. `exten`: the text the phone dialled; when it is a login or an extension
    (`dialled_kind`) the call is to a colleague: `callee` is the SIP account it names (None: none has it) and
    `callee_own` the callee's caller-ID number as stored (its forward to a mobile goes out as that number's call).
    """
    if exten and dialled_kind(exten) != NUMBER:
        return _colleague(exten, account, callee, callee_own, default_trunk)
    if dialled is not None:
        return Internal(dialled)
    if account is None:
        return Refused(f"no SIP account places this call to {dest}")
    try:
        nums.parse(dest)
    except VpbxError as exc:
        return Refused(f"{account.login} dialled {dest}, which is not a number that can be called: {exc}")
    if own is None:
        which = f"caller-ID number {account.caller_id} is not a number of this install" if account.caller_id \
            else "the account has no caller-ID number"
        return Refused(f"{account.login} may not call {dest} out: {which}")
    problem = may_call_out(own)
    if problem is not None:
        return Refused(f"{account.login} may not call {dest} out: {problem}")
    trunk = trunk_for(own, default_trunk)
    if not trunk:
        return Refused(f"{account.login} may not call {dest} out: caller-ID number {own.number} has no trunk and "
                       "the install has no default trunk")
    problem = destination_problem(account, own.number, dest)
    if problem is not None:
        return Refused(f"{account.login} may not call {dest}: {problem}", rule="destination")
    shown = nums.same_country(own.number, dest)
    flow_number = replace(own, trunk=trunk, route=None, greeting=None, forward_to=(str(Destination("tel", dest)),),
                          forward_mode="sequential", forward_timeout=OUTBOUND_RING_TIMEOUT, fallback="hangup")
    return Outbound(number=flow_number, dest=dest, trunk=trunk, caller_id=own.number, shown=shown,
                    login=account.login)


def _colleague(exten: str, account: SipAccount | None, callee: SipAccount | None, callee_own: Number | None,
               default_trunk: str | None) -> Colleague | Refused:
    if account is None:
        return Refused(f"no SIP account places this call to {exten}")
    if callee is None:
        what = "extension or all-digit login" if dialled_kind(exten) == EXTENSION else "login"
        return Refused(f"{account.login} dialled {exten}: no SIP account has that {what} (`vpbx sip list`)")
    if callee.login == account.login:
        return Refused(f"{account.login} dialled {exten}, its own {'login' if exten == callee.login else 'extension'}")
    return colleague_call(callee, callee_own, default_trunk)


def forward_problem(callee: SipAccount, callee_own: Number | None, default_trunk: str | None) -> str | None:
    """None if `callee`'s calls may be forwarded out through a trunk as its caller-ID number's (`callee_own`, as
    stored), else why not: the number must be one of this install that may call out and have a trunk (its own or the
    install's default)."""
    if callee_own is None:
        return (f"caller-ID number {callee.caller_id} is not a number of this install" if callee.caller_id
                else "the account has no caller-ID number to forward its calls as (`--caller-id`)")
    problem = may_call_out(callee_own)
    if problem is not None:
        return problem
    if not trunk_for(callee_own, default_trunk):
        return f"caller-ID number {callee_own.number} has no trunk and the install has no default trunk"
    return None


def colleague_call(callee: SipAccount, callee_own: Number | None, default_trunk: str | None) -> Colleague:
    """A call to SIP account `callee`: its phone rings for `ring_timeout` seconds, then its `no_answer` handling -
    hang up, voicemail (to its `vm_emails`, exactly as a number's), a prompt, or a forward to a mobile that rings as
    long and goes out through the trunk of the callee's caller-ID number (`forward_problem`; when it cannot, the flow
    hangs up instead and `problem` says why). Busy or not registered counts as no answer. Calls to the callee are
    recorded when it asks for recording (`record_calls`)."""
    ring = str(Destination("sip", callee.login))
    number = Number(number=ring, channels=COLLEAGUE_CHANNELS, language="", forward_timeout=callee.ring_timeout,
                    vm_emails=callee.vm_emails, record_calls=callee.record_calls, record_prompt=callee.record_prompt)
    no_answer = try_parse(callee.no_answer)
    if no_answer is not None and no_answer.kind == "tel":
        problem = forward_problem(callee, callee_own, default_trunk)
        if problem is None:
            assert callee_own is not None
            trunk = trunk_for(callee_own, default_trunk) or ""
            number = replace(number, trunk=trunk, forward_to=(ring, str(no_answer)), forward_mode="sequential",
                             fallback="hangup")
            shown = nums.same_country(callee_own.number, no_answer.value)
            return Colleague(callee, number, forward_as=Outbound(number, no_answer.value, trunk, callee_own.number,
                                                                 shown, login=callee.login))
        return Colleague(callee, replace(number, route=ring, fallback="hangup"),
                         problem=f"{callee.login}'s calls are not forwarded to {no_answer.value}: {problem}")
    return Colleague(callee, replace(number, route=ring, fallback=callee.no_answer))


def no_credit_flow(number: Number, prompt: str) -> Flow:
    """The flow of an outbound call refused for want of money (rule `credit`): answer the phone, play `prompt` (a
    prompt name) saying why, hang up; nothing is dialled. The call record's disposition is "no_credit"."""
    node = PlayAndHangupNode(NO_CREDIT_NODE, prompt_media(prompt), dest=None, disposition=DISPOSITION_NO_CREDIT)
    return Flow(number.number, number.channels, NO_CREDIT_NODE, NO_CREDIT_NODE, {NO_CREDIT_NODE: node})


def allowed_destinations(account: SipAccount, caller_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(countries, prefixes) `account` may call: as set, else (the caller-ID number's country,) and no prefixes."""
    if account.allow_countries or account.allow_prefixes:
        return account.allow_countries, account.allow_prefixes
    home = nums.country_of(caller_id)
    return ((home,) if home else ()), ()


def destination_problem(account: SipAccount, caller_id: str, dest: str) -> str | None:
    """None if the destination guard lets `account` (presenting `caller_id`) call `dest`, else why not."""
    countries, prefixes = allowed_destinations(account, caller_id)
    if ANY_COUNTRY in countries or any(dest.startswith(p) for p in prefixes):
        return None
    country = nums.country_of(dest)
    if country is not None and country in countries:
        return None
    allowed = ", ".join((*countries, *prefixes)) or "nothing"
    where = f"country {country}" if country else "a number of no country"
    how = f"vpbx sip set {account.login} --allow-countries {','.join((*countries, country))}" if country else \
        f"vpbx sip set {account.login} --allow-prefixes {','.join((*prefixes, dest[:4]))}"
    return f"{dest} is in {where}, not allowed (allowed: {allowed}); allow it with `{how}`"


def max_outbound_calls(account: SipAccount) -> int:
    """How many outbound calls `account` may have at once."""
    return account.channels if account.max_outbound_calls is None else account.max_outbound_calls


def admit(outbound: Outbound, account: SipAccount, usage: Usage) -> Outbound | Refused:
    """The usage guards, judged when the call is about to go out: the concurrent-call cap and the daily-minutes cap.
    Admitted: `outbound` with `limit_s` (what is left of the day's minutes; None without a cap)."""
    cap = max_outbound_calls(account)
    if usage.active_calls >= cap:
        return Refused(f"{account.login} may not call {outbound.dest}: {usage.active_calls} outbound calls in "
                       f"progress, the most it may have at once is {cap} "
                       f"(`vpbx sip set {account.login} --max-outbound-calls N`)", rule="concurrent")
    if account.daily_minutes is None:
        return outbound
    left = account.daily_minutes * 60 - usage.seconds_today
    if left <= 0:
        return Refused(f"{account.login} may not call {outbound.dest}: today's outbound calls used "
                       f"{usage.seconds_today // 60} of {account.daily_minutes} minutes "
                       f"(`vpbx sip set {account.login} --daily-minutes N`)", rule="daily")
    return replace(outbound, limit_s=left)

"""The outbound decision: what happens when a SIP account of this install dials a number.

Rule: pure, like the rest of the package: records in, a decision out; the edge loads the records and carries the
decision out (a one-target flow through the trunk, the caller ID it tells the far end).

    decide(dialled, dest, account, own, default_trunk) -> Internal | Outbound | Refused
    admit(outbound, account, usage) -> Outbound | Refused   the account's usage guards, just before the call goes out
    trunk_for(number, default_trunk) -> str | None     the trunk a number's tel: targets are dialled through

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

from vpbx.domain import numbers as nums
from vpbx.domain import rules
from vpbx.domain.destinations import Destination
from vpbx.domain.errors import VpbxError
from vpbx.domain.records import Number, SipAccount
from vpbx.domain.rules import ANY_COUNTRY

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
REFUSAL_RULES = ("route", *GUARD_RULES)


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


Decision = Internal | Outbound | Refused


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


def decide(dialled: Number | None, dest: str, account: SipAccount | None, own: Number | None,
           default_trunk: str | None) -> Decision:
    """Decide a call that SIP account `account` placed to `dest` (+E.164 text, see `dialled_number`).

    `dialled`: the number of this install `dest` names (None: not one of ours); `own`: the account's caller-ID number
    as stored (None: the account has none, or it is not a number of this install); `default_trunk`: the install's
    trunk for numbers that name none.
    """
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

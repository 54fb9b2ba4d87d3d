"""The outbound decision: what happens when a SIP account of this install dials a number.

Rule: pure, like the rest of the package: records in, a decision out; the edge loads the records and carries the
decision out (a one-target flow through the trunk, the caller ID it tells the far end).

    decide(dialled, dest, account, own, default_trunk) -> Internal | Outbound | Refused
    trunk_for(number, default_trunk) -> str | None     the trunk a number's tel: targets are dialled through

- `dialled` is a number of this install: an internal call, routed like an inbound call to that number (`Internal`).
- Otherwise the call goes out (`Outbound`) only when the account presents a caller-ID number of this install (`own`)
  that may call out (`may_call_out`, the shared rule of vpbx.domain.rules: direction out or both, never toll-free),
  there is a trunk to dial through (the caller-ID number's, else the install's default) and the destination is a
  valid E.164 number. Anything else is `Refused` (the edge rejects the call as an unallocated number).
- The caller ID: the carrier always learns the caller-ID number; the callee is shown it only when the destination is
  in the caller-ID number's country, else it is withheld (`Outbound.shown`, `Outbound.caller`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from vpbx.domain import numbers as nums
from vpbx.domain import rules
from vpbx.domain.destinations import Destination
from vpbx.domain.errors import VpbxError
from vpbx.domain.records import Number, SipAccount

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

    @property
    def caller(self) -> str:
        """The caller as the call record names it: the caller-ID number, or `anonymous` when withheld."""
        return self.caller_id if self.shown else ANONYMOUS


@dataclass(frozen=True)
class Refused:
    """The call may not go out; `reason` says why (for the log: names the account, the number and the rule)."""

    reason: str


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
    shown = nums.same_country(own.number, dest)
    flow_number = replace(own, trunk=trunk, route=None, greeting=None, forward_to=(str(Destination("tel", dest)),),
                          forward_mode="sequential", forward_timeout=OUTBOUND_RING_TIMEOUT, fallback="hangup")
    return Outbound(number=flow_number, dest=dest, trunk=trunk, caller_id=own.number, shown=shown)

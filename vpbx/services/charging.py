"""Charging calls to external numbers: every rule about who pays an outbound call and how much.

Rules: the arithmetic is the pure `vpbx.billing.outbound` (rates, billed intervals, cost); SQL is the store's. Who pays:
- a SIP account's outbound call: the customer's account the SIP account belongs to (`SipAccount.account`; None: the
  call is not rated - an install that sells nothing keeps working), unless it goes out through that account's own
  trunk (`Trunk.account`), which the customer pays its operator for;
- a number's call forwarded to an external number (a `tel:` target): the number's owner, unless the number is on a
  free trial or the trunk is the owner's own.
How much: the destination's outbound rate (longest prefix) for the talk seconds, in whole intervals, plus the rate's
connection charge once an answered call; the plan call credit of the number the call was made as (when the paying
account holds it) is spent first, then the balance, through one ledger row of kind "call" - a call is charged once
(`pay_for_call`, shared with toll-free charging), in one transaction with the ledger row.
The engine decides when (prepaid control, vpbx.billing.prepaid); the billing run charges what the engine left.
"""
from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING

from vpbx.domain import validation as validate
from vpbx.domain.errors import ConflictError, NotFoundError
from vpbx.domain.records import Number, SipAccount
from vpbx.services.lifecycle import suspend_or_reactivate

if TYPE_CHECKING:
    from vpbx.billing.outbound import OutboundRate
    from vpbx.config import Config
    from vpbx.storage.store import Store

log = logging.getLogger(__name__)


# ---- who pays -----------------------------------------------------------------------------------------------------
def payer_for_account_call(store: Store, sip: SipAccount, trunk: str) -> str | None:
    """The account that pays SIP account `sip`'s outbound call going out through trunk `trunk`: `sip.account`; None
    when it belongs to no account, or when `trunk` is that account's own trunk (uncharged)."""
    if sip.account is None or store.trunks.account_of(trunk) == sip.account:
        return None
    return sip.account


def payer_for_forward(store: Store, number: Number, trunk: str) -> str | None:
    """The account that pays `number`'s call forwarded to an external number through trunk `trunk`: the number's
    owner; None when it has none, is on a free trial, or `trunk` is the owner's own trunk."""
    if number.account is None or number.status == "trial" or store.trunks.account_of(trunk) == number.account:
        return None
    return number.account


def money_of(store: Store, account: str, credit_number: str | None) -> int:
    """What `account` may spend on calls (minor units): its balance plus the plan call credit left on
    `credit_number` when `account` holds that number."""
    money = store.accounts.get(account).balance
    if credit_number:
        n = store.numbers.find(credit_number)
        if n is not None and n.account == account:
            money += max(n.call_credit, 0)
    return money


def import_outbound_rates(store: Store, text: str) -> int:
    """Replace the outbound rate table with the rates of an outbound rates CSV (`parse_outbound_rates_csv`), whole,
    in one transaction; every line is checked before anything is written. Returns how many rates."""
    from vpbx.billing.outbound import OutboundRateTable, parse_outbound_rates_csv

    rates = parse_outbound_rates_csv(text)
    OutboundRateTable(rates)                  # refuses duplicates and bad prefixes, as a lookup would
    return store.rates.replace_outbound(rates)


def outbound_rate(store: Store, dest: str) -> OutboundRate | None:
    """The outbound rate of destination `dest` ("+E.164"): the longest prefix in the table; None when none matches."""
    return store.rates.outbound_lookup(dest)


# ---- the rules of attaching an account ------------------------------------------------------------------------------
def open_account(store: Store, name: str, obj: str) -> str:
    """`name` as the paying account of `obj` ("SIP account alice", "trunk t1"): a valid name of an open account."""
    with validate.about(obj):
        validate.name(name, "account")
    try:
        store.accounts.get(name, include_closed=True)
    except NotFoundError:
        raise NotFoundError(f"{obj}: account {name} not found; give one of `vpbx account list`, or add it with "
                            f"`vpbx account add {name} --email ADDRESS`") from None
    try:
        account = store.accounts.get(name)
    except NotFoundError:
        raise ConflictError(f"{obj}: account {name} is closed; give an open account (`vpbx account list`)") from None
    return account.name


def check_sip_payer(store: Store, sip: SipAccount) -> SipAccount:
    """A SIP account that belongs to an account: the account is open, and the caller-ID number its calls are made as,
    when held by an account, is held by that same one (its plan call credit pays them)."""
    if sip.account is None:
        return sip
    obj = f"SIP account {sip.login}"
    open_account(store, sip.account, obj)
    own = store.numbers.find(sip.caller_id) if sip.caller_id else None
    if own is not None and own.account is not None and own.account != sip.account:
        raise ConflictError(f"{obj}: its caller-ID number {own.number} is held by account {own.account}, not "
                            f"{sip.account}; give --account {own.account}, or another --caller-id")
    return sip


# ---- charging -----------------------------------------------------------------------------------------------------
def pay_for_call(store: Store, call_id: str, account: str, credit_number: str | None, cost: int, day: str, ref: str,
                 rate_prefix: str | None = None) -> int | None:
    """Charge `cost` (minor units) for call `call_id` to `account`, in one transaction: None (nothing done) when the
    call is unknown or already has a cost; else the plan call credit of `credit_number` is spent first (when
    `account` holds it), the rest posted as one ledger row of kind "call" dated `day` (`ref`, plus the credit used),
    the call's account, cost and rate prefix recorded, and the account's numbers suspended or reactivated by its new
    balance. Returns the cost."""
    with store.write():
        call = store.calls.get(call_id)
        if call is None or call.get("cost") is not None:
            return None         # charged meanwhile by another process (the engine and the billing run both charge)
        held = store.numbers.find(credit_number) if credit_number else None
        if held is not None and held.account != account:
            held = None
        from_credit = min(max(held.call_credit, 0), cost) if held is not None else 0
        if held is not None and from_credit:
            store.numbers.update([held.number], call_credit=held.call_credit - from_credit)
        due = cost - from_credit
        if due:
            store.accounts.post(account, -due, "call", day, number=held.number if held is not None else None,
                                call_id=call_id,
                                ref=ref + (f", {from_credit} from call credit" if from_credit else ""))
        store.calls.set_charge(call_id, account, cost, rate_prefix)
        suspend_or_reactivate(store, account)
    return cost


def _call_day(call: dict[str, object]) -> str:
    started = call.get("started_at")
    return started[:10] if isinstance(started, str) and started else date.today().isoformat()


def charge_outbound(store: Store, call_id: str, account: str, credit_number: str | None, rate: OutboundRate,
                    seconds: int) -> int | None:
    """Charge call `call_id`'s `seconds` of talk to an external number at `rate` to `account` (the plan call credit
    of `credit_number` first), in one transaction, once: None when the call already has a cost (or is unknown). An
    unanswered call (0 s) costs 0 and writes no ledger row. Returns the cost."""
    from vpbx.billing.outbound import format_increment, outbound_cost

    cost = outbound_cost(rate, seconds)
    with store.write():
        call = store.calls.get(call_id)
        if call is None:
            log.warning("call %s: no call record to charge %d s at prefix %s to account %s", call_id, seconds,
                        rate.prefix, account)
            return None
        reached = call.get("reached")
        dest = f" to {reached[4:]}" if isinstance(reached, str) and reached.startswith("tel:") else ""
        ref = f"{seconds} s{dest} at prefix {rate.prefix} ({format_increment(rate.initial, rate.increment)})"
        return pay_for_call(store, call_id, account, credit_number, cost, _call_day(call), ref, rate.prefix)


def charge_unrated_outbound(store: Store, cfg: Config) -> int:
    """`vpbx billing run`: charge the finished calls a paying account was noted for that reached an external number
    (calls.reached tel:+...) and were left uncharged (the engine stopped, or its charge failed): rated by that
    destination and the call's billed seconds, the credit of the call's number first. A destination no outbound rate
    matches is recorded at cost 0 with a warning. Returns how many calls were charged."""
    charged = 0
    for call in store.calls.unrated_outbound():
        dest = str(call["reached"])[4:]
        rate = outbound_rate(store, dest)
        if rate is None:
            log.warning("call %s to %s: no outbound rate matches; not charged (import rates with `vpbx rates import "
                        "--outbound`)", call["call_id"], dest)
            if pay_for_call(store, call["call_id"], call["account"], None, 0, "", "no outbound rate") is not None:
                charged += 1       # recorded at cost 0 (no ledger row), as an unrated toll-free call is
            continue
        cost = charge_outbound(store, call["call_id"], call["account"], call["number"], rate,
                               max(0, int(call["billsec"] or 0)))
        if cost is not None:
            charged += 1
    return charged

"""Prepaid control: the money of one paying account, shared by its calls in progress and granted to them in quotas.

Rule: pure, like the rest of the package (no I/O, no SQL, no clock: the engine holds the time and the timers). Money
is the account's plan call credit plus its balance, in minor units, as read when its first call in progress began.

How a call is controlled (the credit-control pattern of prepaid switches, e.g. Diameter Gy quotas):
- Before a leg is dialled, the wallet `hold`s the first interval of its rate (connection charge included); when what
  is left cannot pay it, the call is refused before anything is dialled.
- Once the leg is answered, the engine asks for more time (`extend`) a few seconds (WARNING_SECONDS) before the granted
  time runs out, QUOTA_SECONDS at a time, whole intervals only, never more than the wallet has left. When nothing more
  is granted, the caller hears a warning and the leg is cut when the granted time ends.
- When the call ends, its billed seconds, capped at what it was granted, are charged (`close`): every call's charge is
  covered by what it held, and the holds of all calls together never exceed the money. So no combination of
  simultaneous calls takes the account below zero (rounding included: the cost of fewer seconds is never more).
- A hold that never connected (the leg failed, rang out, or another leg answered) is released for nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from vpbx.billing.outbound import OutboundRate, affordable_seconds, billed_seconds, outbound_cost

QUOTA_SECONDS = 60          # talk time asked for at a time: small enough not to lock up money others could use
WARNING_SECONDS = 10        # the warning before a cut; also how early the next quota is asked for


@dataclass(frozen=True)
class Payer:
    """Who pays a call's legs to external numbers: `account`, from `money` (its balance plus the call credit of
    `credit_number` when it holds that number). `rate`: the destination's rate when it is known before the call
    (an account's own outbound call); a number's forward is rated per leg when the leg is dialled."""

    account: str
    credit_number: str | None
    money: int
    rate: OutboundRate | None = None


@dataclass
class _Hold:
    rate: OutboundRate
    granted: int            # billed seconds granted so far (whole intervals)
    held: int               # their cost, kept from the wallet


class Wallet:
    """One paying account's money and the holds of its legs in progress (keyed by leg id)."""

    def __init__(self, money: int) -> None:
        self.money = money
        self._holds: dict[str, _Hold] = {}
        self.pending = 0    # charges handed to the store and not yet written (the engine counts them)

    @property
    def available(self) -> int:
        """Money no leg holds."""
        return self.money - sum(h.held for h in self._holds.values())

    @property
    def idle(self) -> bool:
        """No leg holds anything and no charge is on its way: the store's figure is the true one again."""
        return not self._holds and not self.pending

    def can_start(self, rate: OutboundRate) -> bool:
        """Whether what is left pays the first interval of `rate` (connection charge included)."""
        return affordable_seconds(rate, self.available) > 0

    def hold(self, key: str, rate: OutboundRate) -> int:
        """Hold the first interval of `rate` for leg `key`: the seconds granted (0: refused, nothing held)."""
        if key in self._holds:
            return self._holds[key].granted
        first = billed_seconds(1, rate.initial, rate.increment)
        cost = outbound_cost(rate, first)
        if cost > self.available:
            return 0
        self._holds[key] = _Hold(rate, first, cost)
        return first

    def rekey(self, old: str, new: str) -> None:
        """The hold made under `old` (a call, before its leg had an id) now belongs to leg `new`."""
        hold = self._holds.pop(old, None)
        if hold is not None:
            self._holds[new] = hold

    def granted(self, key: str) -> int:
        hold = self._holds.get(key)
        return hold.granted if hold is not None else 0

    def held(self, key: str) -> int:
        """Money leg `key` holds (the cost of its granted seconds)."""
        hold = self._holds.get(key)
        return hold.held if hold is not None else 0

    def holds(self, key: str) -> bool:
        return key in self._holds

    def extend(self, key: str, quota: int = QUOTA_SECONDS) -> int:
        """Grant leg `key` up to `quota` more seconds, in whole intervals, from what is left; the new total granted
        (unchanged: nothing more can be granted)."""
        hold = self._holds.get(key)
        if hold is None:
            return 0
        budget = min(outbound_cost(hold.rate, hold.granted + quota), hold.held + self.available)
        more = affordable_seconds(hold.rate, budget)
        if more > hold.granted:
            hold.granted, hold.held = more, outbound_cost(hold.rate, more)
        return hold.granted

    def close(self, key: str, seconds: int) -> tuple[int, int]:
        """Leg `key` ended after `seconds` of talk: (billed seconds, cost) - the seconds capped at what was granted;
        the cost leaves the wallet's money and the hold is released. (0, 0) for a leg that held nothing."""
        hold = self._holds.pop(key, None)
        if hold is None:
            return 0, 0
        used = min(max(0, seconds), hold.granted)
        cost = outbound_cost(hold.rate, used)
        self.money -= cost
        return used, cost

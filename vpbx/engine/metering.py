"""Metering: prepaid control of the legs to external numbers that a paying account's calls dial.

Rule: carries out what vpbx.billing.prepaid decides (holds, quotas, the capped charge) on the loop, where the count of
legs in progress is exact; it owns the wallets (one per paying account) and the per-leg timers, and does nothing else.
What it does over ARI: a warning beep into the call's bridge, a leg hung up when its money is used, and a backstop
`TIMEOUT(absolute)` on the leg so that Asterisk itself ends a talk whose engine died (at the most the money paid for
when it was answered, as if it were the account's only call).

A wallet is loaded from the store (Payer.money, read when the call was resolved) when the account has no leg in
progress and no charge on its way to the store; otherwise the wallet in memory is the true figure. A top-up made while
an account's calls run counts from its next call after they all end.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from vpbx.asterisk.ari import AriClient, AriError
from vpbx.billing.outbound import OutboundRate, affordable_seconds
from vpbx.billing.prepaid import QUOTA_SECONDS, WARNING_SECONDS, Payer, Wallet

log = logging.getLogger(__name__)

WARNING_MEDIA = "sound:beep"
BACKSTOP_SLACK_S = 2        # the backstop cut comes this much after the engine's own


@dataclass
class Meter:
    """One leg's prepaid control: who pays, at what rate, when its talk began (monotonic), its timer."""

    call_id: str
    leg_id: str
    payer: Payer
    rate: OutboundRate
    dest: str
    bridge_id: str | None = None
    talk_started: float | None = None
    timer: asyncio.TimerHandle | None = None
    warned: bool = False


class Metering:
    """Wallets of paying accounts and the meters of their legs."""

    def __init__(self, ari: AriClient, warning_seconds: int = WARNING_SECONDS) -> None:
        self.ari = ari
        self.warning_seconds = warning_seconds
        self.wallets: dict[str, Wallet] = {}
        self.meters: dict[str, Meter] = {}            # by leg id
        self._background: set[asyncio.Task[None]] = set()

    def wallet(self, payer: Payer) -> Wallet:
        wallet = self.wallets.get(payer.account)
        if wallet is None or wallet.idle:
            wallet = self.wallets[payer.account] = Wallet(payer.money)
        return wallet

    def hold(self, key: str, call_id: str, payer: Payer, rate: OutboundRate, dest: str) -> bool:
        """Hold the first interval for a leg about to be dialled (`key`: its id, or the call's id before it has
        one); False: the money does not pay it, do not dial."""
        if self.wallet(payer).hold(key, rate) <= 0:
            log.info("call %s to %s: %s cannot pay the first interval (%d left)", call_id, dest, payer.account,
                     self.wallet(payer).available)
            return False
        self.meters[key] = Meter(call_id, key, payer, rate, dest)
        return True

    def rekey(self, old: str, new: str) -> None:
        meter = self.meters.pop(old, None)
        if meter is not None:
            meter.leg_id = new
            self.meters[new] = meter
            self.wallets[meter.payer.account].rekey(old, new)

    def connected(self, leg_id: str, bridge_id: str | None) -> Meter | None:
        """Leg `leg_id` was bridged: its talk is metered from now. Returns its meter (None: not a metered leg)."""
        meter = self.meters.get(leg_id)
        if meter is None or meter.talk_started is not None:
            return meter
        meter.talk_started, meter.bridge_id = time.monotonic(), bridge_id
        wallet = self.wallets[meter.payer.account]
        backstop = affordable_seconds(meter.rate, wallet.available + wallet.held(leg_id)) + BACKSTOP_SLACK_S
        self._spawn(self._set_backstop(meter, backstop))
        self._checkpoint(meter)
        return meter

    def _elapsed(self, meter: Meter) -> float:
        assert meter.talk_started is not None
        return time.monotonic() - meter.talk_started

    def _checkpoint(self, meter: Meter) -> None:
        """Ask for more time now; then come back shortly before the granted time ends (or warn and cut)."""
        if meter.leg_id not in self.meters:
            return
        wallet = self.wallets[meter.payer.account]
        granted_before = wallet.granted(meter.leg_id)
        granted = wallet.extend(meter.leg_id, QUOTA_SECONDS)
        left = granted - self._elapsed(meter)
        if granted > granted_before or left > self.warning_seconds:
            meter.warned = False
            self._at(meter, max(0.0, left - self.warning_seconds), self._checkpoint)
            return
        if not meter.warned:
            meter.warned = True
            log.info("call %s to %s: %s's money runs out in %.0f s (granted %d s); warning", meter.call_id,
                     meter.dest, meter.payer.account, left, granted)
            self._spawn(self._warn(meter))
        self._at(meter, max(0.0, left), self._cut)

    def _cut(self, meter: Meter) -> None:
        wallet = self.wallets[meter.payer.account]
        granted_before = wallet.granted(meter.leg_id)
        if wallet.extend(meter.leg_id, QUOTA_SECONDS) > granted_before:     # money came free meanwhile
            self._checkpoint(meter)
            return
        log.warning("call %s to %s: cut after %.1f s, %s's money is used (granted %d s)", meter.call_id, meter.dest,
                    self._elapsed(meter), meter.payer.account, granted_before)
        self._spawn(self._hangup(meter.leg_id))

    def _at(self, meter: Meter, delay: float, then: Callable[[Meter], None]) -> None:
        if meter.timer is not None:
            meter.timer.cancel()
        meter.timer = asyncio.get_running_loop().call_later(delay, then, meter)

    def close(self, leg_id: str, seconds: int) -> tuple[Meter, int, int] | None:
        """Leg `leg_id`'s part in the call is over: (its meter, billed seconds, cost) - `seconds` of talk capped at
        what was granted, 0 for a leg that never talked; None for a leg that was not metered. The wallet counts the
        charge as pending until `charged`."""
        meter = self.meters.pop(leg_id, None)
        if meter is None:
            return None
        if meter.timer is not None:
            meter.timer.cancel()
        wallet = self.wallets[meter.payer.account]
        used, cost = wallet.close(leg_id, seconds if meter.talk_started is not None else 0)
        if meter.talk_started is not None:
            wallet.pending += 1
        return meter, used, cost

    def charged(self, account: str) -> None:
        """A charge `close` counted as pending reached the store (or failed and was logged)."""
        wallet = self.wallets.get(account)
        if wallet is not None and wallet.pending:
            wallet.pending -= 1

    def legs_of(self, call_id: str) -> list[str]:
        return [leg for leg, m in self.meters.items() if m.call_id == call_id]

    # ---- ARI -----------------------------------------------------------------------------------------------------
    async def _set_backstop(self, meter: Meter, seconds: int) -> None:
        with contextlib.suppress(AriError):
            await self.ari.set_var(meter.leg_id, "TIMEOUT(absolute)", str(max(1, seconds)))

    async def _warn(self, meter: Meter) -> None:
        if meter.bridge_id is None:
            return
        try:
            await self.ari.play_bridge(meter.bridge_id, WARNING_MEDIA)
        except AriError as exc:
            log.warning("call %s: the money warning did not play: %s", meter.call_id, exc)

    async def _hangup(self, leg_id: str) -> None:
        with contextlib.suppress(AriError):
            await self.ari.hangup(leg_id, reason="normal")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

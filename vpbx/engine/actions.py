"""Carrying out the model's actions over ARI: a dispatch table {action type: handler}.

Rule: each handler does what its action says and nothing else; no decision is made here. What an action means is the
model's (vpbx.dialplan.model); what the far end is told on an outbound call is the outbound decision's
(vpbx.dialplan.outbound), here only turned into channel variables.

Failures: a request whose channel is gone (404) is reported back to the model as that channel's hang-up; any other
refused request is logged and, for the actions the model waits on, answered with the event it waits for
(FAILURE_EVENTS: a dial that fails is a failed leg, a playback that fails is a finished one, a recording a failed one).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from vpbx.asterisk.ari import AriClient, AriError, AriNotFound
from vpbx.config import Config
from vpbx.dialplan import model as dm
from vpbx.dialplan.outbound import Outbound, trunk_for
from vpbx.engine.metering import Metering
from vpbx.engine.store_worker import StoreWorker
from vpbx.services import charging, outbox
from vpbx.services.recordings import recording_name

if TYPE_CHECKING:
    from vpbx.engine.calls import Call, Calls
    from vpbx.storage.store import Store

log = logging.getLogger(__name__)

# Q.850 cause -> ARI hangup `reason` (the names every ARI version understands); any other cause (27, out of order)
# hangs up as normal, as the engine always has
HANGUP_REASONS = {1: "unallocated", 16: "normal", 17: "busy", 19: "no_answer", 21: "rejected", 34: "congestion"}
LEG_HANGUP_REASONS = ("answered_elsewhere", "normal", "timeout")
RINGBACK_MEDIA = "tone:ring"
# how long a created leg may take to enter the Stasis app before it is dialled anyway
LEG_START_TIMEOUT_S = 2.0
# a request for these failing with 404 does not mean the caller left (the playback or leg was already gone)
QUIET_WHEN_GONE: tuple[type, ...] = (dm.StopPlayback, dm.HangupLeg, dm.StartRingback, dm.StopRingback, dm.StopMoh)
# the event the model waits for after an action, fed back when Asterisk refuses the action
FAILURE_EVENTS: dict[type, Callable[[Any], dm.Event]] = {
    dm.Dial: lambda a: dm.LegFailed(a.leg_id, "unavailable"),
    dm.Play: lambda a: dm.PlaybackFinished(a.playback_id),
    dm.Record: lambda a: dm.RecordingFailed(a.name),
}


def endpoint_for(target: dm.Target, trunk: str | None) -> str | None:
    """ARI endpoint string for a dial target, or None when it cannot be dialled (no trunk for a tel: target)."""
    if target.kind == "sip":
        return f"PJSIP/{target.value}"
    if target.kind == "tel":
        return f"PJSIP/{target.value}@{trunk}" if trunk else None
    if target.kind == "uri":
        return f"PJSIP/vpbx-external/{target.value}"
    return None


def presentation(outbound: Outbound | None) -> dict[str, str] | None:
    """Channel variables for an outbound leg: what the far end is told comes from the leg's connected line (set here,
    not copied from the caller), and the longest the call may last. The `i` option only stores the connected line for
    the INVITE: without it each write queues a connected-line update that chan_pjsip sends to the carrier as a
    re-INVITE right after the answer."""
    if outbound is None:
        return None
    variables = {"CONNECTEDLINE(num,i)": outbound.caller_id,
                 "CONNECTEDLINE(pres,i)": "allowed" if outbound.shown else "prohib"}
    if outbound.limit_s is not None:
        # the daily cap (vpbx.dialplan.outbound.admit): Asterisk itself hangs the leg up when the time is used, from
        # the dial on, so the limit holds while the engine is down too
        variables["TIMEOUT(absolute)"] = str(max(1, outbound.limit_s))
    return variables


Handler = Callable[["ActionRunner", "Call", Any], Awaitable[None]]


class ActionRunner:
    """Carries out a call's actions in order (`execute`), each by its handler in HANDLERS."""

    def __init__(self, cfg: Config, ari: AriClient, store: StoreWorker, calls: Calls,
                 wake_outbox: Callable[[], None] | None = None, metering: Metering | None = None) -> None:
        self.cfg = cfg
        self.ari = ari
        self.store = store
        self.calls = calls
        self.wake_outbox = wake_outbox
        self.metering = metering if metering is not None else Metering(ari, cfg.billing.credit_warning_seconds)

    async def execute(self, call: Call, actions: list[dm.Action]) -> None:
        for action in actions:
            try:
                await HANDLERS[type(action)](self, call, action)
            except AriNotFound:
                # The channel went away under us: that is a hang-up, not a crash.
                leg = getattr(action, "leg_id", None) or getattr(action, "party", None)
                if leg and leg in call.legs:
                    call.queue.put_nowait(dm.LegHungUp(leg))
                elif not call.caller_gone and not isinstance(action, QUIET_WHEN_GONE):
                    call.caller_gone = True
                    call.queue.put_nowait(dm.CallerHungUp())
            except AriError as exc:
                log.warning("call %s: %s failed: %s", call.call_id, type(action).__name__, exc)
                feedback = FAILURE_EVENTS.get(type(action))
                if feedback is not None:
                    call.queue.put_nowait(feedback(action))

    # ---- handlers (one per action type) --------------------------------------------------------------------------
    async def answer(self, call: Call, action: dm.Answer) -> None:
        if not call.answered:
            await self.ari.answer(call.channel)
            call.answered = True

    async def ring(self, call: Call, action: dm.Ring) -> None:
        await self.ari.ring(call.channel)

    async def play(self, call: Call, action: dm.Play) -> None:
        lang = getattr(call.number, "language", None) or self.cfg.language
        await self.ari.play(call.channel, action.media, playback_id=action.playback_id, lang=lang)

    async def stop_playback(self, call: Call, action: dm.StopPlayback) -> None:
        with contextlib.suppress(AriNotFound):
            await self.ari.stop_playback(action.playback_id)

    async def start_ringback(self, call: Call, action: dm.StartRingback) -> None:
        with contextlib.suppress(AriError):      # ringing is a courtesy: the call goes on without it
            await self.ari.play(call.channel, RINGBACK_MEDIA, playback_id=action.playback_id)

    async def stop_ringback(self, call: Call, action: dm.StopRingback) -> None:
        with contextlib.suppress(AriError):
            await self.ari.stop_playback(action.playback_id)

    def _party_channel(self, call: Call, party: str) -> str:
        return call.channel if party == dm.CALLER else party

    async def start_moh(self, call: Call, action: dm.StartMoh) -> None:
        await self.ari.start_moh(self._party_channel(call, action.party), action.moh_class)

    async def stop_moh(self, call: Call, action: dm.StopMoh) -> None:
        await self.ari.stop_moh(self._party_channel(call, action.party))

    async def start_timer(self, call: Call, action: dm.StartTimer) -> None:
        loop = asyncio.get_running_loop()
        call.timers[action.timer_id] = loop.call_later(action.seconds, call.queue.put_nowait,
                                                       dm.TimerExpired(action.timer_id))

    async def cancel_timer(self, call: Call, action: dm.CancelTimer) -> None:
        handle = call.timers.pop(action.timer_id, None)
        if handle is not None:
            handle.cancel()

    async def dial(self, call: Call, action: dm.Dial) -> None:
        endpoint = endpoint_for(action.target, trunk_for(call.number, self.cfg.default_trunk))
        if endpoint is None:
            log.warning("call %s: %s has no route (no trunk)", call.call_id, action.target.dest)
            call.queue.put_nowait(dm.LegFailed(action.leg_id, "unavailable"))
            return
        if action.target.kind == "tel" and call.payer is not None and not await self._hold(call, action):
            call.queue.put_nowait(dm.LegFailed(action.leg_id, "unavailable"))
            return
        self.calls.add_leg(call, action.leg_id)
        # an outbound call's leg, or a colleague's forward to a mobile: presented as the account's caller-ID number
        variables = presentation(call.outbound or (call.forward_as if action.target.kind == "tel" else None))
        # `create` answers before the new channel is in the Stasis app (Asterisk puts it there from a thread of its
        # own); a dial sent at once can get 409 "Channel not in Stasis application": wait for the leg's StasisStart
        started = self.calls.expect_leg_start(action.leg_id)
        try:
            await self.ari.create(endpoint, app=self.cfg.ari.app, app_args=["leg", call.call_id],
                                  channel_id=action.leg_id, variables=variables)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(started, LEG_START_TIMEOUT_S)
        finally:
            self.calls.forget_leg_start(action.leg_id)
        await self.ari.dial(action.leg_id, caller=None if variables else call.channel,
                            timeout=max(1, int(action.timeout)))

    async def _hold(self, call: Call, action: dm.Dial) -> bool:
        """Prepaid control of a leg to an external number that `call.payer` pays (vpbx.engine.metering): an account's
        outbound call held its first interval when it was admitted (the hold passes to the leg); a number's forward
        holds it now, at the destination's rate. False: no rate, or no money for it - the leg is not dialled."""
        payer, dest = call.payer, action.target.value
        assert payer is not None
        if self.metering.wallet(payer).holds(call.call_id):
            self.metering.rekey(call.call_id, action.leg_id)
            return True
        rate = payer.rate or await self.store.read(lambda st: charging.outbound_rate(st, dest))
        if rate is None:
            log.warning("call %s: forward to %s not dialled: no outbound rate matches it, so it cannot be charged to "
                        "account %s (`vpbx rates import --outbound FILE`)", call.call_id, dest, payer.account)
            return False
        return self.metering.hold(action.leg_id, call.call_id, payer, rate, dest)

    async def hangup_leg(self, call: Call, action: dm.HangupLeg) -> None:
        if action.leg_id in call.legs:
            reason = action.reason if action.reason in LEG_HANGUP_REASONS else "normal"
            with contextlib.suppress(AriNotFound):
                await self.ari.hangup(action.leg_id, reason=reason)

    async def bridge(self, call: Call, action: dm.Bridge) -> None:
        if not call.answered:
            await self.ari.answer(call.channel)
            call.answered = True
        bridge_id = f"{call.call_id}-bridge"
        await self.ari.create_bridge("mixing", bridge_id=bridge_id)
        call.bridge_id = bridge_id
        # no connected-line re-INVITEs to the caller: many carriers and phones mishandle them mid-setup
        await self.ari.add_channel(bridge_id, [call.channel, action.leg_id], inhibit_connected_line_updates=True)

    async def record_call(self, call: Call, action: dm.RecordCall) -> None:
        if call.bridge_id is None:
            return
        try:
            await self.ari.record_bridge(call.bridge_id, recording_name(call.call_id))
            call.recording = recording_name(call.call_id)
        except AriError as exc:        # the talk goes on unrecorded: say so loudly
            log.error("call %s: recording did not start: %s", call.call_id, exc)

    async def record(self, call: Call, action: dm.Record) -> None:
        await self.ari.record(call.channel, action.name, format="wav", max_duration=action.max_seconds,
                              max_silence=action.max_silence, beep=action.beep, terminate_on=action.terminate_on,
                              if_exists="overwrite")

    async def deliver_voicemail(self, call: Call, action: dm.DeliverVoicemail) -> None:
        assert call.number is not None
        call_id, number, caller = call.call_id, call.number.number, call.caller

        def add(st: Store) -> None:
            outbox.queue_voicemail(st, action.name, call_id, number, caller, action.emails, action.duration)

        wake = self.wake_outbox
        self.store.write(add, f"call {call_id}: voicemail {action.name} into the outbox",
                         on_done=(lambda _result: wake()) if wake is not None else None)

    async def discard_recording(self, call: Call, action: dm.DiscardRecording) -> None:
        with contextlib.suppress(AriNotFound):
            await self.ari.delete_stored(action.name)

    async def hangup(self, call: Call, action: dm.Hangup) -> None:
        if not call.caller_gone:
            await self.ari.hangup(call.channel, reason=HANGUP_REASONS.get(action.cause, "normal"))
            call.caller_gone = True   # Hangup ends the call (the model's last action): cleanup need not repeat it


HANDLERS: dict[type, Handler] = {
    dm.Answer: ActionRunner.answer,
    dm.Ring: ActionRunner.ring,
    dm.Play: ActionRunner.play,
    dm.StopPlayback: ActionRunner.stop_playback,
    dm.StartRingback: ActionRunner.start_ringback,
    dm.StopRingback: ActionRunner.stop_ringback,
    dm.StartTimer: ActionRunner.start_timer,
    dm.CancelTimer: ActionRunner.cancel_timer,
    dm.Dial: ActionRunner.dial,
    dm.HangupLeg: ActionRunner.hangup_leg,
    dm.Bridge: ActionRunner.bridge,
    dm.Record: ActionRunner.record,
    dm.DeliverVoicemail: ActionRunner.deliver_voicemail,
    dm.DiscardRecording: ActionRunner.discard_recording,
    dm.Hangup: ActionRunner.hangup,
    dm.StartMoh: ActionRunner.start_moh,
    dm.StopMoh: ActionRunner.stop_moh,
    dm.RecordCall: ActionRunner.record_call,
}

"""Transfers from phones bridged by vpbx: a REFER becomes an ARI ChannelTransfer event (SIP accounts' endpoints set
`PJSIP_TRANSFER_HANDLING()=ari-only`, vpbx.asterisk.render.pjsip), and the engine carries it out.

Rule: the decisions are the model's and the outbound rules' (vpbx.dialplan): where a blind transfer goes is decided
exactly as if the transferring party had dialled the destination (`resolve` with its SIP account: a login, an
extension, a number of this install and its route, an external number through the outbound rules and toll-fraud
guards); the party handed over leaves its call (model event HandedOver: the transferer is hung up, the call is closed
as "transferred") and goes on in a call of its own with its own record (`transferred_from`, `transferred_by`).

    blind      refer_to.requested_destination.destination: resolved for the transferer; refused -> NOTIFY 603
               (channel_declined) and the talk goes on; accepted -> NOTIFY 200 (channel_answered), the transferer is
               hung up, the transferee hears ringing while the destination's flow runs (its own no-answer / busy
               handling: the transferee never meets silence).
    attended   the REFER (with Replaces) names the consultation call: the transferer's two calls each hand their other
               party over, and those two are bridged in a new call; both of the transferer's channels are hung up.
    anything else (a call not bridged, a REFER naming channels vpbx does not hold): declined, nothing changes.
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any

from vpbx.asterisk.ari import AriClient, AriError
from vpbx.dialplan import model as dm
from vpbx.engine.calls import Call, Calls, CallTasks, Handover, Resolved, Talking, resolve
from vpbx.engine.events import CallStart, endpoint_of

log = logging.getLogger(__name__)

ANSWERED, DECLINED = "channel_answered", "channel_declined"


class Transfers:
    """Carries out the ChannelTransfer events of the calls in `calls` (CallTasks.on_transfer)."""

    def __init__(self, ari: AriClient, calls: Calls, tasks: CallTasks) -> None:
        self.ari = ari
        self.calls = calls
        self.tasks = tasks
        tasks.on_transfer = self.handle

    async def handle(self, call: Call, event: dict[str, Any]) -> None:
        log.debug("call %s: ChannelTransfer %s", call.call_id, json.dumps(event))
        refer_to = event.get("refer_to") or {}
        referred_by = event.get("referred_by") or {}
        source = referred_by.get("source_channel") or {}
        transferer = str(source.get("id") or "")
        wanted = refer_to.get("requested_destination") or {}
        if event.get("state"):       # a progress report about a transfer already handled, not a new REFER
            return
        try:
            if wanted.get("destination") and not refer_to.get("destination_channel") \
                    and not wanted.get("protocol_id"):     # a REFER with Replaces names a dialog: attended
                done = await self._blind(call, transferer, endpoint_of(str(source.get("name") or "")),
                                         str(wanted["destination"]))
            else:
                done = await self._attended(call, transferer, refer_to, referred_by)
        except Exception:      # a transfer that cannot be carried out must never take the talk down with it
            log.exception("call %s: transfer by %s failed", call.call_id, transferer)
            done = False
        if not done:
            with contextlib.suppress(AriError):
                await self.ari.transfer_progress(transferer, DECLINED)

    # ---- blind ---------------------------------------------------------------------------------------------------
    async def _blind(self, call: Call, transferer: str, login: str, dest: str) -> bool:
        party = _bridged_party(call, transferer)
        if party is None:
            log.info("call %s: blind transfer by %s refused: not a party of a talk", call.call_id, transferer)
            return False
        transferee, kept = party
        start = CallStart(channel_id=transferee, caller=_caller_of(call, kept), direction="outbound", exten=dest,
                          login=login, answered=True)
        default_trunk = self.tasks.cfg.default_trunk
        resolved = await self.tasks.store.read(lambda st: resolve(st, start, default_trunk))
        resolved = self.tasks.admit(resolved, start)
        if resolved.number is None or resolved.flow is None:
            why = resolved.refused.reason if resolved.refused else resolved.flow_error or f"{dest} is not known"
            log.info("call %s: blind transfer by %s to %s refused: %s", call.call_id, login or transferer, dest, why)
            return False
        log.info("call %s: %s transfers %s to %s", call.call_id, login or transferer, transferee, dest)
        await self.ari.transfer_progress(transferer, ANSWERED)
        await self._hand_over(call, kept, transferee, by=login or transferer, to=dest)
        self.tasks.start_handover(start, resolved, Handover(call.call_id, login or transferer, dest))
        return True

    # ---- attended ------------------------------------------------------------------------------------------------
    async def _attended(self, call: Call, transferer: str, refer_to: dict[str, Any],
                        referred_by: dict[str, Any]) -> bool:
        """The REFER came on `transferer` (a party of `call`); refer_to names the transferer's other channel (to be
        replaced) and the party connected to it. Bridge `call`'s other party with that one."""
        replaced = str((refer_to.get("destination_channel") or {}).get("id") or "")
        other_call = self.calls.owner.get(replaced)
        mine = _bridged_party(call, transferer)
        theirs = _bridged_party(other_call, replaced) if other_call is not None else None
        if mine is None or theirs is None or other_call is None or other_call is call:
            log.info("call %s: attended transfer by %s refused: the calls are not both talks vpbx holds",
                     call.call_id, transferer)
            return False
        (first, first_kept), (second, second_kept) = mine, theirs
        login = endpoint_of(str((referred_by.get("source_channel") or {}).get("name") or "")) or transferer
        target = _target_of(other_call, second_kept)
        caller = _caller_of(call, first_kept)
        log.info("call %s: %s joins %s with %s (attended transfer)", call.call_id, login, first, second)
        await self.ari.transfer_progress(transferer, ANSWERED)
        await self._hand_over(other_call, second_kept, second, by=login, to=caller, queue=True)
        await self._hand_over(call, first_kept, first, by=login, to=target.dest)
        bridge_id = f"{first}-t{second}"
        await self.ari.create_bridge("mixing", bridge_id=bridge_id)
        await self.ari.add_channel(bridge_id, [first, second], inhibit_connected_line_updates=True)
        assert call.number is not None
        now = time.time()
        resolved = Resolved(call.number, caller, None, call.state.flow if call.state else None)
        start = CallStart(channel_id=first, caller=caller, direction="inbound", exten=call.number.number, login="",
                          answered=True)
        talking = Talking(bridge_id, dm.Leg(second, target, status="answered"), now, now)
        self.tasks.start_handover(start, resolved, Handover(call.call_id, login, target.dest), talking=talking)
        return True

    # ---- both ----------------------------------------------------------------------------------------------------
    async def _hand_over(self, call: Call, kept: str, channel: str, *, by: str, to: str, queue: bool = False) -> None:
        """`call` gives up `channel` (its party `kept`: CALLER or the bridged leg): the call's own bookkeeping lets
        go of it first (its cleanup must not hang it up), then the model ends the call (HandedOver: the transferer
        is hung up). `queue`: `call` is another call's task (its own loop runs the model step)."""
        if kept == dm.CALLER:
            call.caller_gone = True
        else:
            call.legs.discard(channel)
        if self.calls.owner.get(channel) is call:
            self.calls.owner.pop(channel, None)
        call_id = call.call_id
        self.tasks.store.write(lambda st: st.calls.note_transfer(call_id, transferred_by=by, transferred_to=to),
                               f"call {call_id}: transfer note")
        with contextlib.suppress(AriError):
            await self.ari.stop_moh(channel)            # it may have been on hold while the transfer was set up
        if call.bridge_id:
            with contextlib.suppress(AriError):
                await self.ari.remove_channel(call.bridge_id, channel)
        if queue:
            call.queue.put_nowait(dm.HandedOver(kept))
            return
        await self.tasks.apply(call, dm.HandedOver(kept))


def _bridged_party(call: Call | None, transferer: str) -> tuple[str, str] | None:
    """(the channel, the model's party name) of the other side of a talk `transferer` is in; None if `call` is not
    a talk of `transferer`'s."""
    state = call.state if call is not None else None
    if call is None or state is None or state.phase != "bridged" or state.bridged_leg is None:
        return None
    if transferer == state.bridged_leg:
        return call.channel, dm.CALLER
    if transferer == call.channel:
        return state.bridged_leg, state.bridged_leg
    return None


def _caller_of(call: Call, party: str) -> str:
    """The number (or login) a party of `call` is known by: the caller as recorded, a leg by its destination."""
    if party == dm.CALLER:
        return call.caller
    return _target_of(call, party).value


def _target_of(call: Call, party: str) -> dm.Target:
    """A party of `call` as a leg destination: a leg's own target, the caller as tel: or sip: (a login)."""
    state = call.state
    leg = state.leg(party) if state is not None and party != dm.CALLER else None
    if leg is not None:
        return leg.target
    caller = call.caller
    return dm.Target("tel", caller) if caller.startswith("+") else dm.Target("sip", caller or "anonymous")


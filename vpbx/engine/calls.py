"""Calls: each call's edge-side bookkeeping (`Call`), the registry of live calls and their channels (`Calls`), and the
per-call task (`CallTasks.run`).

Rule: one asyncio task per call takes the call's events from its queue in arrival order, translates them
(vpbx.engine.events), steps the model (vpbx.dialplan) and has the actions carried out (vpbx.engine.actions). Every
decision is the model's: whether and where an outbound call goes (vpbx.dialplan.outbound), what a call whose number is
unknown or whose flow does not load hears (reject_unknown / reject_broken), which blocklist rule refuses a caller
(vpbx.domain.blocklist) and what the caller hears (vpbx.dialplan.blocklist), ringing, the channel limit. Storage goes
through the StoreWorker: reads awaited off the loop, writes queued and never awaited on the call's path. An exception
inside a call is logged and ends that call cleanly (caller and legs hung up); a cancelled task (the engine stopping)
leaves the call up in Asterisk for the next engine to adopt (`Call.left_for_adoption`).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vpbx.asterisk.ari import AriClient, AriError
from vpbx.billing.outbound import OutboundRate
from vpbx.billing.prepaid import Payer
from vpbx.config import Config
from vpbx.dialplan import machine
from vpbx.dialplan import model as dm
from vpbx.dialplan.blocklist import BLOCKED_NODE, DISPOSITION_BLOCKED, blocked_flow, reject_blocked
from vpbx.dialplan.outbound import (
    NUMBER,
    Colleague,
    Internal,
    Outbound,
    Refused,
    Usage,
    admit,
    colleague_call,
    decide,
    dialled_kind,
    dialled_number,
    no_credit_flow,
    trunk_for,
)
from vpbx.domain.blocklist import BlockRule
from vpbx.domain.destinations import try_parse
from vpbx.domain.errors import NotFoundError, VpbxError
from vpbx.domain.records import Number, SipAccount
from vpbx.domain.timestamps import local_day_start, utc_now, utc_now_iso
from vpbx.engine.events import CallStart, asterisk_time, translate
from vpbx.engine.metering import Metering
from vpbx.engine.store_worker import StoreWorker
from vpbx.services import charging, recordings
from vpbx.services.flows import load_flow
from vpbx.services.lifecycle import charge_call
from vpbx.services.recordings import recording_name

if TYPE_CHECKING:
    from vpbx.engine.actions import ActionRunner
    from vpbx.storage.store import Store

log = logging.getLogger(__name__)
call_log = logging.getLogger("vpbx.calls")

CLEANUP_TIMEOUT_S = 5.0
RECORDING_FETCH_TRIES = 10          # a bridge recording is fetched after its call: tries, one pause before each
RECORDING_FETCH_PAUSE_S = 0.3


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass
class Call:
    """One call's edge-side bookkeeping: the queue its events arrive on and what must be cleaned up."""

    call_id: str                              # the call record's id: the caller channel's id, unless the call took
                                              # over a party handed over by a transfer (f"{channel}-x{n}")
    caller: str                               # as the call record names it
    answered: bool = False                    # the caller's channel is up
    number: Number | None = None              # the number whose flow runs (None: unknown / refused)
    outbound: Outbound | None = None          # the outbound decision, when the call goes out through a trunk
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)   # ARI event dicts, or model events
    legs: set[str] = field(default_factory=set)
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    bridge_id: str | None = None
    caller_gone: bool = False
    state: dm.CallState | None = None
    left_for_adoption: bool = False           # the engine stopped: the call stays up for the next engine to adopt
    task: asyncio.Task[None] | None = None
    channel: str = ""                         # the caller's channel ("": call_id)
    recording: str | None = None              # the bridge recording Asterisk makes of the call (its stored name)
    payer: Payer | None = None                # who pays the call's legs to external numbers (prepaid control)
    forward_as: Outbound | None = None        # a colleague's forward to a mobile: how its tel: leg goes out

    def __post_init__(self) -> None:
        if not self.channel:
            self.channel = self.call_id


class Calls:
    """Live calls by id, the channel (caller or leg) -> call map that routes events, calls in progress per number,
    and the legs waiting to enter the Stasis app."""

    def __init__(self) -> None:
        self.by_id: dict[str, Call] = {}
        self.owner: dict[str, Call] = {}
        self.active: dict[str, int] = {}
        self.outbound_active: dict[str, int] = {}     # outbound calls in progress per SIP account (the guards')
        self._leg_started: dict[str, asyncio.Future[None]] = {}

    def add(self, call: Call) -> None:
        self.by_id[call.call_id] = call
        self.owner[call.channel] = call

    def add_leg(self, call: Call, leg_id: str) -> None:
        call.legs.add(leg_id)
        self.owner[leg_id] = call

    def drop_leg(self, call: Call, leg_id: str) -> None:
        call.legs.discard(leg_id)
        self.owner.pop(leg_id, None)

    def drop(self, call: Call) -> None:
        for leg in call.legs:
            if self.owner.get(leg) is call:
                self.owner.pop(leg, None)
        if self.owner.get(call.channel) is call:
            self.owner.pop(call.channel, None)
        self.by_id.pop(call.call_id, None)

    def expect_leg_start(self, leg_id: str) -> asyncio.Future[None]:
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._leg_started[leg_id] = started
        return started

    def forget_leg_start(self, leg_id: str) -> None:
        self._leg_started.pop(leg_id, None)

    def leg_started(self, leg_id: str) -> None:
        waiter = self._leg_started.pop(leg_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def count_in(self, number: str) -> None:
        self.active[number] = self.active.get(number, 0) + 1

    def count_out(self, number: str) -> None:
        self.active[number] = max(0, self.active.get(number, 1) - 1)

    def count_outbound_in(self, login: str) -> None:
        self.outbound_active[login] = self.outbound_active.get(login, 0) + 1

    def count_outbound_out(self, login: str) -> None:
        left = self.outbound_active.get(login, 1) - 1
        if left > 0:
            self.outbound_active[login] = left
        else:
            self.outbound_active.pop(login, None)


@dataclass(frozen=True)
class Resolved:
    """What the store says about a new call: the number whose flow runs and the flow (None: reject)."""

    number: Number | None
    caller: str
    outbound: Outbound | None = None
    flow: dm.Flow | None = None
    flow_error: str | None = None     # the number's flow does not load (why)
    refused: Refused | None = None    # an outbound call the rules refuse (why, which rule)
    account: SipAccount | None = None  # the SIP account placing an outbound call
    seconds_today: int = 0            # ... and its outbound calls' billed seconds today (the daily cap's)
    blocked: BlockRule | None = None  # the blocklist rule refusing this caller (vpbx.domain.blocklist)
    payer: Payer | None = None        # who pays its legs to external numbers (vpbx.services.charging)
    forward_as: Outbound | None = None  # a colleague call's forward to a mobile, as the callee's outbound call


def resolve(store: Store, start: CallStart, default_trunk: str | None) -> Resolved:
    """Runs on a reader thread: load the records a new call needs and let the model decide (vpbx.dialplan.outbound).
    A login or an extension a SIP account dialled is a call to a colleague (`colleague_call`: no blocklist, no guard);
    so is a call adopted after a restart whose record names a SIP account (`sip:LOGIN`, vpbx.engine.recovery)."""
    adopted = try_parse(start.exten) if start.direction == "inbound" and start.exten.startswith("sip:") else None
    to_colleague = adopted is not None or (start.direction == "outbound" and dialled_kind(start.exten) != NUMBER)
    dest = dialled_number(start.exten) if start.exten and not to_colleague else ""
    number = store.numbers.find(dest) if dest else None
    caller = start.caller
    outbound: Outbound | None = None
    if to_colleague:
        callee = store.sip_accounts.find_dialled(adopted.value if adopted is not None else start.exten)
        callee_own = store.numbers.find(callee.caller_id) if callee is not None and callee.caller_id else None
        try:
            account = store.sip_accounts.get(start.login) if start.login else None
        except NotFoundError:
            account = None
        decision: Colleague | Internal | Outbound | Refused
        if adopted is None:
            decision = decide(None, "", account, None, default_trunk, exten=start.exten, callee=callee,
                              callee_own=callee_own)
        elif callee is not None:      # decided when it was placed: it goes on
            decision = colleague_call(callee, callee_own, default_trunk)
        else:
            decision = Refused(f"SIP account {adopted.value} is gone")
        if not isinstance(decision, Colleague):
            log.info("call %s to colleague %s refused: %s", start.channel_id, start.exten,
                     decision.reason if isinstance(decision, Refused) else decision)
            return Resolved(None, caller)
        if decision.problem is not None:
            log.warning("call %s to %s: %s", start.channel_id, decision.number.number, decision.problem)
        try:
            flow = load_flow(store, decision.number, sip_account=account)    # either party may ask for recording
        except VpbxError as exc:
            return Resolved(decision.number, caller, flow_error=str(exc))
        forward = decision.forward_as      # the callee's forward to a mobile is its own outbound call: it pays
        payer = _account_payer(store, decision.callee, callee_own, forward) if forward is not None else None
        return Resolved(decision.number, caller, flow=flow, payer=payer, forward_as=forward)
    if start.direction == "outbound":
        try:
            account = store.sip_accounts.get(start.login)
        except NotFoundError:
            account = None
        own = store.numbers.find(account.caller_id) if account is not None and account.caller_id else None
        decision = decide(number, dest, account, own, default_trunk)
        if isinstance(decision, Refused):
            return Resolved(None, start.login, refused=decision, account=account)
        if isinstance(decision, Outbound):
            number, caller, outbound = decision.number, decision.caller, decision
            assert account is not None
            used = store.calls.outbound_seconds(account.login, local_day_start(utc_now())) \
                if account.daily_minutes is not None else 0
            try:
                flow = load_flow(store, number, sip_account=account)     # the account may ask for recording
            except VpbxError as exc:
                return Resolved(number, caller, outbound, flow_error=str(exc))
            payer = _account_payer(store, account, own, outbound)
            return Resolved(number, caller, outbound, flow, account=account, seconds_today=used, payer=payer)
        else:
            assert isinstance(decision, Internal)
            number = decision.number
    if number is None:
        return Resolved(None, caller)
    blocked = store.blocklist.for_call(caller, number.number, number.account)    # one indexed query
    try:
        flow = load_flow(store, number)
    except VpbxError as exc:
        return Resolved(number, caller, outbound, flow_error=str(exc), blocked=blocked)
    payer = _forward_payer(store, number, flow, default_trunk) if number.account else None
    return Resolved(number, caller, outbound, flow, blocked=blocked, payer=payer)


def _account_payer(store: Store, account: SipAccount, own: Number | None, outbound: Outbound) -> Payer | None:
    """Who pays SIP account `account`'s outbound call (None: nobody, the call is not rated), with the rate of its
    destination (None when no outbound rate matches it: the call is refused, see CallTasks.admit)."""
    paying = charging.payer_for_account_call(store, account, outbound.trunk)
    if paying is None:
        return None
    credit_number = own.number if own is not None else None
    return Payer(paying, credit_number, charging.money_of(store, paying, credit_number),
                 charging.outbound_rate(store, outbound.dest))


def _forward_payer(store: Store, number: Number, flow: dm.Flow, default_trunk: str | None) -> Payer | None:
    """Who pays the legs to external numbers (tel: targets) that `number`'s flow may dial: its owner, unless the
    number is on trial or the trunk is the owner's own. None when the flow dials no tel: target."""
    if not any(t.kind == "tel" for node in flow.nodes.values() for t in getattr(node, "targets", ())):
        return None
    trunk = trunk_for(number, default_trunk)
    paying = charging.payer_for_forward(store, number, trunk) if trunk else None
    if paying is None:
        return None
    return Payer(paying, number.number, charging.money_of(store, paying, number.number))


class CallTasks:
    """Starts and runs the per-call tasks."""

    def __init__(self, cfg: Config, ari: AriClient, store: StoreWorker, calls: Calls, actions: ActionRunner,
                 metering: Metering | None = None) -> None:
        self.cfg = cfg
        self.ari = ari
        self.store = store
        self.calls = calls
        self.actions = actions
        self.metering = metering if metering is not None else Metering(ari, cfg.billing.credit_warning_seconds)
        self._background: set[asyncio.Task[None]] = set()
        # a phone's REFER on one of a call's channels (vpbx.engine.transfers sets it)
        self.on_transfer: Callable[[Call, dict[str, Any]], Awaitable[None]] | None = None

    def start(self, start: CallStart, adopt_at: str | None = None, restarts: int = 0,
              talking: Talking | None = None, call_id: str | None = None) -> Call:
        """Register the call (its events queue up from now on) and start its task. `talking`: an adopted call that
        is bridged (its leg's events are routed to it from now on too); `call_id`: an adopted call's record, when
        it is not the channel's id (a party handed over by a transfer)."""
        call = Call(call_id=call_id or start.channel_id, channel=start.channel_id, caller=start.caller,
                    answered=start.answered)
        self.calls.add(call)
        if talking is not None:
            call.bridge_id = talking.bridge_id
            self.calls.add_leg(call, talking.leg.leg_id)
        call.task = asyncio.create_task(self.run(call, start, adopt_at, restarts, talking))
        return call

    def start_handover(self, start: CallStart, resolved: Resolved, handover: Handover,
                       talking: Talking | None = None) -> Call:
        """A party handed over by a transfer (`start.channel_id`, up already) starts a call of its own, with its own
        record: to the flow `resolved` (admitted already), or — `talking` — bridged at once (attended transfer)."""
        call = Call(call_id=f"{start.channel_id}-x{uuid.uuid4().hex[:8]}", channel=start.channel_id,
                    caller=resolved.caller, answered=True)
        self.calls.add(call)
        if talking is not None:
            call.bridge_id = talking.bridge_id
            self.calls.add_leg(call, talking.leg.leg_id)
        call.task = asyncio.create_task(self.run(call, start, None, 0, talking, resolved=resolved, handover=handover))
        return call

    def admit(self, resolved: Resolved, start: CallStart, adopted: bool = False) -> Resolved:
        """The usage guards, judged on the loop, where the count of calls in progress is exact (an adopted call went
        out before the restart: it is counted, not judged again). Admitted: counted for its SIP account."""
        if resolved.outbound is None or resolved.account is None or resolved.flow is None:
            return resolved
        usage = Usage(self.calls.outbound_active.get(resolved.account.login, 0), resolved.seconds_today)
        admitted = resolved.outbound if adopted else admit(resolved.outbound, resolved.account, usage)
        if not isinstance(admitted, Refused) and not adopted and resolved.payer is not None:
            admitted = self._hold_first_interval(admitted, resolved.payer, start)
        if isinstance(admitted, Refused) and admitted.rule == "credit":     # the caller hears why (no_credit_flow)
            self.calls.count_outbound_in(resolved.outbound.login)
            return Resolved(resolved.number, start.login, resolved.outbound, refused=admitted,
                            account=resolved.account)
        if isinstance(admitted, Refused):
            return Resolved(None, start.login, refused=admitted, account=resolved.account)
        self.calls.count_outbound_in(admitted.login)
        return replace(resolved, outbound=admitted)

    def _hold_first_interval(self, outbound: Outbound, payer: Payer, start: CallStart) -> Outbound | Refused:
        """Prepaid control before anything is dialled: the destination must have a rate and the payer's money must
        pay its first interval, which is held for the call (vpbx.billing.prepaid)."""
        if payer.rate is None:
            return Refused(f"{outbound.login} may not call {outbound.dest}: no outbound rate matches it, so it cannot "
                           f"be charged to account {payer.account} (add its prefix with "
                           f"`vpbx rates import --outbound FILE`)", rule="rate")
        if not self.metering.hold(start.channel_id, start.channel_id, payer, payer.rate, outbound.dest):
            return Refused(f"{outbound.login} may not call {outbound.dest}: account {payer.account} cannot pay its "
                           f"first {payer.rate.initial} s (`vpbx account topup {payer.account} AMOUNT`)",
                           rule="credit")
        return outbound

    async def run(self, call: Call, start: CallStart, adopt_at: str | None, restarts: int,
                  talking: Talking | None = None, resolved: Resolved | None = None,
                  handover: Handover | None = None) -> None:
        adopted = adopt_at is not None or restarts > 0
        try:
            if resolved is None:
                resolved = await self.store.read(lambda st: resolve(st, start, self.cfg.default_trunk))
                resolved = self.admit(resolved, start, adopted)
            call.number, call.caller, call.outbound = resolved.number, resolved.caller, resolved.outbound
            call.payer, call.forward_as = resolved.payer, resolved.forward_as
            if resolved.refused is not None:
                await self._refuse(call, start, resolved.refused)
                if resolved.refused.rule != "credit" or resolved.number is None:
                    return
                resolved = replace(resolved, flow=no_credit_flow(resolved.number, self.cfg.billing.no_credit_prompt),
                                   payer=None)
                call.payer = None
            if resolved.blocked is not None and handover is None:
                blocked = await self._block(call, resolved, adopt_at if adopted else None)
                if blocked is None:
                    return
                resolved = blocked
            if resolved.number is None or resolved.flow is None:
                if resolved.flow_error is not None:
                    log.error("call %s to %s refused: flow does not load (%s)", call.call_id,
                              getattr(resolved.number, "number", None), resolved.flow_error)
                    await self.actions.execute(call, machine.reject_broken())
                else:
                    await self.actions.execute(call, machine.reject_unknown())
                return
            await self._run_flow(call, resolved.number, resolved.flow, adopted, adopt_at, restarts, talking, handover)
        except asyncio.CancelledError:
            # The engine is stopping: leave the call up for the next engine to adopt (vpbx.engine.recovery).
            call.left_for_adoption = True
            raise
        except Exception:
            log.exception("call %s failed; hanging it up", call.call_id)
        finally:
            await self.cleanup(call)

    async def _block(self, call: Call, resolved: Resolved, adopted_at: str | None) -> Resolved | None:
        """A caller the blocklist refuses: logged, counted for its rule, and either refused before answer (cause 21,
        SIP 403; the call record is written at once, disposition "blocked") or, when the rule has a prompt, given the
        one-node flow that plays it and hangs up (returned: the call runs it, with its record). An adopted call
        (`adopted_at`: where it was) was judged when it arrived: it goes on, and one that was hearing a block prompt
        hears it (or goodbye) again."""
        rule, number = resolved.blocked, resolved.number
        assert rule is not None and number is not None
        if adopted_at is not None:
            return resolved if adopted_at != BLOCKED_NODE else \
                replace(resolved, flow=blocked_flow(number, rule.prompt or dm.PROMPT_GOODBYE))
        log.info("call %s from %r to %s blocked by rule %d (%s %s): %s", call.call_id, call.caller, number.number,
                 rule.id, rule.caller_label, rule.where,
                 f"prompt {rule.prompt}, then hang-up" if rule.prompt else "refused before answer (403)")
        self.store.write(_note_block(call.call_id, number.number, call.caller, rule.id, utc_now_iso(),
                                     refused=rule.prompt is None), f"call {call.call_id}: blocked")
        if rule.prompt is not None:
            return replace(resolved, flow=blocked_flow(number, rule.prompt), flow_error=None)
        await self.actions.execute(call, reject_blocked())
        return None

    async def _refuse(self, call: Call, start: CallStart, refused: Refused) -> None:
        """An outbound call the rules refuse: logged, counted for the account (`vpbx sip show`), rejected before
        anything is dialled (403 for a toll-fraud guard, 404 when there is no way out)."""
        dest = dialled_number(start.exten) if start.exten else ""
        if refused.rule == "route":
            log.info("outbound call %s to %s refused: %s", call.call_id, dest, refused.reason)
        else:
            log.warning("outbound call %s to %s refused by the %s guard: %s", call.call_id, dest, refused.rule,
                        refused.reason)
        if start.login:
            login, rule, reason = start.login, refused.rule, refused.reason
            self.store.write(lambda st: st.calls.add_refusal(login, dest, rule, reason),
                             f"call {call.call_id}: outbound refusal")
        if refused.rule == "credit" and call.number is not None:
            return          # the caller hears why (no_credit_flow), then the call is hung up
        await self.actions.execute(call, machine.reject_unknown() if refused.rule == "route"
                                   else machine.reject_forbidden())

    async def _run_flow(self, call: Call, number: Number, flow: dm.Flow, adopted: bool, adopt_at: str | None,
                        restarts: int, talking: Talking | None = None, handover: Handover | None = None) -> None:
        call_id = call.call_id
        now = time.time()
        direction = "outbound" if call.outbound else "inbound"
        login = call.outbound.login if call.outbound else None
        if talking is not None:
            state, actions = machine.adopt_talking(flow, call_id, call.caller, talking.leg, talking.answered_at,
                                                   talking.connected_at, now=now, restart=restarts)
            if flow.record and handover is None:    # Asterisk went on recording the bridge while no engine watched
                call.recording = recording_name(call_id)
            record: Callable[[Store], None] = _note_node(call_id, state.node, restarts)
            if handover is not None:
                record = _add_record(call_id, number.number, call.caller, direction, iso(now), login, handover)
        elif handover is not None:
            state, actions = machine.start(flow, call_id, call.caller, self.calls.active.get(number.number, 0),
                                           now=now, answered=True)
            record = _add_record(call_id, number.number, call.caller, direction, iso(now), login, handover)
        elif adopted:
            state, actions = machine.adopt(flow, call_id, call.caller, call.answered, now=now, restart=restarts,
                                           at=adopt_at)
            record = _note_node(call_id, state.node, restarts)
        else:
            state, actions = machine.start(flow, call_id, call.caller, self.calls.active.get(number.number, 0),
                                           now=now)
            record = _add_record(call_id, number.number, call.caller, direction, iso(now), login)
        self.calls.count_in(number.number)
        call.state = state
        try:
            await self.actions.execute(call, actions)    # the caller is answered first: the record waits its turn
        finally:
            # queued before anything else of the call's (node notes, the closing update in cleanup), whatever happens
            self.store.write(record, f"call {call_id}: " + ("adoption note" if adopted else "record start"))
        log_step(call, None, actions, None)
        last_node = state.node
        while not call.state.finished:
            raw = await call.queue.get()
            if isinstance(raw, dict) and raw.get("type") == "ChannelTransfer":
                if self.on_transfer is not None:
                    await self.on_transfer(call, raw)
                continue
            arrived = asterisk_time(raw) if isinstance(raw, dict) else None
            for event in self.model_events(call, raw):
                state, actions = machine.step(call.state, event, now=time.time())
                if state is call.state:
                    continue
                before = call.state.phase
                call.state = state
                await self.actions.execute(call, actions)
                log_step(call, event, actions, arrived)
                if state.phase == "bridged" and before != "bridged":
                    self.store.write(_note_talk(call_id, state, call.bridge_id), f"call {call_id}: talk note")
                    self._metered(call, state)
                if state.node != last_node:
                    last_node = state.node
                    self.store.write(_note_node(call_id, state.node), f"call {call_id}: node note")

    def _metered(self, call: Call, state: dm.CallState) -> None:
        """The call was bridged: a leg to an external number is metered from now (vpbx.engine.metering), and the
        call record names who pays it at which rate (a call whose engine dies is charged by `vpbx billing run`)."""
        if call.payer is None or state.bridged_leg is None:
            return
        meter = self.metering.connected(state.bridged_leg, call.bridge_id)
        if meter is None:
            return
        call_id, account, prefix = call.call_id, meter.payer.account, meter.rate.prefix
        self.store.write(lambda st: st.calls.note_payer(call_id, account, prefix), f"call {call_id}: payer note")

    async def apply(self, call: Call, event: dm.Event) -> None:
        """Step `call`'s model with an event the edge made itself, from within the call's own task."""
        assert call.state is not None
        state, actions = machine.step(call.state, event, now=time.time())
        if state is call.state:
            return
        call.state = state
        await self.actions.execute(call, actions)
        log_step(call, event, actions, None)

    def model_events(self, call: Call, raw: Any) -> list[dm.Event]:
        """An item of the call's queue -> model events, keeping the call's bookkeeping (caller gone, legs left)."""
        if not isinstance(raw, dict):   # a model event the edge queued itself (timer, failed request)
            return [raw]
        events = []
        for event in translate(raw, call.channel, call.legs, call.call_id):
            if isinstance(event, dm.CallerHungUp):
                if call.caller_gone:
                    continue
                call.caller_gone = True
            elif isinstance(event, dm.LegHungUp):
                self.calls.drop_leg(call, event.leg_id)
            events.append(event)
        return events

    async def cleanup(self, call: Call) -> None:
        """Always runs when a call's task ends: nothing of the call may stay up in Asterisk."""
        for handle in call.timers.values():
            handle.cancel()
        if call.left_for_adoption:
            self.calls.drop(call)
            return
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT_S):
                for leg in list(call.legs):
                    with contextlib.suppress(AriError):
                        await self.ari.hangup(leg, reason="normal")
                if not call.caller_gone:
                    with contextlib.suppress(AriError):
                        await self.ari.hangup(call.channel, reason="normal")
                if call.bridge_id:
                    with contextlib.suppress(AriError):
                        await self.ari.destroy_bridge(call.bridge_id)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("call %s: cleanup timed out", call.call_id)
        finally:
            self.write_record(call)
            self._release_holds(call)
            if call.recording is not None:
                self._keep_recording(call.call_id, call.recording)
            if call.number is not None and call.state is not None:
                self.calls.count_out(call.number.number)
            if call.outbound is not None:
                self.calls.count_outbound_out(call.outbound.login)
            self.calls.drop(call)

    def _keep_recording(self, call_id: str, name: str) -> None:
        """Fetch the call's bridge recording from Asterisk once its file is complete and keep it (after the call
        record, on the writer); Asterisk's copy is deleted only once vpbx holds the audio. In the background: the
        call's task is done."""
        task = asyncio.create_task(self._fetch_recording(call_id, name))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _fetch_recording(self, call_id: str, name: str) -> None:
        audio = b""
        for _ in range(RECORDING_FETCH_TRIES):      # the file is finished a moment after the bridge goes
            await asyncio.sleep(RECORDING_FETCH_PAUSE_S)
            try:
                audio = await self.ari.stored_file(name)
                break
            except AriError:
                continue
        if not audio:
            log.error("call %s: recording %s not found in Asterisk; nothing kept", call_id, name)
            return
        cfg, ari = self.cfg, self.ari

        def kept(_result: object) -> None:
            task = asyncio.create_task(ari.delete_stored(name))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        self.store.write(lambda st: recordings.keep(st, cfg, call_id, audio), f"call {call_id}: recording {name}",
                         on_done=kept)

    def _release_holds(self, call: Call) -> None:
        """Holds of legs that never talked go back to the wallet (the talking leg's was closed by write_record)."""
        for leg in self.metering.legs_of(call.call_id):
            self.metering.close(leg, 0)

    def _charge(self, call: Call, billsec: int) -> tuple[Payer, OutboundRate, int] | None:
        """Close the meter of the leg the caller talked to: (payer, rate, billed seconds) to charge, or None."""
        state = call.state
        if state is None or state.bridged_leg is None:
            return None
        closed = self.metering.close(state.bridged_leg, billsec)
        if closed is None or closed[0].talk_started is None:
            return None
        meter, used, _cost = closed
        return meter.payer, meter.rate, used

    def write_record(self, call: Call) -> None:
        """Queue the call record's final update (and, for a toll-free number, the call's charge)."""
        state, number = call.state, call.number
        if state is None or number is None:
            return
        call_id = call.call_id
        ended = state.ended_at or time.time()
        connected = state.connected_at or state.answered_at
        billsec = max(0, round(ended - connected)) if connected else 0
        values = {"answered_at": iso(state.answered_at), "ended_at": iso(ended), "reached": state.reached,
                  "disposition": state.disposition or ("missed" if not state.finished else "failed"),
                  "billsec": billsec,
                  "voicemail": int(bool(state.voicemail)), "node": state.node}
        started_here = state.started_at
        tollfree = number.type == "tollfree"     # only toll-free calls are rated: spare every other call two reads
        cfg = self.cfg
        charge = self._charge(call, billsec)

        def finish(st: Store) -> None:
            row = st.calls.get(call_id)
            started = started_here
            if row is not None and row.get("started_at"):     # an adopted call started before the restart
                started = datetime.fromisoformat(row["started_at"]).timestamp()
            st.calls.finish(call_id, duration=max(0, round(ended - started)), **values)
            if charge is not None:
                payer, rate, seconds = charge
                try:        # prepaid: the billed seconds, capped at what the call was granted (vpbx.billing.prepaid)
                    cost = charging.charge_outbound(st, call_id, payer.account, payer.credit_number, rate, seconds)
                    log.info("call %s to %s charged %s to %s: %d s at prefix %s", call_id, state.reached, cost,
                             payer.account, seconds, rate.prefix)
                except Exception:
                    log.exception("call %s: not charged (the record names its payer; `vpbx billing run` charges it)",
                                  call_id)
            if not tollfree:
                return
            try:  # a toll-free number's owner pays for inbound calls (rated by the caller's prefix, once)
                cost = charge_call(st, cfg, call_id)
                if cost:
                    log.info("call %s to %s charged %d minor units", call_id, number.number, cost)
            except Exception:
                log.exception("call %s: not charged (the call record is kept; the next `vpbx billing run` rates it)",
                              call_id)

        metering = self.metering
        self.store.write(finish, f"call {call_id}: call record",
                         on_done=(lambda _r: metering.charged(charge[0].account)) if charge is not None else None)


@dataclass(frozen=True)
class Handover:
    """How a call handed over by a transfer began: the call it came from, who transferred, to what."""

    from_call: str
    by: str
    to: str


def _add_record(call_id: str, number: str, caller: str, direction: str, started_at: str | None,
                sip_account: str | None = None, handover: Handover | None = None) -> Callable[[Store], None]:
    def add(st: Store) -> None:
        st.calls.add(call_id, number, caller, direction=direction, started_at=started_at, sip_account=sip_account)
        if handover is not None:
            st.calls.note_transfer(call_id, transferred_from=handover.from_call, transferred_by=handover.by)

    return add


def _note_block(call_id: str, number: str, caller: str, rule_id: int, at: str,
                refused: bool) -> Callable[[Store], None]:
    """Count the refusal for its rule and open the call's record at the block node (a restarted engine finds a
    caller hearing the rule's prompt there; the flow's own record start then adds nothing); `refused` before
    answer: the record is closed at once too, disposition "blocked"."""
    def note(st: Store) -> None:
        with st.write():
            st.blocklist.count(rule_id, at)
            st.calls.add(call_id, number, caller, started_at=at)
            st.calls.note_node(call_id, BLOCKED_NODE)
            if refused:
                st.calls.finish(call_id, ended_at=at, disposition=DISPOSITION_BLOCKED)

    return note


@dataclass(frozen=True)
class Talking:
    """An adopted call found bridged with its leg (vpbx.engine.recovery): what the record said when the bridge
    formed."""

    bridge_id: str
    leg: dm.Leg
    answered_at: float
    connected_at: float


def _note_talk(call_id: str, state: dm.CallState, bridge_id: str | None) -> Callable[[Store], None]:
    def precise(ts: float | None) -> str | None:     # milliseconds: an adopted call's billsec stays within 1 s
        return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")

    facts = {"answered_at": precise(state.answered_at), "connected_at": precise(state.connected_at),
             "reached": state.reached,
             "bridged_leg": state.bridged_leg, "bridge_id": bridge_id}

    def note(st: Store) -> None:
        st.calls.note_talk(call_id, **facts)

    return note


def _note_node(call_id: str, node: str | None, restarts: int | None = None) -> Callable[[Store], None]:
    def note(st: Store) -> None:
        st.calls.note_node(call_id, node, restarts=restarts)

    return note


def log_step(call: Call, event: dm.Event | None, actions: list[dm.Action], arrived: float | None) -> None:
    """The call log line of one step, written once its actions are carried out. `acted_ms`: from Asterisk emitting the
    event (its timestamp) to the end of the actions it caused, when the event came from Asterisk."""
    state = call.state
    assert state is not None
    entry: dict[str, Any] = {
        "call_id": call.call_id, "number": getattr(call.number, "number", None), "node": state.node,
        "phase": state.phase, "event": type(event).__name__ if event is not None else "start",
        "actions": [type(a).__name__ for a in actions]}
    if arrived is not None:
        entry["acted_ms"] = round((time.time() - arrived) * 1000, 1)
    call_log.info(json.dumps(entry))

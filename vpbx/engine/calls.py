"""Calls: each call's edge-side bookkeeping (`Call`), the registry of live calls and their channels (`Calls`), and the
per-call task (`CallTasks.run`).

Rule: one asyncio task per call takes the call's events from its queue in arrival order, translates them
(vpbx.engine.events), steps the model (vpbx.dialplan) and has the actions carried out (vpbx.engine.actions). Every
decision is the model's: whether and where an outbound call goes (vpbx.dialplan.outbound), what a call whose number is
unknown or whose flow does not load hears (reject_unknown / reject_broken), ringing, the channel limit. Storage goes
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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vpbx.asterisk.ari import AriClient, AriError
from vpbx.config import Config
from vpbx.dialplan import machine
from vpbx.dialplan import model as dm
from vpbx.dialplan.outbound import Internal, Outbound, Refused, Usage, admit, decide, dialled_number
from vpbx.domain.errors import NotFoundError, VpbxError
from vpbx.domain.records import Number, SipAccount
from vpbx.domain.timestamps import local_day_start, utc_now
from vpbx.engine.events import CallStart, asterisk_time, translate
from vpbx.engine.store_worker import StoreWorker
from vpbx.services.flows import load_flow
from vpbx.services.lifecycle import charge_call

if TYPE_CHECKING:
    from vpbx.engine.actions import ActionRunner
    from vpbx.storage.store import Store

log = logging.getLogger(__name__)
call_log = logging.getLogger("vpbx.calls")

CLEANUP_TIMEOUT_S = 5.0


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass
class Call:
    """One call's edge-side bookkeeping: the queue its events arrive on and what must be cleaned up."""

    call_id: str                              # the caller channel's id
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
        self.owner[call.call_id] = call

    def add_leg(self, call: Call, leg_id: str) -> None:
        call.legs.add(leg_id)
        self.owner[leg_id] = call

    def drop_leg(self, call: Call, leg_id: str) -> None:
        call.legs.discard(leg_id)
        self.owner.pop(leg_id, None)

    def drop(self, call: Call) -> None:
        for leg in call.legs:
            self.owner.pop(leg, None)
        self.owner.pop(call.call_id, None)
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


def resolve(store: Store, start: CallStart, default_trunk: str | None) -> Resolved:
    """Runs on a reader thread: load the records a new call needs and let the model decide (vpbx.dialplan.outbound)."""
    dest = dialled_number(start.exten) if start.exten else ""
    number = store.numbers.find(dest) if dest else None
    caller = start.caller
    outbound: Outbound | None = None
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
                flow = load_flow(store, number)
            except VpbxError as exc:
                return Resolved(number, caller, outbound, flow_error=str(exc))
            return Resolved(number, caller, outbound, flow, account=account, seconds_today=used)
        else:
            assert isinstance(decision, Internal)
            number = decision.number
    if number is None:
        return Resolved(None, caller)
    try:
        flow = load_flow(store, number)
    except VpbxError as exc:
        return Resolved(number, caller, outbound, flow_error=str(exc))
    return Resolved(number, caller, outbound, flow)


class CallTasks:
    """Starts and runs the per-call tasks."""

    def __init__(self, cfg: Config, ari: AriClient, store: StoreWorker, calls: Calls, actions: ActionRunner) -> None:
        self.cfg = cfg
        self.ari = ari
        self.store = store
        self.calls = calls
        self.actions = actions

    def start(self, start: CallStart, adopt_at: str | None = None, restarts: int = 0) -> Call:
        """Register the call (its events queue up from now on) and start its task."""
        call = Call(call_id=start.channel_id, caller=start.caller, answered=start.answered)
        self.calls.add(call)
        call.task = asyncio.create_task(self.run(call, start, adopt_at, restarts))
        return call

    async def run(self, call: Call, start: CallStart, adopt_at: str | None, restarts: int) -> None:
        adopted = adopt_at is not None or restarts > 0
        try:
            resolved = await self.store.read(lambda st: resolve(st, start, self.cfg.default_trunk))
            if resolved.outbound is not None and resolved.account is not None and resolved.flow is not None:
                # the usage guards are judged here, on the loop, where the count of calls in progress is exact
                # (an adopted call went out before the restart: it is counted, not judged again)
                usage = Usage(self.calls.outbound_active.get(resolved.account.login, 0), resolved.seconds_today)
                admitted = resolved.outbound if adopted else admit(resolved.outbound, resolved.account, usage)
                if isinstance(admitted, Refused):
                    resolved = Resolved(None, start.login, refused=admitted, account=resolved.account)
                else:
                    resolved = replace(resolved, outbound=admitted)
                    self.calls.count_outbound_in(admitted.login)
            call.number, call.caller, call.outbound = resolved.number, resolved.caller, resolved.outbound
            if resolved.refused is not None:
                await self._refuse(call, start, resolved.refused)
                return
            if resolved.number is None or resolved.flow is None:
                if resolved.flow_error is not None:
                    log.error("call %s to %s refused: flow does not load (%s)", call.call_id,
                              getattr(resolved.number, "number", None), resolved.flow_error)
                    await self.actions.execute(call, machine.reject_broken())
                else:
                    await self.actions.execute(call, machine.reject_unknown())
                return
            await self._run_flow(call, resolved.number, resolved.flow, adopted, adopt_at, restarts)
        except asyncio.CancelledError:
            # The engine is stopping: leave the call up for the next engine to adopt (vpbx.engine.recovery).
            call.left_for_adoption = True
            raise
        except Exception:
            log.exception("call %s failed; hanging it up", call.call_id)
        finally:
            await self.cleanup(call)

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
        await self.actions.execute(call, machine.reject_unknown() if refused.rule == "route"
                                   else machine.reject_forbidden())

    async def _run_flow(self, call: Call, number: Number, flow: dm.Flow, adopted: bool, adopt_at: str | None,
                        restarts: int) -> None:
        call_id = call.call_id
        now = time.time()
        if adopted:
            state, actions = machine.adopt(flow, call_id, call.caller, call.answered, now=now, restart=restarts,
                                           at=adopt_at)
            record: Callable[[Store], None] = _note_node(call_id, state.node, restarts)
        else:
            state, actions = machine.start(flow, call_id, call.caller, self.calls.active.get(number.number, 0),
                                           now=now)
            record = _add_record(call_id, number.number, call.caller, "outbound" if call.outbound else "inbound",
                                 iso(now), call.outbound.login if call.outbound else None)
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
            arrived = asterisk_time(raw) if isinstance(raw, dict) else None
            for event in self.model_events(call, raw):
                state, actions = machine.step(call.state, event, now=time.time())
                if state is call.state:
                    continue
                call.state = state
                await self.actions.execute(call, actions)
                log_step(call, event, actions, arrived)
                if state.node != last_node:
                    last_node = state.node
                    self.store.write(_note_node(call_id, state.node), f"call {call_id}: node note")

    def model_events(self, call: Call, raw: Any) -> list[dm.Event]:
        """An item of the call's queue -> model events, keeping the call's bookkeeping (caller gone, legs left)."""
        if not isinstance(raw, dict):   # a model event the edge queued itself (timer, failed request)
            return [raw]
        events = []
        for event in translate(raw, call.call_id, call.legs):
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
                        await self.ari.hangup(call.call_id, reason="normal")
                if call.bridge_id:
                    with contextlib.suppress(AriError):
                        await self.ari.destroy_bridge(call.bridge_id)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("call %s: cleanup timed out", call.call_id)
        finally:
            self.write_record(call)
            if call.number is not None and call.state is not None:
                self.calls.count_out(call.number.number)
            if call.outbound is not None:
                self.calls.count_outbound_out(call.outbound.login)
            self.calls.drop(call)

    def write_record(self, call: Call) -> None:
        """Queue the call record's final update (and, for a toll-free number, the call's charge)."""
        state, number = call.state, call.number
        if state is None or number is None:
            return
        call_id = call.call_id
        ended = state.ended_at or time.time()
        connected = state.connected_at or state.answered_at
        values = {"answered_at": iso(state.answered_at), "ended_at": iso(ended), "reached": state.reached,
                  "disposition": state.disposition or ("missed" if not state.finished else "failed"),
                  "billsec": max(0, round(ended - connected)) if connected else 0,
                  "voicemail": int(bool(state.voicemail)), "node": state.node}
        started_here = state.started_at
        tollfree = number.type == "tollfree"     # only toll-free calls are rated: spare every other call two reads
        cfg = self.cfg

        def finish(st: Store) -> None:
            row = st.calls.get(call_id)
            started = started_here
            if row is not None and row.get("started_at"):     # an adopted call started before the restart
                started = datetime.fromisoformat(row["started_at"]).timestamp()
            st.calls.finish(call_id, duration=max(0, round(ended - started)), **values)
            if not tollfree:
                return
            try:  # a toll-free number's owner pays for inbound calls (rated by the caller's prefix, once)
                cost = charge_call(st, cfg, call_id)
                if cost:
                    log.info("call %s to %s charged %d minor units", call_id, number.number, cost)
            except Exception:
                log.exception("call %s: not charged (the call record is kept; the next `vpbx billing run` rates it)",
                              call_id)

        self.store.write(finish, f"call {call_id}: call record")


def _add_record(call_id: str, number: str, caller: str, direction: str, started_at: str | None,
                sip_account: str | None = None) -> Callable[[Store], None]:
    def add(st: Store) -> None:
        st.calls.add(call_id, number, caller, direction=direction, started_at=started_at, sip_account=sip_account)

    return add


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

"""Exhaustive runs: every sample flow x every script; hang up at every point; every reached state x every event."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache

import pytest

from vpbx.dialplan import (
    Answer,
    Bridge,
    CallerHungUp,
    CallState,
    DeliverVoicemail,
    Dial,
    Dtmf,
    Event,
    Flow,
    ForwardNode,
    HandedOver,
    Hangup,
    HangupNode,
    Hold,
    IvrNode,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    Play,
    PlayAndHangupNode,
    PlaybackFinished,
    PlayNode,
    Record,
    RecordingFailed,
    RecordingFinished,
    Ring,
    StartTimer,
    TimerExpired,
    Unhold,
    VoicemailNode,
    start,
    step,
)
from vpbx.dialplan.model import CALLER, DISPOSITIONS, DTMF_DIGITS, LEG_FAIL_REASONS, PHASES, Action
from vpbx.dialplan.simulate import run
from vpbx.dialplan.testing import Ledger, sample_flows

ALL_DESTS = frozenset({"sip:alice", "sip:bob", "sip:carol", "tel:+380501112233", "uri:sip:desk@pbx.example.com:5070",
                       "uri:sip:x@example.com"})
SCRIPTS: list[tuple[str, frozenset[str], frozenset[str]]] = [
    ("", frozenset(), frozenset()),
    ("", ALL_DESTS, frozenset()),
    ("", frozenset(), ALL_DESTS),
    ("", frozenset({"sip:alice"}), frozenset({"sip:bob"})),
    ("1", frozenset(), frozenset()),
    ("1", ALL_DESTS, frozenset()),
    ("1", frozenset(), ALL_DESTS),
    ("2", frozenset({"sip:alice"}), frozenset({"sip:bob"})),
    ("2", ALL_DESTS, frozenset()),
    ("3", frozenset(), frozenset()),
    ("4", frozenset(), frozenset()),
    ("5101#", frozenset(), frozenset()),
    ("52000", frozenset({"sip:alice"}), frozenset()),
    ("599#0#", frozenset(), frozenset()),
    ("x7", frozenset(), frozenset()),
    ("777", frozenset(), frozenset()),
    ("9", frozenset(), frozenset()),
    ("0", frozenset(), frozenset()),
    ("102#", frozenset(), frozenset()),
    ("0#3", frozenset(), frozenset()),
]
QUIET_ON_HANGUP = (Answer, Ring, Play, StartTimer, Dial, Bridge, Record, Hangup)


@dataclass(frozen=True)
class Trace:
    name: str
    flow: Flow
    events: tuple[Event, ...]


@lru_cache(maxsize=1)
def traces() -> tuple[Trace, ...]:
    out: dict[tuple[str, tuple[Event, ...]], Trace] = {}
    for name, flow in sample_flows().items():
        for dtmf, no_answer, busy in SCRIPTS:
            steps = run(flow, "+15550001111", dtmf, no_answer, busy, call_id="c")
            assert steps[-1].state.finished, (name, dtmf)
            events = tuple(s.event for s in steps[1:] if s.event is not None)
            out.setdefault((name, events), Trace(name, flow, events))
    return tuple(out.values())


def replay(trace: Trace, k: int) -> tuple[CallState, Ledger]:
    ledger = Ledger()
    state, actions = start(trace.flow, "c", "+15550001111", 0)
    for a in actions:
        ledger.action(a)
    for event in trace.events[:k]:
        state = feed(state, event, ledger)[0]
    return state, ledger


def feed(state: CallState, event: Event, ledger: Ledger) -> tuple[CallState, list[Action]]:
    was_finished = state.finished
    ledger.event(event)
    new, actions = step(state, event)
    for a in actions:
        ledger.action(a)
    check(new, ledger)
    if was_finished:
        assert new is state and actions == []
    return new, actions


def check(state: CallState, ledger: Ledger) -> None:
    """State and ledger agree on what is live; a finished call holds nothing."""
    assert ledger.timers == ({state.timer_id} if state.timer_id else set())
    assert ledger.playbacks == ({state.playback_id} if state.playback_id else set())
    assert ledger.legs == {leg.leg_id for leg in state.live_legs}
    assert state.phase in PHASES
    if not state.finished:
        assert ledger.moh == {state.bridged_leg if p == CALLER else CALLER for p in state.holding}
    if state.phase != "bridged":
        assert state.holding == ()
    if state.phase == "bridged":
        assert [leg.leg_id for leg in state.live_legs] == [state.bridged_leg]
    elif state.phase != "forwarding":
        assert not state.live_legs, state.phase
    if state.finished:
        assert ledger.idle() and state.phase == "finished"
        assert state.disposition in DISPOSITIONS and state.ended_at is not None


def test_scripts_cover_every_node_type_and_phase() -> None:
    node_types: set[type] = set()
    phases: set[str] = set()
    dispositions: set[str | None] = set()
    for trace in traces():
        state, ledger = replay(trace, 0)
        seen = [state]
        for event in trace.events:
            state = feed(state, event, ledger)[0]
            seen.append(state)
        for s in seen:
            phases.add(s.phase)
            if s.node is not None:
                node_types.add(type(s.flow.node(s.node)))
        dispositions.add(state.disposition)
    assert node_types == {PlayNode, IvrNode, ForwardNode, VoicemailNode, PlayAndHangupNode, HangupNode}
    # vm_orphaned is reached only by hanging up mid-recording: the prefix test below covers it.
    assert phases == set(PHASES) - {"vm_orphaned"}
    assert {"answered", "missed", "voicemail", "failed"} <= dispositions
    assert len(traces()) > 60


def test_caller_hangs_up_at_every_point_of_every_run() -> None:
    orphaned = 0
    for trace in traces():
        for k in range(len(trace.events) + 1):
            state, ledger = replay(trace, k)
            if state.finished:
                continue
            state, actions = feed(state, CallerHungUp(), ledger)
            assert not any(isinstance(a, QUIET_ON_HANGUP) for a in actions), actions
            if state.awaiting_recording:
                orphaned += 1
                assert not state.finished and state.recording is not None
                state, actions = feed(state, RecordingFinished(state.recording, 3.0), ledger)
                assert actions == [DeliverVoicemail(actions[0].name, ("owner@example.com",), 3.0)]
                assert state.disposition == "voicemail"
            assert state.finished, (trace.name, k, state.phase)
            assert ledger.idle() and not state.live_legs and state.timer_id is None and state.playback_id is None
            for event in (CallerHungUp(), Dtmf("1"), LegAnswered("c-leg-1"), TimerExpired("c-t-1")):
                feed(state, event, ledger)
    assert orphaned > 0


def events_for(state: CallState) -> list[Event]:
    """Every event kind, with the state's live ids, every known leg, and stale/junk ids."""
    pb = [state.playback_id] if state.playback_id else []
    tm = [state.timer_id] if state.timer_id else []
    rec = [state.recording] if state.recording else []
    legs = [leg.leg_id for leg in state.legs] + ["stale-leg"]
    events: list[Event] = [PlaybackFinished(p) for p in [*pb, "stale-pb"]]
    events += [Dtmf(d) for d in [*sorted(DTMF_DIGITS), "x", "", "11"]]
    events += [TimerExpired(t) for t in [*tm, "stale-t"]]
    for leg in legs:
        events += [LegRinging(leg), LegAnswered(leg), LegHungUp(leg)]
        events += [LegFailed(leg, r) for r in (*LEG_FAIL_REASONS, "weird")]
    events += [CallerHungUp()]
    for party in [CALLER, *legs]:
        events += [Hold(party), Unhold(party), HandedOver(party)]
    for r in [*rec, "stale-rec"]:
        events += [RecordingFinished(r, 0.5), RecordingFinished(r, 30.0), RecordingFailed(r)]
    return events


def signature(name: str, s: CallState) -> tuple[object, ...]:
    return (name, s.node, s.phase, s.playback_id is None, s.timer_id is None, tuple(leg.status for leg in s.legs),
            bool(s.digits), s.failures, s.answered, s.recording is None, s.finished)


@pytest.mark.parametrize("name", sorted(sample_flows()))
def test_every_reached_state_against_every_event(name: str) -> None:
    seen: set[tuple[object, ...]] = set()
    pairs: set[tuple[str, type]] = set()
    for trace in (t for t in traces() if t.name == name):
        state, ledger = replay(trace, 0)
        states = [(state, copy.deepcopy(ledger))]
        for event in trace.events:
            state = feed(state, event, ledger)[0]
            states.append((state, copy.deepcopy(ledger)))
        # also the mid-recording hang-up state
        for s, led in list(states):
            if s.phase == "vm_recording":
                led = copy.deepcopy(led)
                states.append((feed(s, CallerHungUp(), led)[0], led))
        for s, led in states:
            sig = signature(name, s)
            if sig in seen:
                continue
            seen.add(sig)
            for event in events_for(s):
                pairs.add((s.phase, type(event)))
                new, actions = feed(s, event, copy.deepcopy(led))
                if "stale" in repr(event) or (isinstance(event, Dtmf) and event.digit not in DTMF_DIGITS):
                    assert new is s and actions == [], (s.phase, event)
                if s.finished:
                    assert new is s and actions == []
    assert seen

"""Hold and music on hold in the call state machine: every sequence of Hold/Unhold from both bridged parties, then
every way the call can end, with exact actions, checked against a Ledger of the music each party hears. No mocks."""
from __future__ import annotations

import itertools

import pytest

from vpbx.dialplan import (
    CallerHungUp,
    CallState,
    Dtmf,
    Event,
    HangupLeg,
    Hold,
    LegAnswered,
    LegHungUp,
    PlaybackFinished,
    StartMoh,
    StopMoh,
    Unhold,
    start,
    step,
)
from vpbx.dialplan.model import CALLER, MOH_CLASS, Action
from vpbx.dialplan.testing import Ledger, drive, sample_flow

LEG = "c-leg-1"


def bridged(flow_kind: str = "sip") -> tuple[CallState, Ledger]:
    """A call answered by its first leg: direct (sip:alice) or from an IVR (key 1 -> group sales, simultaneous)."""
    ledger = Ledger()
    if flow_kind == "sip":
        flow, events = sample_flow(route="sip:alice"), [LegAnswered(LEG)]
    else:
        flow, events = sample_flow(route="ivr:main"), [Dtmf("1"), LegAnswered(LEG)]
    state, actions = start(flow, "c", "+15550001111", 0)
    for a in actions:
        ledger.action(a)
    state, _ = drive(state, events, ledger)
    assert state.phase == "bridged" and state.bridged_leg == LEG
    return state, ledger


def other(party: str) -> str:
    return LEG if party == CALLER else CALLER


def hears_music(state: CallState) -> set[str]:
    return {other(p) for p in state.holding}


def feed(state: CallState, event: Event, ledger: Ledger) -> tuple[CallState, list[Action]]:
    ledger.event(event)
    new, actions = step(state, event)
    for a in actions:
        ledger.action(a)
    if not new.finished:
        assert ledger.moh == hears_music(new), (event, ledger.moh, new.holding)
    return new, actions


def test_a_held_caller_makes_the_leg_hear_music_and_resume_stops_it() -> None:
    state, ledger = bridged()
    state, actions = feed(state, Hold(CALLER), ledger)
    assert actions == [StartMoh(LEG, MOH_CLASS)] and state.holding == (CALLER,)
    state, actions = feed(state, Unhold(CALLER), ledger)
    assert actions == [StopMoh(LEG)] and state.holding == ()
    assert state.phase == "bridged" and not state.finished


def test_a_held_leg_makes_the_caller_hear_music() -> None:
    state, ledger = bridged("ivr")
    state, actions = feed(state, Hold(LEG), ledger)
    assert actions == [StartMoh(CALLER)]
    state, actions = feed(state, Unhold(LEG), ledger)
    assert actions == [StopMoh(CALLER)]


def test_repeated_or_unmatched_hold_events_are_ignored() -> None:
    state, ledger = bridged()
    same, actions = step(state, Unhold(CALLER))
    assert same is state and actions == []
    held, _ = feed(state, Hold(CALLER), ledger)
    again, actions = step(held, Hold(CALLER))
    assert again is held and actions == []
    for junk in (Hold("stale-leg"), Unhold("stale-leg"), Hold("c-leg-2"), Hold(""), Unhold(LEG)):
        same, actions = step(held, junk)
        assert same is held and actions == [], junk


@pytest.mark.parametrize("flow_kind", ["sip", "ivr"])
def test_every_hold_sequence_then_every_ending(flow_kind: str) -> None:
    """All sequences of up to 5 Hold/Unhold events from either party, then the caller or the leg hangs up: each party
    hears music exactly while the other holds, and the end leaves nothing playing."""
    base, base_ledger = bridged(flow_kind)
    alphabet = [Hold(CALLER), Unhold(CALLER), Hold(LEG), Unhold(LEG)]
    runs = 0
    for n in range(6):
        for seq in itertools.product(alphabet, repeat=n):
            state, ledger = base, Ledger(**{k: set(v) if isinstance(v, set) else v
                                           for k, v in vars(base_ledger).items()})
            for event in seq:
                state, _ = feed(state, event, ledger)
            for ending in (CallerHungUp(), LegHungUp(LEG)):
                end_ledger = Ledger(**{k: set(v) if isinstance(v, set) else v for k, v in vars(ledger).items()})
                done, actions = feed(state, ending, end_ledger)
                assert done.finished and done.holding == ()
                assert not any(isinstance(a, (StartMoh, StopMoh)) for a in actions), actions
                assert end_ledger.idle(), (seq, ending, end_ledger)
                if isinstance(ending, CallerHungUp):
                    assert actions == [HangupLeg(LEG, "normal")]
                runs += 1
    assert runs == 2 * sum(4 ** n for n in range(6))


def test_hold_outside_a_bridge_is_ignored() -> None:
    flow = sample_flow(route="ivr:main")
    state, _ = start(flow, "c", "+15550001111", 0)
    assert state.phase == "ivr_prompt"
    for event in (Hold(CALLER), Unhold(CALLER)):
        same, actions = step(state, event)
        assert same is state and actions == []
    state, _ = step(state, Dtmf("1"))          # group sales rings: forwarding
    assert state.phase == "forwarding"
    for event in (Hold(CALLER), Hold(LEG)):
        same, actions = step(state, event)
        assert same is state and actions == []


def test_hold_then_the_held_party_hears_prompts_never() -> None:
    """After the bridge ends the finished call ignores hold events (the edge may still deliver them)."""
    state, ledger = bridged()
    state, _ = feed(state, Hold(LEG), ledger)
    state, _ = feed(state, LegHungUp(LEG), ledger)
    assert state.finished
    for event in (Unhold(LEG), Hold(CALLER), PlaybackFinished("c-pb-1")):
        same, actions = step(state, event)
        assert same is state and actions == []

"""Random event sequences: step() never raises, state and the edge's ledger always agree, finished means silent."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpbx.dialplan import (
    CallerHungUp,
    CallState,
    Dtmf,
    Event,
    Hangup,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    PlaybackFinished,
    RecordingFailed,
    RecordingFinished,
    TimerExpired,
    start,
    step,
)
from vpbx.dialplan.model import DISPOSITIONS, DTMF_DIGITS, Action
from vpbx.dialplan.testing import Ledger, sample_flows

FLOWS = sample_flows()
flow_names = st.sampled_from(sorted(FLOWS))
digits = st.one_of(st.sampled_from(sorted(DTMF_DIGITS)), st.text(max_size=3))
n = st.integers(min_value=0, max_value=8)


def blind_events() -> st.SearchStrategy[Event]:
    """Events with ids from the pool a call `c` would use, current or not."""
    return st.one_of(
        n.map(lambda i: PlaybackFinished(f"c-pb-{i}")),
        digits.map(Dtmf),
        n.map(lambda i: TimerExpired(f"c-t-{i}")),
        n.map(lambda i: LegRinging(f"c-leg-{i}")),
        n.map(lambda i: LegAnswered(f"c-leg-{i}")),
        st.builds(LegFailed, n.map(lambda i: f"c-leg-{i}"), st.sampled_from(["busy", "noanswer", "unavailable",
                                                                             "congestion", "other"])),
        n.map(lambda i: LegHungUp(f"c-leg-{i}")),
        st.just(CallerHungUp()),
        st.builds(RecordingFinished, n.map(lambda i: f"c-vm-{i}"), st.floats(min_value=0, max_value=300)),
        n.map(lambda i: RecordingFailed(f"c-vm-{i}")),
    )


class Run:
    def __init__(self, name: str, active: int) -> None:
        self.ledger = Ledger()
        self.state, actions = start(FLOWS[name], "c", "+15550001111", active, now=0.0)
        self.all_actions: list[Action] = []
        self.events: list[tuple[Event, float]] = []
        self.record(actions)

    def record(self, actions: list[Action]) -> None:
        for a in actions:
            self.ledger.action(a)
        self.all_actions += actions
        self.check()

    def feed(self, event: Event, now: float) -> None:
        before = self.state
        self.events.append((event, now))
        self.ledger.event(event)
        self.state, actions = step(self.state, event, now=now)
        if before.finished:
            assert self.state is before and actions == []
        self.record(actions)

    def check(self) -> None:
        s, led = self.state, self.ledger
        assert led.timers == ({s.timer_id} if s.timer_id else set())
        assert led.playbacks == ({s.playback_id} if s.playback_id else set())
        assert led.legs == {leg.leg_id for leg in s.live_legs}
        if s.phase == "bridged":
            assert [leg.leg_id for leg in s.live_legs] == [s.bridged_leg]
        elif s.phase != "forwarding":
            assert not s.live_legs, s.phase
        hangups = [a for a in self.all_actions if isinstance(a, Hangup)]
        assert len(hangups) <= 1
        if hangups:
            assert self.all_actions[-1] == hangups[0] and s.finished
        if s.finished:
            assert led.idle() and s.disposition in DISPOSITIONS and s.ended_at is not None
        if s.bridged_leg is not None:
            assert s.disposition == "answered" and s.answered and s.connected_at is not None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow_names, st.integers(min_value=0, max_value=3), st.lists(blind_events(), max_size=40))
def test_random_events_never_break_the_machine(name: str, active: int, events: list[Event]) -> None:
    run = Run(name, active)
    for i, event in enumerate(events):
        run.feed(event, float(i + 1))
    run.feed(CallerHungUp(), 1000.0)
    if run.state.awaiting_recording:
        assert run.state.recording is not None
        run.feed(RecordingFailed(run.state.recording), 1001.0)
    assert run.state.finished and run.ledger.idle()


def aimed_event(data: st.DataObject, state: CallState) -> Event:
    """An event that is mostly about what the call is doing now (current ids, known legs), sometimes not."""
    legs = [leg.leg_id for leg in state.legs] or ["c-leg-1"]
    kind = data.draw(st.sampled_from(["pb", "dtmf", "dtmf", "timer", "ring", "answer", "fail", "hangup", "rec_ok",
                                      "rec_fail", "caller"]))
    if kind == "pb":
        return PlaybackFinished(state.playback_id or "c-pb-1")
    if kind == "dtmf":
        return Dtmf(data.draw(digits))
    if kind == "timer":
        return TimerExpired(state.timer_id or "c-t-1")
    if kind == "caller":
        return CallerHungUp() if data.draw(st.integers(0, 9)) == 0 else Dtmf("#")
    if kind in ("ring", "answer", "fail", "hangup"):
        leg = data.draw(st.sampled_from(legs))
        if kind == "ring":
            return LegRinging(leg)
        if kind == "answer":
            return LegAnswered(leg)
        if kind == "fail":
            return LegFailed(leg, data.draw(st.sampled_from(["busy", "noanswer", "unavailable", "congestion"])))
        return LegHungUp(leg)
    name = state.recording or "c-vm-1"
    if kind == "rec_ok":
        return RecordingFinished(name, data.draw(st.floats(min_value=0, max_value=60)))
    return RecordingFailed(name)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow_names, st.integers(min_value=0, max_value=2), st.data())
def test_aimed_random_walks(name: str, active: int, data: st.DataObject) -> None:
    run = Run(name, active)
    for i in range(data.draw(st.integers(min_value=0, max_value=60))):
        run.feed(aimed_event(data, run.state), float(i + 1))
    if not run.state.finished:
        run.feed(CallerHungUp(), 1000.0)
    if run.state.awaiting_recording:
        assert run.state.recording is not None
        run.feed(RecordingFinished(run.state.recording, 2.0), 1001.0)
    assert run.state.finished and run.ledger.idle()
    # deterministic: the same walk gives the same result
    again = Run(name, active)
    for event, now in run.events:
        again.feed(event, now)
    assert again.all_actions == run.all_actions and again.state == run.state

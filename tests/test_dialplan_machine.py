"""The call state machine, behaviour by behaviour, with exact actions and ids. No mocks, no asyncio."""
from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from vpbx.dialplan import (
    Answer,
    Bridge,
    CallerHungUp,
    CallState,
    CancelTimer,
    DeliverVoicemail,
    Dial,
    DiscardRecording,
    Dtmf,
    Event,
    Flow,
    Hangup,
    HangupLeg,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    Play,
    PlaybackFinished,
    Record,
    RecordingFailed,
    RecordingFinished,
    Ring,
    StartTimer,
    StopPlayback,
    Target,
    TimerExpired,
    adopt,
    reject_unknown,
    start,
    step,
)
from vpbx.dialplan.machine import reject_broken
from vpbx.dialplan.model import Action, StartRingback, StopRingback
from vpbx.dialplan.testing import Ledger, drive, sample_flow

ALICE, BOB, CAROL = Target("sip", "alice"), Target("sip", "bob"), Target("sip", "carol")
MOBILE = Target("tel", "+380501112233")
DESK = Target("uri", "sip:desk@pbx.example.com:5070")


class Call:
    """A call under test: feeds events, keeps a Ledger, and returns each step's actions."""

    def __init__(self, flow: Flow, active_calls: int = 0, now: float = 100.0) -> None:
        self.ledger = Ledger()
        self.state, actions = start(flow, "c", "+15550001111", active_calls, now)
        for a in actions:
            self.ledger.action(a)
        self.first = actions

    def __call__(self, event: Event, now: float | None = None) -> list[Action]:
        self.ledger.event(event)
        before = self.state
        self.state, actions = step(self.state, event, now)
        for a in actions:
            self.ledger.action(a)
        if not actions and self.state is not before:   # a silent change: only these
            assert type(event) in (LegRinging, LegFailed, LegHungUp, CallerHungUp, RecordingFailed), event
        return actions

    def ignored(self, event: Event) -> None:
        before = self.state
        assert self(event) == []
        assert self.state is before

    def finished(self) -> None:
        assert self.state.finished and self.state.phase == "finished"
        assert self.ledger.idle(), self.ledger
        assert self.state.timer_id is None and self.state.playback_id is None and not self.state.live_legs


def ivr_call(**number: object) -> Call:
    """The sample IVR (main menu, retries 2, timeout 5) reached and waiting for a key (timer c-t-1)."""
    call = Call(sample_flow(route="ivr:main", **number))
    assert call.first == [Answer(), Play("c-pb-1", "sound:vpbx/main-menu")]
    assert call(PlaybackFinished("c-pb-1")) == [StartTimer("c-t-1", 5.0)]
    return call


# -- start, channel limit, unknown number ---------------------------------------------------------------------------

def test_channel_limit_rejects_busy() -> None:
    flow = sample_flow(route="sip:alice", channels=2)
    call = Call(flow, active_calls=2)
    assert call.first == [Hangup(17)]
    assert call.state.disposition == "busy" and call.state.finished and not call.state.answered
    assert call.state.ended_at == 100.0
    assert Call(flow, active_calls=5).first == [Hangup(17)]
    assert Call(flow, active_calls=1).first == [Ring(), Dial("c-leg-1", ALICE, 30.0), StartTimer("c-t-1", 30.0)]


def test_zero_channels_means_every_call_is_busy() -> None:
    assert Call(sample_flow(route="hangup", channels=0)).first == [Hangup(17)]


def test_reject_unknown() -> None:
    assert reject_unknown() == [Hangup(cause=1)]


def test_reject_broken_flow_is_out_of_order() -> None:
    assert reject_broken() == [Hangup(cause=27)]


def test_start_state() -> None:
    call = Call(sample_flow(route="sip:alice"), now=42.0)
    s = call.state
    assert (s.call_id, s.caller, s.started_at) == ("c", "+15550001111", 42.0)
    assert (s.node, s.phase) == ("sip:alice", "forwarding")
    assert s.disposition is None and not s.finished and s.reached == "sip:alice"


# -- greeting, play, hangup, unavailable ----------------------------------------------------------------------------

def test_greeting_answers_plays_then_routes() -> None:
    call = Call(sample_flow(greeting="welcome", route="sip:alice"))
    assert call.first == [Answer(), Play("c-pb-1", "sound:vpbx/welcome")]
    assert call.state.answered and call.state.answered_at == 100.0
    # the caller is answered now: in-band ringing instead of Ring before dialling
    assert call(PlaybackFinished("c-pb-1")) == [StartRingback("c-rb-1"), Dial("c-leg-1", ALICE, 30.0),
                                                StartTimer("c-t-1", 30.0)]


def test_keys_during_greeting_are_ignored() -> None:
    call = Call(sample_flow(greeting="welcome", route="ivr:main"))
    call.ignored(Dtmf("1"))
    assert call(PlaybackFinished("c-pb-1")) == [Play("c-pb-2", "sound:vpbx/main-menu")]


def test_play_destination_plays_and_hangs_up() -> None:
    call = Call(sample_flow(route="play:closed"))
    assert call.first == [Answer(), Play("c-pb-1", "sound:vpbx/closed")]
    assert call(PlaybackFinished("c-pb-1"), now=105.0) == [Hangup(16)]
    call.finished()
    assert call.state.disposition == "missed" and call.state.reached == "play:closed" and call.state.ended_at == 105.0


def test_hangup_destination() -> None:
    call = Call(sample_flow(route="hangup", greeting="hi"))
    assert call(PlaybackFinished("c-pb-1")) == [Hangup(16)]
    call.finished()
    assert call.state.reached == "hangup" and call.state.disposition == "missed"


def test_unavailable_number() -> None:
    call = Call(sample_flow(greeting="welcome"))
    assert call.first == [Answer(), Play("c-pb-1", "sound:vpbx/number-unavailable")]
    assert call(PlaybackFinished("c-pb-1")) == [Hangup(16)]
    call.finished()
    assert call.state.disposition == "failed" and call.state.reached is None


# -- IVR ------------------------------------------------------------------------------------------------------------

def test_ivr_valid_key_goes_to_its_option() -> None:
    call = ivr_call()
    assert call(Dtmf("4")) == [CancelTimer("c-t-1"), Play("c-pb-2", "sound:vpbx/hours")]
    assert call.state.node == "play:hours" and call.state.phase == "closing"


def test_ivr_key_during_prompt_stops_it_and_acts() -> None:
    call = Call(sample_flow(route="ivr:main"))
    assert call(Dtmf("3")) == [StopPlayback("c-pb-1"), Play("c-pb-2", "sound:vpbx/vm-intro")]
    call.ignored(PlaybackFinished("c-pb-1"))  # the stopped prompt reports its end later: stale
    assert call(PlaybackFinished("c-pb-2")) == [Record("c-vm-1", 180, 5, beep=True, terminate_on="#")]


def test_ivr_invalid_key_plays_invalid_prompt_then_menu_and_counts_a_retry() -> None:
    call = ivr_call()
    assert call(Dtmf("7")) == [CancelTimer("c-t-1"), Play("c-pb-2", "sound:vpbx/bad-key")]
    assert call.state.failures == 1 and call.state.phase == "ivr_invalid"
    assert call(PlaybackFinished("c-pb-2")) == [Play("c-pb-3", "sound:vpbx/main-menu")]
    assert call(PlaybackFinished("c-pb-3")) == [StartTimer("c-t-2", 5.0)]
    assert call(Dtmf("0")) == [CancelTimer("c-t-2"), Hangup(16)]
    call.finished()


def test_ivr_builtin_invalid_prompt() -> None:
    call = Call(sample_flow(route="ivr:directory"))
    call(Dtmf("#"))
    assert call.state.phase == "ivr_invalid"
    assert call.ledger.playbacks == {"c-pb-2"}
    assert call.state.playback_id == "c-pb-2"


def test_ivr_key_during_invalid_prompt_interrupts_it() -> None:
    call = ivr_call()
    call(Dtmf("7"))
    assert call(Dtmf("0")) == [StopPlayback("c-pb-2"), Hangup(16)]
    call.finished()


def test_ivr_timeout_replays_prompt_then_falls_back() -> None:
    call = ivr_call(fallback="voicemail")     # retries=2: three attempts
    assert call(TimerExpired("c-t-1")) == [Play("c-pb-2", "sound:vpbx/main-menu")]
    assert call(PlaybackFinished("c-pb-2")) == [StartTimer("c-t-2", 5.0)]
    assert call(TimerExpired("c-t-2")) == [Play("c-pb-3", "sound:vpbx/main-menu")]
    assert call(PlaybackFinished("c-pb-3")) == [StartTimer("c-t-3", 5.0)]
    assert call(TimerExpired("c-t-3")) == [Play("c-pb-4", "sound:vpbx/vm-intro")]
    assert call.state.node == "voicemail" and call.state.failures == 0


def test_ivr_mixed_failures_exhaust_retries() -> None:
    call = ivr_call(fallback="play:sorry")
    call(Dtmf("8"))                                  # failure 1 (invalid)
    call(PlaybackFinished("c-pb-2"))
    call(PlaybackFinished("c-pb-3"))
    assert call(TimerExpired("c-t-2")) == [Play("c-pb-4", "sound:vpbx/main-menu")]   # failure 2 (timeout)
    call(PlaybackFinished("c-pb-4"))
    assert call(Dtmf("8")) == [CancelTimer("c-t-3"), Play("c-pb-5", "sound:vpbx/sorry")]   # failure 3 -> fallback
    assert call(PlaybackFinished("c-pb-5")) == [Hangup(16)]
    call.finished()


def test_ivr_hangup_fallback_says_goodbye() -> None:
    call = Call(sample_flow(route="ivr:silent", fallback="hangup"))    # no prompt, retries 0
    assert call.first == [Answer(), StartTimer("c-t-1", 4.0)]
    assert call(TimerExpired("c-t-1")) == [Play("c-pb-1", "sound:vpbx/goodbye")]
    assert call(PlaybackFinished("c-pb-1")) == [Hangup(16)]
    call.finished()


def test_promptless_ivr_waits_at_once_and_restarts_its_timer() -> None:
    call = Call(sample_flow(route="ivr:silent"))
    assert call(Dtmf("5")) == [CancelTimer("c-t-1"), Play("c-pb-1", "sound:vpbx/goodbye")]  # retries 0: straight out


def test_option_back_to_same_ivr_restarts_the_menu_and_resets_retries() -> None:
    call = ivr_call()
    call(Dtmf("7"))
    call(Dtmf("9"))                              # interrupts invalid prompt, option 9 = ivr:main
    assert call.state.failures == 0 and call.state.phase == "ivr_prompt" and call.state.playback_id == "c-pb-3"


@pytest.mark.parametrize("junk", ["x", "", "12", "a", "E", " ", "##", "\x00", "١"])
def test_junk_dtmf_is_ignored_in_every_ivr_phase(junk: str) -> None:
    call = Call(sample_flow(route="ivr:main"))
    call.ignored(Dtmf(junk))                              # during prompt
    call(PlaybackFinished("c-pb-1"))
    call.ignored(Dtmf(junk))                              # waiting
    call(Dtmf("7"))
    call.ignored(Dtmf(junk))                              # invalid prompt
    ext = Call(sample_flow(route="ivr:directory"))
    ext(Dtmf("1"))
    ext.ignored(Dtmf(junk))                               # collecting digits
    assert ext.state.digits == "1"


def test_junk_dtmf_ignored_outside_ivr_too() -> None:
    call = Call(sample_flow(route="sip:alice"))
    call.ignored(Dtmf("x"))
    call.ignored(Dtmf("1"))


# -- extension IVR ---------------------------------------------------------------------------------------------------

def directory() -> Call:
    call = Call(sample_flow(route="ivr:directory", fallback="play:sorry"))   # timeout 6, retries 1
    assert call.first == [Answer(), Play("c-pb-1", "sound:vpbx/dir-menu")]
    return call


def test_extension_typed_and_ended_with_hash() -> None:
    call = directory()
    assert call(Dtmf("1")) == [StopPlayback("c-pb-1"), StartTimer("c-t-1", 3.0)]
    assert call(Dtmf("0")) == [CancelTimer("c-t-1"), StartTimer("c-t-2", 3.0)]
    assert call(Dtmf("2")) == [CancelTimer("c-t-2"), StartTimer("c-t-3", 3.0)]
    assert call.state.digits == "102"
    assert call(Dtmf("#")) == [CancelTimer("c-t-3"), StartRingback("c-rb-1"), Dial("c-leg-1", BOB, 30.0),
                               StartTimer("c-t-4", 30.0)]
    assert call.state.digits == "" and call.state.node == "sip:bob"


def test_extension_ended_by_inter_digit_timeout() -> None:
    call = directory()
    call(PlaybackFinished("c-pb-1"))
    assert call(Dtmf("2")) == [CancelTimer("c-t-1"), StartTimer("c-t-2", 3.0)]
    for d in "000":
        call(Dtmf(d))
    assert call(TimerExpired("c-t-5")) == [StartRingback("c-rb-1"), Dial("c-leg-1", ALICE, 10.0),
                                           StartTimer("c-t-6", 10.0)]
    assert call.state.node == "group:hunt"


def test_unknown_extension_is_invalid() -> None:
    call = directory()
    call(Dtmf("9"))
    call(Dtmf("9"))
    assert call(Dtmf("#")) == [CancelTimer("c-t-2"), Play("c-pb-2", "sound:vpbx/invalid-option")]
    assert call.state.failures == 1
    assert call(PlaybackFinished("c-pb-2")) == [Play("c-pb-3", "sound:vpbx/dir-menu")]
    call(Dtmf("5"))
    assert call(TimerExpired("c-t-3")) == [Play("c-pb-4", "sound:vpbx/sorry")]   # retries 1 exhausted


def test_extension_ivr_options_still_work() -> None:
    call = directory()
    call(Dtmf("0"))
    assert call(Dtmf("#")) == [CancelTimer("c-t-1"), Play("c-pb-2", "sound:vpbx/main-menu")]   # option 0 -> ivr:main
    assert call.state.node == "ivr:main"


def test_extension_ivr_timeout_without_digits_is_a_retry() -> None:
    call = directory()
    call(PlaybackFinished("c-pb-1"))
    assert call(TimerExpired("c-t-1")) == [Play("c-pb-2", "sound:vpbx/dir-menu")]
    assert call.state.failures == 1


def test_extension_ivr_hash_alone_is_invalid_unless_an_option() -> None:
    call = directory()
    assert call(Dtmf("#")) == [StopPlayback("c-pb-1"), Play("c-pb-2", "sound:vpbx/invalid-option")]


def test_extension_max_length_is_looked_up_at_once() -> None:
    call = directory()
    for _ in range(31):
        call(Dtmf("1"))
    assert call(Dtmf("1")) == [CancelTimer("c-t-31"), Play("c-pb-2", "sound:vpbx/invalid-option")]


# -- forwarding: simultaneous ---------------------------------------------------------------------------------------

def group_call(**number: object) -> Call:
    call = Call(sample_flow(route="group:sales", **number))
    assert call.first == [Ring(), Dial("c-leg-1", ALICE, 20.0), Dial("c-leg-2", BOB, 20.0),
                          Dial("c-leg-3", MOBILE, 20.0), StartTimer("c-t-1", 20.0)]
    assert not call.state.answered
    return call


def test_first_answer_wins() -> None:
    call = group_call()
    assert call(LegRinging("c-leg-1")) == []
    assert call(LegRinging("c-leg-2")) == []
    assert call(LegAnswered("c-leg-2"), now=110.0) == [
        CancelTimer("c-t-1"), Bridge("c-leg-2"), HangupLeg("c-leg-1", "answered_elsewhere"),
        HangupLeg("c-leg-3", "answered_elsewhere")]
    s = call.state
    assert s.phase == "bridged" and s.bridged_leg == "c-leg-2" and s.answered
    assert s.answered_at == 110.0 and s.connected_at == 110.0
    assert s.reached == "sip:bob" and s.disposition == "answered"


def test_late_answer_is_hung_up() -> None:
    call = group_call()
    call(LegAnswered("c-leg-3"))
    assert call(LegAnswered("c-leg-1")) == [HangupLeg("c-leg-1", "answered_elsewhere")]
    assert call.state.bridged_leg == "c-leg-3"
    call.ignored(LegAnswered("c-leg-3"))     # duplicate answer of the winner
    call.ignored(LegHungUp("c-leg-1"))       # the loser's hang-up is old news


def test_failed_legs_leave_the_others_ringing() -> None:
    call = group_call()
    assert call(LegFailed("c-leg-1", "busy")) == []
    assert call(LegFailed("c-leg-3", "unavailable")) == []
    assert [leg.leg_id for leg in call.state.live_legs] == ["c-leg-2"]
    assert call(LegAnswered("c-leg-2")) == [CancelTimer("c-t-1"), Bridge("c-leg-2")]


def test_all_legs_failing_goes_to_fallback() -> None:
    call = group_call(fallback="voicemail")
    call(LegFailed("c-leg-1", "busy"))
    call(LegHungUp("c-leg-2"))
    assert call(LegFailed("c-leg-3", "congestion")) == [
        CancelTimer("c-t-1"), Answer(), Play("c-pb-1", "sound:vpbx/vm-intro")]
    assert call.state.node == "voicemail" and call.state.reached == "voicemail"


def test_overall_timeout_hangs_up_live_legs_and_falls_back() -> None:
    call = group_call(fallback="hangup")
    call(LegFailed("c-leg-2", "busy"))
    assert call(TimerExpired("c-t-1")) == [
        HangupLeg("c-leg-1", "timeout"), HangupLeg("c-leg-3", "timeout"), Hangup(16)]
    call.finished()
    assert call.state.disposition == "missed" and call.state.reached == "group:sales"


def test_late_answer_after_timeout_is_hung_up() -> None:
    call = group_call(fallback="play:sorry")
    call(TimerExpired("c-t-1"))
    assert call.state.phase == "closing"
    assert call(LegAnswered("c-leg-2")) == [HangupLeg("c-leg-2", "normal")]
    assert call.state.phase == "closing"


def test_unknown_leg_reason_counts_as_a_failure() -> None:
    call = Call(sample_flow(route="sip:alice"))
    assert call(LegFailed("c-leg-1", "CANCEL")) == [CancelTimer("c-t-1"), Hangup(16)]
    call.finished()


# -- forwarding: sequential -----------------------------------------------------------------------------------------

def hunt_call() -> Call:
    call = Call(sample_flow(route="group:hunt", fallback="voicemail"))     # alice, bob, desk; 10 s each
    assert call.first == [Ring(), Dial("c-leg-1", ALICE, 10.0), StartTimer("c-t-1", 10.0)]
    return call


def test_sequential_order_and_per_target_timeout() -> None:
    call = hunt_call()
    call(LegRinging("c-leg-1"))
    assert call(TimerExpired("c-t-1")) == [
        HangupLeg("c-leg-1", "timeout"), Dial("c-leg-2", BOB, 10.0), StartTimer("c-t-2", 10.0)]
    assert call(LegFailed("c-leg-2", "busy")) == [
        CancelTimer("c-t-2"), Dial("c-leg-3", DESK, 10.0), StartTimer("c-t-3", 10.0)]
    assert call(LegAnswered("c-leg-3")) == [CancelTimer("c-t-3"), Bridge("c-leg-3")]
    assert call.state.reached == "uri:sip:desk@pbx.example.com:5070"


def test_sequential_exhausted_goes_to_fallback() -> None:
    call = hunt_call()
    call(LegFailed("c-leg-1", "unavailable"))
    call(LegHungUp("c-leg-2"))     # hung up before answering: next
    assert call(TimerExpired("c-t-3")) == [
        HangupLeg("c-leg-3", "timeout"), Answer(), Play("c-pb-1", "sound:vpbx/vm-intro")]


def test_sequential_late_answer_from_timed_out_leg() -> None:
    call = hunt_call()
    call(TimerExpired("c-t-1"))
    call.ignored(LegFailed("c-leg-1", "noanswer"))   # we hung it up already
    assert call(LegAnswered("c-leg-1")) == [HangupLeg("c-leg-1", "normal")]
    assert call.state.phase == "forwarding" and [leg.leg_id for leg in call.state.live_legs] == ["c-leg-2"]
    assert call(LegAnswered("c-leg-2")) == [CancelTimer("c-t-2"), Bridge("c-leg-2")]


def test_forward_to_sequential_with_fallback_voicemail() -> None:
    call = Call(sample_flow(forward_to=("sip:alice", "tel:+380501112233"), forward_mode="sequential",
                            forward_timeout=15, fallback="voicemail"))
    assert call.first == [Ring(), Dial("c-leg-1", ALICE, 15.0), StartTimer("c-t-1", 15.0)]
    call(TimerExpired("c-t-1"))
    assert call(TimerExpired("c-t-2")) == [HangupLeg("c-leg-2", "timeout"), Answer(),
                                           Play("c-pb-1", "sound:vpbx/vm-intro")]


# -- ringback: Ring for an unanswered caller, in-band ringing for an answered one -------------------------------------

def test_forward_after_ivr_plays_in_band_ringing_to_the_answered_caller() -> None:
    call = ivr_call()
    actions = call(Dtmf("2"))
    assert actions == [CancelTimer("c-t-1"), StartRingback("c-rb-1"), Dial("c-leg-1", ALICE, 10.0),
                       StartTimer("c-t-2", 10.0)]
    assert Ring() not in actions and call.state.ringback == "c-rb-1"


def test_unanswered_caller_gets_ring_not_in_band_ringing() -> None:
    call = group_call()
    assert call.state.ringback is None
    assert not [a for a in call.first if isinstance(a, (StartRingback, StopRingback))]
    assert call(LegAnswered("c-leg-1")) == [
        CancelTimer("c-t-1"), Bridge("c-leg-1"), HangupLeg("c-leg-2", "answered_elsewhere"),
        HangupLeg("c-leg-3", "answered_elsewhere")]


def test_ringback_stops_before_the_bridge() -> None:
    call = ivr_call()
    call(Dtmf("1"))                                       # group:sales, three legs at once
    assert call(LegAnswered("c-leg-2"), now=110.0) == [
        CancelTimer("c-t-2"), StopRingback("c-rb-1"), Bridge("c-leg-2"), HangupLeg("c-leg-1", "answered_elsewhere"),
        HangupLeg("c-leg-3", "answered_elsewhere")]
    assert call.state.ringback is None


def test_ringback_goes_on_from_one_sequential_target_to_the_next() -> None:
    call = ivr_call()
    assert call(Dtmf("2"))[1] == StartRingback("c-rb-1")   # group:hunt: alice, bob, desk
    assert call(TimerExpired("c-t-2")) == [HangupLeg("c-leg-1", "timeout"), Dial("c-leg-2", BOB, 10.0),
                                           StartTimer("c-t-3", 10.0)]
    assert call(LegFailed("c-leg-2", "busy")) == [CancelTimer("c-t-3"), Dial("c-leg-3", DESK, 10.0),
                                                  StartTimer("c-t-4", 10.0)]
    assert call.state.ringback == "c-rb-1"
    assert call(LegAnswered("c-leg-3")) == [CancelTimer("c-t-4"), StopRingback("c-rb-1"), Bridge("c-leg-3")]


def test_ringback_stops_before_the_fallback_plays() -> None:
    call = ivr_call(fallback="voicemail")
    call(Dtmf("1"))
    assert call(TimerExpired("c-t-2")) == [
        HangupLeg("c-leg-1", "timeout"), HangupLeg("c-leg-2", "timeout"), HangupLeg("c-leg-3", "timeout"),
        StopRingback("c-rb-1"), Play("c-pb-2", "sound:vpbx/vm-intro")]
    assert call.state.ringback is None and call.state.phase == "vm_intro"


def test_ringback_stops_before_a_hangup_fallback() -> None:
    call = ivr_call(fallback="hangup")
    call(Dtmf("2"))
    call(TimerExpired("c-t-2"))
    call(TimerExpired("c-t-3"))
    assert call(TimerExpired("c-t-4")) == [HangupLeg("c-leg-3", "timeout"), StopRingback("c-rb-1"), Hangup(16)]
    call.finished()


def test_ringback_stops_when_the_caller_hangs_up() -> None:
    call = ivr_call()
    call(Dtmf("1"))
    actions = call(CallerHungUp())
    assert actions[0] == StopRingback("c-rb-1") and Hangup(16) not in actions
    call.finished()
    assert call.state.ringback is None


def test_ringback_after_a_restart_uses_the_restart_prefix() -> None:
    state, actions = adopt(sample_flow(route="sip:alice"), "c", "+1555", answered=True, restart=2)
    assert actions == [StartRingback("c-r2-rb-1"), Dial("c-r2-leg-1", ALICE, 30.0), StartTimer("c-r2-t-1", 30.0)]
    assert state.ringback == "c-r2-rb-1"


def test_every_ringback_started_is_stopped_before_the_caller_hears_anything_else() -> None:
    """Over every sample flow and script (and a hang-up after every step): at most one ringback at a time; none
    while the caller is bridged, played to, recorded or hung up; none left once the call finishes."""
    from vpbx.dialplan.simulate import run
    from vpbx.dialplan.testing import sample_flows

    exclusive = (Bridge, Play, Record, Hangup)
    scripts = ["", "1", "2", "3", "5101#", "52000", "0"]
    runs = 0
    for name, flow in sample_flows().items():
        for dtmf in scripts:
            for no_answer in (frozenset(), frozenset({"sip:alice", "sip:bob", "tel:+380501112233",
                                                      "uri:sip:desk@pbx.example.com:5070", "uri:sip:x@example.com"})):
                steps = run(flow, "+15550001111", dtmf, set(no_answer), set(), call_id="c")
                events = [s.event for s in steps[1:] if s.event is not None]
                for cut in range(len(events) + 1):
                    state, actions = start(flow, "c", "+15550001111", 0)
                    every = list(actions)
                    for event in events[:cut]:
                        state, actions = step(state, event)
                        every += actions
                    if not state.finished:
                        state, actions = step(state, CallerHungUp())
                        every += actions
                    runs += 1
                    playing: str | None = None
                    for action in every:
                        if isinstance(action, StartRingback):
                            assert playing is None, (name, dtmf, every)
                            playing = action.playback_id
                        elif isinstance(action, StopRingback):
                            assert action.playback_id == playing, (name, dtmf, every)
                            playing = None
                        elif isinstance(action, exclusive):
                            assert playing is None, (name, dtmf, action, every)
                    if state.finished:
                        assert playing is None and state.ringback is None, (name, dtmf, every)
    assert runs > 200


# -- bridged --------------------------------------------------------------------------------------------------------

def bridged() -> Call:
    call = Call(sample_flow(route="sip:alice"))
    call(LegAnswered("c-leg-1"), now=120.0)
    return call


def test_leg_hangup_ends_a_bridged_call() -> None:
    call = bridged()
    assert call(LegHungUp("c-leg-1"), now=180.0) == [Hangup(16)]
    call.finished()
    s = call.state
    assert (s.disposition, s.reached, s.connected_at, s.ended_at) == ("answered", "sip:alice", 120.0, 180.0)


def test_caller_hangup_ends_a_bridged_call() -> None:
    call = bridged()
    assert call(CallerHungUp()) == [HangupLeg("c-leg-1", "normal")]
    call.finished()
    assert call.state.disposition == "answered"


def test_bridged_ignores_keys_timers_and_playbacks() -> None:
    call = bridged()
    for event in (Dtmf("1"), TimerExpired("c-t-1"), PlaybackFinished("c-pb-1"), RecordingFinished("x", 3),
                  LegRinging("c-leg-1"), LegFailed("c-leg-9", "busy")):
        call.ignored(event)


# -- voicemail ------------------------------------------------------------------------------------------------------

def vm_call() -> Call:
    call = Call(sample_flow(route="voicemail"))
    assert call.first == [Answer(), Play("c-pb-1", "sound:vpbx/vm-intro")]
    assert call(PlaybackFinished("c-pb-1")) == [Record("c-vm-1", 180, 5, beep=True, terminate_on="#")]
    assert call.state.recording == "c-vm-1"
    return call


def test_voicemail_delivered() -> None:
    call = vm_call()
    assert call(RecordingFinished("c-vm-1", 12.5)) == [
        DeliverVoicemail("c-vm-1", ("owner@example.com",), 12.5), Play("c-pb-2", "sound:vpbx/goodbye")]
    assert call.state.voicemail and call.state.disposition == "voicemail"
    assert call(PlaybackFinished("c-pb-2")) == [Hangup(16)]
    call.finished()
    assert call.state.disposition == "voicemail" and call.state.reached == "voicemail"


@pytest.mark.parametrize("duration, delivered", [(0.0, False), (0.99, False), (1.0, True), (1.01, True)])
def test_voicemail_minimum_length(duration: float, delivered: bool) -> None:
    call = vm_call()
    actions = call(RecordingFinished("c-vm-1", duration))
    if delivered:
        assert actions[0] == DeliverVoicemail("c-vm-1", ("owner@example.com",), duration)
    else:
        assert actions[0] == DiscardRecording("c-vm-1")
        assert not call.state.voicemail
    assert actions[1] == Play("c-pb-2", "sound:vpbx/goodbye")


def test_voicemail_recording_failed() -> None:
    call = vm_call()
    call.ignored(RecordingFailed("other"))
    assert call(RecordingFailed("c-vm-1")) == [Play("c-pb-2", "sound:vpbx/goodbye")]
    call(PlaybackFinished("c-pb-2"))
    call.finished()
    assert call.state.disposition == "missed"


def test_caller_hangup_mid_recording_waits_for_the_recording() -> None:
    call = vm_call()
    assert call(CallerHungUp()) == []
    assert call.state.awaiting_recording and not call.state.finished and call.state.recording == "c-vm-1"
    call.ignored(CallerHungUp())
    call.ignored(RecordingFinished("c-vm-9", 10))
    assert call(RecordingFinished("c-vm-1", 7.0)) == [DeliverVoicemail("c-vm-1", ("owner@example.com",), 7.0)]
    call.finished()
    assert call.state.disposition == "voicemail" and call.state.voicemail


def test_caller_hangup_mid_recording_short_or_failed() -> None:
    call = vm_call()
    call(CallerHungUp())
    assert call(RecordingFinished("c-vm-1", 0.4)) == [DiscardRecording("c-vm-1")]
    call.finished()
    call = vm_call()
    call(CallerHungUp())
    assert call(RecordingFailed("c-vm-1")) == []
    call.finished()
    assert call.state.disposition == "missed"


def test_caller_hangup_during_vm_intro() -> None:
    call = Call(sample_flow(route="voicemail"))
    assert call(CallerHungUp()) == [StopPlayback("c-pb-1")]
    call.finished()
    assert not call.state.voicemail


def test_keys_during_voicemail_are_ignored() -> None:
    call = vm_call()
    call.ignored(Dtmf("#"))


# -- caller hang-up cleans everything -------------------------------------------------------------------------------

def test_caller_hangup_while_ringing_hangs_up_every_leg_and_cancels_the_timer() -> None:
    call = group_call()
    call(LegFailed("c-leg-2", "busy"))
    assert call(CallerHungUp(), now=130.0) == [
        CancelTimer("c-t-1"), HangupLeg("c-leg-1", "normal"), HangupLeg("c-leg-3", "normal")]
    call.finished()
    assert call.state.disposition == "missed" and call.state.ended_at == 130.0
    assert not call.state.answered and call.state.answered_at is None


def test_caller_hangup_during_prompt_and_wait() -> None:
    call = Call(sample_flow(route="ivr:main"))
    assert call(CallerHungUp()) == [StopPlayback("c-pb-1")]
    call.finished()
    call = ivr_call()
    assert call(CallerHungUp()) == [CancelTimer("c-t-1")]
    call.finished()


# -- stale and late events ------------------------------------------------------------------------------------------

def test_stale_ids_are_ignored() -> None:
    call = ivr_call()
    call.ignored(PlaybackFinished("c-pb-1"))        # already finished
    call.ignored(PlaybackFinished("nope"))
    call.ignored(TimerExpired("c-t-0"))
    call(TimerExpired("c-t-1"))
    call.ignored(TimerExpired("c-t-1"))             # fired already
    call(Dtmf("1"))                                 # stops c-pb-2, dials
    call.ignored(PlaybackFinished("c-pb-2"))        # stopped playback
    call.ignored(LegAnswered("other-leg-1"))
    call.ignored(RecordingFinished("c-vm-1", 5))


def test_cancelled_timer_is_ignored() -> None:
    call = ivr_call()
    call(Dtmf("7"))                                 # cancels c-t-1
    call.ignored(TimerExpired("c-t-1"))


def test_nothing_after_finished() -> None:
    call = bridged()
    call(CallerHungUp())
    for event in (CallerHungUp(), LegAnswered("c-leg-1"), LegHungUp("c-leg-1"), Dtmf("1"), TimerExpired("c-t-1"),
                  PlaybackFinished("c-pb-1"), RecordingFinished("c-vm-1", 9), RecordingFailed("c-vm-1"),
                  LegRinging("c-leg-1"), LegFailed("c-leg-1", "busy")):
        call.ignored(event)


def test_step_refuses_non_events() -> None:
    state, _ = start(sample_flow(route="hangup"), "c", "x", 0)
    with pytest.raises(TypeError):
        step(state, "CallerHungUp")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        step(state, Hangup(16))  # type: ignore[arg-type]


def test_state_and_events_are_frozen() -> None:
    state, _ = start(sample_flow(route="sip:alice"), "c", "x", 0)
    with pytest.raises(FrozenInstanceError):
        state.phase = "x"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        Dtmf("1").digit = "2"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        Bridge("l").leg_id = "m"  # type: ignore[misc]
    new, _ = step(state, LegAnswered("c-leg-1"))
    assert state.phase == "forwarding" and new.phase == "bridged"


def test_now_is_optional_and_only_moves_the_clock_when_used() -> None:
    state, _ = start(sample_flow(route="sip:alice"), "c", "x", 0, now=5.0)
    same, _ = step(state, Dtmf("1"), now=99.0)
    assert same is state and same.clock == 5.0
    new, _ = step(state, LegAnswered("c-leg-1"))
    assert new.connected_at == 5.0


def test_ids_are_deterministic_and_prefixed_by_call_id() -> None:
    flow = sample_flow(route="group:sales")
    a, acts_a = start(flow, "1700000000.42", "x", 0)
    b, acts_b = start(flow, "1700000000.42", "x", 0)
    assert a == b and acts_a == acts_b
    assert [x.leg_id for x in acts_a if isinstance(x, Dial)] == [f"1700000000.42-leg-{n}" for n in (1, 2, 3)]


# -- adopt after an engine restart ----------------------------------------------------------------------------------

def test_adopt_answered_call_restarts_route_without_greeting() -> None:
    flow = sample_flow(greeting="welcome", route="ivr:main")
    state, actions = adopt(flow, "c", "+1555", answered=True, now=7.0)
    assert actions == [Play("c-r1-pb-1", "sound:vpbx/main-menu")]
    assert state.answered and state.node == "ivr:main"


def test_adopt_unanswered_call_plays_greeting() -> None:
    flow = sample_flow(greeting="welcome", route="sip:alice")
    _state, actions = adopt(flow, "c", "+1555", answered=False, restart=3)
    assert actions == [Answer(), Play("c-r3-pb-1", "sound:vpbx/welcome")]


def test_adopt_at_a_node() -> None:
    flow = sample_flow(route="ivr:main")
    state, actions = adopt(flow, "c", "+1555", answered=True, at="ivr:directory")
    assert actions == [Play("c-r1-pb-1", "sound:vpbx/dir-menu")]
    state, actions = adopt(flow, "c", "+1555", answered=True, at="no-such-node")
    assert state.node == "ivr:main"


def test_adopt_forward_of_unanswered_call_rings() -> None:
    state, actions = adopt(sample_flow(route="sip:alice"), "c", "+1555", answered=False)
    assert actions == [Ring(), Dial("c-r1-leg-1", ALICE, 30.0), StartTimer("c-r1-t-1", 30.0)]
    state, _ = step(state, LegAnswered("c-leg-1"))     # pre-restart id: stale
    assert state.phase == "forwarding"


def test_drive_helper_matches_step_by_step() -> None:
    flow = sample_flow(route="sip:alice")
    state, _ = start(flow, "c", "x", 0)
    ledger = Ledger()
    ledger.action(Dial("c-leg-1", ALICE, 30.0))
    ledger.action(StartTimer("c-t-1", 30.0))
    final, actions = drive(state, [LegAnswered("c-leg-1"), LegHungUp("c-leg-1")], ledger)
    assert final.finished and actions[-1] == Hangup(16) and ledger.idle()
    assert isinstance(final, CallState)


# -- adopt a call that was talking (bridged) when the engine restarted ---------------------------------------------

def _talking(restart: int = 1) -> CallState:
    from vpbx.dialplan.machine import adopt_talking
    from vpbx.dialplan.model import Leg

    state, actions = adopt_talking(sample_flow(route="sip:alice"), "c", "+1555", Leg("c-leg-1", ALICE), 100.0,
                                   105.0, now=200.0, restart=restart)
    assert actions == []                       # nothing is hung up, dialled or bridged again
    return state


def test_adopt_talking_keeps_the_original_times_and_the_leg() -> None:
    state = _talking()
    assert (state.phase, state.bridged_leg, state.reached, state.disposition) == ("bridged", "c-leg-1", "sip:alice",
                                                                                  "answered")
    assert (state.answered_at, state.connected_at, state.answered) == (100.0, 105.0, True)
    assert state.leg("c-leg-1") is not None and state.leg("c-leg-1").status == "answered"
    assert state.prefix == "c-r1"


def test_adopted_talk_ends_when_the_callee_hangs_up() -> None:
    state, actions = step(_talking(), LegHungUp("c-leg-1"), now=230.0)
    assert state.finished and actions == [Hangup(16)]
    assert (state.connected_at, state.ended_at) == (105.0, 230.0)      # billsec 125, counted from the original connect


def test_adopted_talk_ends_when_the_caller_hangs_up() -> None:
    state, actions = step(_talking(), CallerHungUp(), now=230.0)
    assert state.finished and actions == [HangupLeg("c-leg-1", "normal")]
    assert state.disposition == "answered"


def test_adopted_talk_still_holds_and_ignores_stale_ids() -> None:
    from vpbx.dialplan.model import CALLER, Hold, StartMoh, Unhold

    state, actions = step(_talking(), Hold(CALLER))
    assert actions == [StartMoh("c-leg-1")]
    state, actions = step(state, Unhold(CALLER))
    assert state.holding == () and actions
    same, actions = step(state, LegAnswered("c-leg-2"))        # a leg nobody knows: hung up, the talk goes on
    assert same.phase == "bridged" and not same.finished

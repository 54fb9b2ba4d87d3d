"""simulate(): the dry run drives the real machine and prints one line per step."""
from __future__ import annotations

from vpbx.dialplan import Dtmf, LegAnswered, LegFailed, TimerExpired, simulate
from vpbx.dialplan.simulate import run
from vpbx.dialplan.testing import sample_flow


def test_ivr_to_group_first_answer_wins() -> None:
    flow = sample_flow(greeting="welcome", route="ivr:main", fallback="voicemail")
    assert simulate(flow, "+15550001111", "1", no_answer=set(), busy={"sip:alice"}) == [
        "  0. call from +15550001111 to +380441234567 -> answer; play sound:vpbx/welcome [sim-pb-1]",
        "  1. playback sim-pb-1 finished -> play sound:vpbx/main-menu [sim-pb-2]",
        "  2. playback sim-pb-2 finished -> start timer sim-t-1 (5s)",
        "  3. caller presses 1 -> cancel timer sim-t-1; in-band ringing to caller [sim-rb-1]; "
        "dial sip:alice as sim-leg-1 (20s); "
        "dial sip:bob as sim-leg-2 (20s); dial tel:+380501112233 as sim-leg-3 (20s); start timer sim-t-2 (20s)",
        "  4. sim-leg-1 (sip:alice) fails: busy -> nothing",
        "  5. sim-leg-2 (sip:bob) rings -> nothing",
        "  6. sim-leg-3 (tel:+380501112233) rings -> nothing",
        "  7. sim-leg-2 (sip:bob) answers -> cancel timer sim-t-2; stop ringing [sim-rb-1]; "
        "bridge caller with sim-leg-2; "
        "hang up sim-leg-3 (answered_elsewhere)",
        "  8. caller hangs up -> hang up sim-leg-2 (normal)",
        "end: answered, reached sip:bob",
    ]


def test_sequential_no_answer_then_voicemail() -> None:
    flow = sample_flow(forward_to=("sip:alice", "tel:+380501112233"), forward_mode="sequential", forward_timeout=15,
                       fallback="voicemail")
    lines = simulate(flow, "+15550001111", "", no_answer={"sip:alice"}, busy={"tel:+380501112233"})
    assert lines == [
        "  0. call from +15550001111 to +380441234567 -> ringback to caller; dial sip:alice as sim-leg-1 (15s); "
        "start timer sim-t-1 (15s)",
        "  1. sim-leg-1 (sip:alice) rings -> nothing",
        "  2. timer sim-t-1 expires -> hang up sim-leg-1 (timeout); dial tel:+380501112233 as sim-leg-2 (15s); "
        "start timer sim-t-2 (15s)",
        "  3. sim-leg-2 (tel:+380501112233) fails: busy -> cancel timer sim-t-2; answer; "
        "play sound:vpbx/vm-intro [sim-pb-1]",
        "  4. playback sim-pb-1 finished -> record sim-vm-1 (max 180s, silence 5s)",
        "  5. recording sim-vm-1 finished (5s) -> deliver voicemail sim-vm-1 (5s) to owner@example.com; "
        "play sound:vpbx/goodbye [sim-pb-2]",
        "  6. playback sim-pb-2 finished -> hang up caller (cause 16)",
        "end: voicemail, reached voicemail",
    ]


def test_retries_exhausted_and_junk_key() -> None:
    flow = sample_flow(route="ivr:silent", fallback="hangup")
    assert simulate(flow, "+1", "x") == [
        "  0. call from +1 to +380441234567 -> answer; start timer sim-t-1 (4s)",
        "  1. caller presses x -> nothing",
        "  2. timer sim-t-1 expires -> play sound:vpbx/goodbye [sim-pb-1]",
        "  3. playback sim-pb-1 finished -> hang up caller (cause 16)",
        "end: missed, reached ivr:silent",
    ]


def test_extension_typed_in_one_go() -> None:
    flow = sample_flow(route="ivr:directory")
    steps = run(flow, "+1", "101#2")
    keys = [s.event.digit for s in steps if isinstance(s.event, Dtmf)]
    assert keys == ["1", "0", "1", "#"]
    assert steps[-1].state.reached == "sip:alice" and steps[-1].state.disposition == "answered"


def test_extension_without_hash_ends_on_the_digit_timer() -> None:
    steps = run(sample_flow(route="ivr:directory"), "+1", "2000")
    timers = [s for s in steps if isinstance(s.event, TimerExpired)]
    assert timers and timers[0].state.node == "group:hunt"


def test_keys_one_per_prompt() -> None:
    steps = run(sample_flow(route="ivr:main", fallback="hangup"), "+1", "774")
    keys = [s.event.digit for s in steps if isinstance(s.event, Dtmf)]
    assert keys == ["7", "7", "4"]
    assert steps[-1].state.reached == "play:hours"


def test_channel_limit_and_unavailable() -> None:
    assert run(sample_flow(route="hangup", channels=1), "+1", active_calls=1)[-1].state.disposition == "busy"
    assert simulate(sample_flow(), "+1")[-1] == "end: failed, reached -"


def test_only_first_answering_leg_answers() -> None:
    steps = run(sample_flow(route="group:sales"), "+1")
    answered = [s.event.leg_id for s in steps if isinstance(s.event, LegAnswered)]
    assert answered == ["sim-leg-1"]
    assert not any(isinstance(s.event, LegFailed) for s in steps)


def test_nobody_answers_hangs_up_without_a_prompt() -> None:
    lines = simulate(sample_flow(route="sip:alice"), "+1", no_answer={"sip:alice"})
    assert lines[-2:] == ["  2. timer sim-t-1 expires -> hang up sim-leg-1 (timeout); hang up caller (cause 16)",
                          "end: missed, reached sip:alice"]

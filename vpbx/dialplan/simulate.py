"""Dry run: drive a Flow through the real `step()` with a scripted environment and describe every step.

Rule: pure. The environment is a queue of events computed from the actions, nothing real: playbacks finish at once;
DTMF keys are pressed one per IVR prompt (in an `--extensions` IVR, everything up to and including the next '#') once
the prompt has finished; a dialled target whose destination string is in `busy` fails busy, one in `no_answer` rings
until its timer expires, any other rings and answers (in a simultaneous forward only the first such leg answers,
the others keep ringing); recordings last `vm_seconds`; when nothing else is pending the running timer expires; a
bridged caller hangs up at once (the conversation is not simulated). The run stops when the call finishes. The
call starts at `at` (UTC epoch seconds; business hours are decided by it) and every step takes one second.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from vpbx.dialplan.machine import start, step
from vpbx.dialplan.model import (
    CALLER,
    Action,
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
    Hold,
    IvrNode,
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
    ScheduleNode,
    StartMoh,
    StartRingback,
    StartTimer,
    StopMoh,
    StopPlayback,
    StopRingback,
    TimerExpired,
    Unhold,
)

MAX_STEPS = 1000


@dataclass(frozen=True)
class SimStep:
    """One step of a dry run: `event` (None for the call's start), the state after it and the actions it produced."""

    event: Event | None
    state: CallState
    actions: tuple[Action, ...]


def run(
    flow: Flow,
    caller: str,
    dtmf: str = "",
    no_answer: set[str] | frozenset[str] = frozenset(),
    busy: set[str] | frozenset[str] = frozenset(),
    call_id: str = "sim",
    vm_seconds: float = 5.0,
    active_calls: int = 0,
    at: float = 0.0,
) -> list[SimStep]:
    """Run the scripted call and return every step (the first has event None: the call's start)."""
    keys = deque(dtmf)
    queue: deque[Event] = deque()
    state, actions = start(flow, call_id, caller, active_calls, now=at)
    steps = [SimStep(None, state, tuple(actions))]
    _react(state, actions, queue, keys, no_answer, busy, vm_seconds)
    while not state.finished and len(steps) < MAX_STEPS:
        if queue:
            event: Event = queue.popleft()
        elif state.timer_id is not None:
            event = TimerExpired(state.timer_id)
        else:
            event = CallerHungUp()   # nothing left to happen: the caller gives up
        state, actions = step(state, event, now=at + len(steps))
        steps.append(SimStep(event, state, tuple(actions)))
        _react(state, actions, queue, keys, no_answer, busy, vm_seconds)
    return steps


def _react(
    state: CallState,
    actions: list[Action],
    queue: deque[Event],
    keys: deque[str],
    no_answer: set[str] | frozenset[str],
    busy: set[str] | frozenset[str],
    vm_seconds: float,
) -> None:
    """Queue what the scripted world does in answer to `actions`."""
    answering: list[str] = []
    for action in actions:
        if isinstance(action, Play):
            queue.append(PlaybackFinished(action.playback_id))
        elif isinstance(action, StopPlayback):
            _drop(queue, _is_playback(action.playback_id))
        elif isinstance(action, Dial):
            dest = action.target.dest
            if dest in busy:
                queue.append(LegFailed(action.leg_id, "busy"))
            else:
                queue.append(LegRinging(action.leg_id))
                if dest not in no_answer:
                    answering.append(action.leg_id)
        elif isinstance(action, HangupLeg):
            _drop(queue, _is_about_leg(action.leg_id))
        elif isinstance(action, Record):
            queue.append(RecordingFinished(action.name, vm_seconds))
        elif isinstance(action, Bridge):
            queue.append(CallerHungUp())
    if answering:
        queue.append(LegAnswered(answering[0]))
    # Keys: pressed once an IVR waits for the first key of an attempt.
    node = state.flow.nodes.get(state.node) if state.node is not None else None
    started_wait = any(isinstance(a, StartTimer) for a in actions)
    if state.phase == "ivr_waiting" and not state.digits and started_wait and not queue and keys:
        assert isinstance(node, IvrNode)
        if node.extensions is None:
            queue.append(Dtmf(keys.popleft()))
        else:
            while keys:
                key = keys.popleft()
                queue.append(Dtmf(key))
                if key == "#":
                    break


def _is_playback(playback_id: str) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, PlaybackFinished) and e.playback_id == playback_id


def _is_about_leg(leg_id: str) -> Callable[[Event], bool]:
    return lambda e: getattr(e, "leg_id", None) == leg_id


def _drop(queue: deque[Event], predicate: Callable[[Event], bool]) -> None:
    kept = [e for e in queue if not predicate(e)]
    queue.clear()
    queue.extend(kept)


def simulate(
    flow: Flow,
    caller: str,
    dtmf: str = "",
    no_answer: set[str] | frozenset[str] = frozenset(),
    busy: set[str] | frozenset[str] = frozenset(),
    at: float = 0.0,
) -> list[str]:
    """Dry-run a call from `caller` to `flow`'s number, starting at `at` (UTC epoch seconds); one human-readable line
    per step (with the business-hours decisions it took), then a summary line."""
    steps = run(flow, caller, dtmf, no_answer, busy, at=at)
    lines = []
    previous: CallState | None = None
    for i, s in enumerate(steps):
        context = previous or s.state
        what = f"call from {caller} to {flow.number}" if s.event is None else describe_event(s.event, context)
        decisions = s.state.decisions if s.state is not previous else ()    # an ignored event decides nothing
        done = "; ".join([*(describe_decision(flow, d, s.state.clock) for d in decisions),
                          *(describe_action(a) for a in s.actions)]) or "nothing"
        lines.append(f"{i:>3}. {what} -> {done}")
        previous = s.state
    last = steps[-1].state
    if last.finished:
        lines.append(f"end: {last.disposition}, reached {last.reached or '-'}")
    else:  # pragma: no cover - only a flow looping past MAX_STEPS
        lines.append(f"stopped after {len(steps)} steps, call still in phase {last.phase}")
    return lines


def _leg_dest(state: CallState, leg_id: str) -> str:
    leg = state.leg(leg_id)
    return f"{leg_id} ({leg.target.dest})" if leg is not None else leg_id


def _party(state: CallState, party: str) -> str:
    return "caller" if party == CALLER else _leg_dest(state, party)


def describe_event(event: Event, state: CallState) -> str:
    """One event in words; `state` (the state the event was fed to) names legs by destination."""
    if isinstance(event, PlaybackFinished):
        return f"playback {event.playback_id} finished"
    if isinstance(event, Dtmf):
        return f"caller presses {event.digit}"
    if isinstance(event, TimerExpired):
        return f"timer {event.timer_id} expires"
    if isinstance(event, LegRinging):
        return f"{_leg_dest(state, event.leg_id)} rings"
    if isinstance(event, LegAnswered):
        return f"{_leg_dest(state, event.leg_id)} answers"
    if isinstance(event, LegFailed):
        return f"{_leg_dest(state, event.leg_id)} fails: {event.reason}"
    if isinstance(event, LegHungUp):
        return f"{_leg_dest(state, event.leg_id)} hangs up"
    if isinstance(event, CallerHungUp):
        return "caller hangs up"
    if isinstance(event, RecordingFinished):
        return f"recording {event.name} finished ({event.duration_s:g}s)"
    if isinstance(event, RecordingFailed):
        return f"recording {event.name} failed"
    if isinstance(event, Hold):
        return f"{_party(state, event.party)} puts the call on hold"
    if isinstance(event, Unhold):
        return f"{_party(state, event.party)} resumes the call"
    return repr(event)  # pragma: no cover


def describe_decision(flow: Flow, decision: tuple[str, bool], instant: float) -> str:
    """A business-hours decision in words: "schedule office closed at Thu 2026-12-31 10:00 Europe/Kyiv (closed date
    2026-12-31) -> voicemail"."""
    node_id, is_open = decision
    node = flow.node(node_id)
    assert isinstance(node, ScheduleNode)
    return f"schedule {node.hours.name} {node.hours.explain(instant)} -> {node.open if is_open else node.closed}"


def describe_action(action: Action) -> str:
    """One action in words."""
    if isinstance(action, Answer):
        return "answer"
    if isinstance(action, Ring):
        return "ringback to caller"
    if isinstance(action, StartRingback):
        return f"in-band ringing to caller [{action.playback_id}]"
    if isinstance(action, StopRingback):
        return f"stop ringing [{action.playback_id}]"
    if isinstance(action, Play):
        return f"play {action.media} [{action.playback_id}]"
    if isinstance(action, StopPlayback):
        return f"stop playback {action.playback_id}"
    if isinstance(action, StartTimer):
        return f"start timer {action.timer_id} ({action.seconds:g}s)"
    if isinstance(action, CancelTimer):
        return f"cancel timer {action.timer_id}"
    if isinstance(action, Dial):
        return f"dial {action.target.dest} as {action.leg_id} ({action.timeout:g}s)"
    if isinstance(action, HangupLeg):
        return f"hang up {action.leg_id} ({action.reason})"
    if isinstance(action, Bridge):
        return f"bridge caller with {action.leg_id}"
    if isinstance(action, Record):
        return f"record {action.name} (max {action.max_seconds}s, silence {action.max_silence}s)"
    if isinstance(action, DeliverVoicemail):
        to = ", ".join(action.emails) or "no e-mail address"
        return f"deliver voicemail {action.name} ({action.duration:g}s) to {to}"
    if isinstance(action, DiscardRecording):
        return f"discard recording {action.name}"
    if isinstance(action, Hangup):
        return f"hang up caller (cause {action.cause})"
    if isinstance(action, StartMoh):
        return f"music on hold ({action.moh_class}) to {action.party}"
    if isinstance(action, StopMoh):
        return f"stop music on hold to {action.party}"
    return repr(action)  # pragma: no cover

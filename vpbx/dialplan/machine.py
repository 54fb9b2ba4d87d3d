"""The call state machine: `start()` / `adopt()` open a call, `step()` advances it by one event.

Rule: pure functions from (state, event) to (new state, actions). No I/O, no clock (time comes in as `now`), no
mutation (CallState is frozen; every change is a `dataclasses.replace`).

Ignored events. An event that does not apply is ignored: `step` returns the *same* state object and no actions. That
covers a stale id (PlaybackFinished for a playback that was stopped or replaced, TimerExpired for a cancelled timer,
leg events for unknown legs or legs already hung up, RecordingFinished for another recording), an event that means
nothing in the current phase (a key outside an IVR, a playback ending while forwarding), junk DTMF (anything but
0-9 * # A-D), and every event after the call finished. Only a non-Event object raises (TypeError): that is a bug in
the caller, not a call condition.

Exception: LegAnswered for a known leg the call no longer wants (lost the race, timed out, already hung up) answers
HangupLeg for it, because a stray answered leg would otherwise stay up. After `finished` even that is ignored: the
edge must hang up any leg of a finished call itself.

Ringback. While legs ring, a caller not yet answered gets Ring (the network plays ringing); an answered one (e.g.
forwarded from an IVR) gets StartRingback, in-band ringing the machine stops (StopRingback) before it bridges,
plays, records or hangs up, and when the call finishes.

Hold. While bridged, a party that puts the call on hold (Hold: the caller or the bridged leg) makes the other party
hear music (StartMoh); Unhold stops it (StopMoh). Each party hears music exactly while the other holds; a repeated
Hold or Unhold, one from a leg that is not the bridged one, or one outside the bridged phase is ignored. When the
call ends its channels are hung up, which ends any music: no StopMoh is sent then.

Business hours. Entering a ScheduleNode decides at once by `state.clock` (the `now` given to start()/step()) and
enters its open or closed node; `state.decisions` holds the (node id, open?) pairs of the last start()/step().

Once `finished` is True the machine emits nothing further. A caller hanging up mid-recording does not finish the
call: the phase becomes `vm_orphaned` and the call finishes on RecordingFinished (delivered if long enough) or
RecordingFailed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from vpbx.dialplan.model import (
    CALLER,
    CAUSE_BUSY,
    CAUSE_CALL_REJECTED,
    CAUSE_NORMAL,
    CAUSE_OUT_OF_ORDER,
    CAUSE_UNALLOCATED,
    DTMF_DIGITS,
    EVENT_TYPES,
    MAX_EXTENSION_DIGITS,
    PROMPT_GOODBYE,
    PROMPT_VM_INTRO,
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
    ForwardNode,
    HandedOver,
    Hangup,
    HangupLeg,
    HangupNode,
    Hold,
    IvrNode,
    Leg,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    Node,
    Play,
    PlayAndHangupNode,
    PlaybackFinished,
    PlayNode,
    Record,
    RecordCall,
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
    Target,
    TimerExpired,
    Unhold,
    VoicemailNode,
    prompt_media,
)

Actions = list[Action]
# A handler returns the new state (actions appended to the list) or None for "ignore this event".
Handler = Callable[[CallState, Event, Actions], "CallState | None"]


# --------------------------------------------------------------------------------------------------------------------
# Public entry points


def start(flow: Flow, call_id: str, caller: str, active_calls: int, now: float = 0.0,
          answered: bool = False) -> tuple[CallState, list[Action]]:
    """Open a new call to `flow`'s number.

    `active_calls` counts the calls already in progress on the number (not this one); at or above `flow.channels` the
    caller gets Hangup(17) and disposition "busy". `answered`: the caller's channel is up already (a party handed
    over by a transfer): it hears in-band ringing while targets ring, and is never answered again.
    """
    state = CallState(flow=flow, call_id=call_id, caller=caller, prefix=call_id, phase="new", started_at=now, clock=now,
                      answered=answered, answered_at=now if answered else None)
    actions: Actions = []
    if active_calls >= flow.channels:
        state = _finish(replace(state, disposition="busy"), actions, CAUSE_BUSY)
        return state, actions
    state = _enter(state, flow.start, actions)
    return state, actions


def adopt(
    flow: Flow,
    call_id: str,
    caller: str,
    answered: bool,
    now: float = 0.0,
    restart: int = 1,
    at: str | None = None,
) -> tuple[CallState, list[Action]]:
    """Take over a call that was in progress when the engine restarted (not a bridged one: `adopt_talking`).

    The call restarts at a safe point: node `at` if given and known (e.g. the IVR it was in, from `state.node` of a
    snapshot), else the number's route; the greeting is played again only if the caller was not yet answered. Ids
    get the prefix f"{call_id}-r{restart}" so they cannot collide with ids issued before the restart; pass a higher
    `restart` if the same call is adopted again. The channel limit is not checked (the call already holds its channel).
    """
    state = CallState(
        flow=flow, call_id=call_id, caller=caller, prefix=f"{call_id}-r{restart}", phase="new", started_at=now,
        clock=now, answered=answered, answered_at=now if answered else None,
    )
    node_id = at if at is not None and at in flow.nodes else flow.route_start if answered else flow.start
    actions: Actions = []
    state = _enter(state, node_id, actions)
    return state, actions


def adopt_talking(
    flow: Flow,
    call_id: str,
    caller: str,
    leg: Leg,
    answered_at: float,
    connected_at: float,
    now: float = 0.0,
    restart: int = 1,
) -> tuple[CallState, list[Action]]:
    """Take over a call whose caller was bridged with `leg` (status "answered") when the engine restarted: the two
    kept talking in Asterisk's bridge meanwhile, so nothing is done now (no leg hung up, no re-dial, no new bridge).
    The call goes on as "bridged" with its original answer and connect times (the record's billsec stays true):
    either party hanging up hangs up the other, and hold works as before. Ids get the prefix f"{call_id}-r{restart}".
    """
    state = CallState(
        flow=flow, call_id=call_id, caller=caller, prefix=f"{call_id}-r{restart}", phase="bridged",
        started_at=now, clock=now, answered=True, answered_at=answered_at, connected_at=connected_at,
        reached=leg.target.dest, disposition="answered", legs=(replace(leg, status="answered"),),
        bridged_leg=leg.leg_id,
    )
    return state, []


def reject_unknown() -> list[Action]:
    """Actions for a call to a number vpbx does not serve (no Flow): hang up with cause 1 (unallocated number)."""
    return [Hangup(cause=CAUSE_UNALLOCATED)]


def reject_forbidden() -> list[Action]:
    """Actions for an outbound call a toll-fraud guard refuses (vpbx.dialplan.outbound): hang up with cause 21 (call
    rejected; the phone is told 403 Forbidden), before anything is dialled."""
    return [Hangup(cause=CAUSE_CALL_REJECTED)]


def reject_broken() -> list[Action]:
    """Actions for a call to a number of this install whose flow does not load (its routing names something that
    is gone, e.g. a removed IVR): hang up with cause 27 (destination out of order), so the carrier can try elsewhere."""
    return [Hangup(cause=CAUSE_OUT_OF_ORDER)]


def step(state: CallState, event: Event, now: float | None = None) -> tuple[CallState, list[Action]]:
    """Advance the call by one event. Ignored events return `state` itself and no actions (see module docstring)."""
    if not isinstance(event, EVENT_TYPES):
        raise TypeError(f"step() needs a dialplan event, got {event!r}")
    if state.finished:
        return state, []
    handler = _handler(state, event)
    if handler is None:
        return state, []
    actions: Actions = []
    working = state if now is None else replace(state, clock=now)
    if working.decisions:
        working = replace(working, decisions=())   # the schedule decisions of this step only
    new = handler(working, event, actions)
    if new is None:
        return state, []
    return new, actions


# --------------------------------------------------------------------------------------------------------------------
# Dispatch table: (phase, event type) -> handler. Leg events and CallerHungUp are handled in any phase.


def _handler(state: CallState, event: Event) -> Handler | None:
    kind = type(event)
    if kind is CallerHungUp:
        return _on_caller_hangup
    if kind in (LegRinging, LegAnswered, LegFailed, LegHungUp):
        return _LEG_HANDLERS[kind]
    return _TABLE.get((state.phase, kind))


def _ids_ok(handler: Handler, attr: str, state_attr: str) -> Handler:
    """Wrap `handler` so that it only sees events whose `attr` id matches the state's current `state_attr` id."""

    def checked(state: CallState, event: Event, actions: Actions) -> CallState | None:
        if getattr(event, attr) != getattr(state, state_attr) or getattr(state, state_attr) is None:
            return None
        return handler(state, event, actions)

    return checked


# --------------------------------------------------------------------------------------------------------------------
# Helpers


def _node(state: CallState) -> Node:
    assert state.node is not None
    return state.flow.node(state.node)


def _answer(state: CallState, actions: Actions) -> CallState:
    if state.answered:
        return state
    actions.append(Answer())
    answered_at = state.answered_at if state.answered_at is not None else state.clock
    return replace(state, answered=True, answered_at=answered_at)


def _play(state: CallState, media: str, phase: str, actions: Actions) -> CallState:
    n = state.n_playback + 1
    playback_id = f"{state.prefix}-pb-{n}"
    actions.append(Play(playback_id, media))
    return replace(state, n_playback=n, playback_id=playback_id, phase=phase)


def _stop_playback(state: CallState, actions: Actions) -> CallState:
    if state.playback_id is None:
        return state
    actions.append(StopPlayback(state.playback_id))
    return replace(state, playback_id=None)


def _start_ringback(state: CallState, actions: Actions) -> CallState:
    """In-band ringing for an answered caller while legs ring (an unanswered one gets Ring: the network rings)."""
    if state.ringback is not None:
        return state
    ringback = f"{state.prefix}-rb-{state.n_leg + 1}"     # the leg about to be dialled names it: unique per call
    actions.append(StartRingback(ringback))
    return replace(state, ringback=ringback)


def _stop_ringback(state: CallState, actions: Actions) -> CallState:
    if state.ringback is None:
        return state
    actions.append(StopRingback(state.ringback))
    return replace(state, ringback=None)


def _start_timer(state: CallState, seconds: float, actions: Actions) -> CallState:
    state = _cancel_timer(state, actions)
    n = state.n_timer + 1
    timer_id = f"{state.prefix}-t-{n}"
    actions.append(StartTimer(timer_id, seconds))
    return replace(state, n_timer=n, timer_id=timer_id)


def _cancel_timer(state: CallState, actions: Actions) -> CallState:
    if state.timer_id is None:
        return state
    actions.append(CancelTimer(state.timer_id))
    return replace(state, timer_id=None)


def _set_leg(state: CallState, leg_id: str, status: str) -> CallState:
    legs = tuple(replace(leg, status=status) if leg.leg_id == leg_id else leg for leg in state.legs)
    return replace(state, legs=legs)


def _hangup_live_legs(state: CallState, reason: str, actions: Actions, keep: str | None = None) -> CallState:
    for leg in state.live_legs:
        if leg.leg_id != keep:
            actions.append(HangupLeg(leg.leg_id, reason))
            state = _set_leg(state, leg.leg_id, "hungup")
    return state


def _finish(state: CallState, actions: Actions, cause: int | None) -> CallState:
    """End the call: stop the playback (and ringback), cancel the timer, hang up live legs, then the caller (if
    `cause`)."""
    state = _stop_ringback(state, actions)
    state = _stop_playback(state, actions)
    state = _cancel_timer(state, actions)
    state = _hangup_live_legs(state, "normal", actions)
    if cause is not None:
        actions.append(Hangup(cause))
    return replace(
        state, phase="finished", finished=True, ended_at=state.clock, recording=None, digits="", holding=(),
        disposition=state.disposition or "missed",
    )


# --------------------------------------------------------------------------------------------------------------------
# Entering nodes


def _enter(state: CallState, node_id: str, actions: Actions) -> CallState:
    node = state.flow.node(node_id)
    if isinstance(node, ScheduleNode):   # business hours: decided now, by the call's clock; the call goes on at once
        is_open = node.hours.is_open(state.clock)
        state = replace(state, decisions=(*state.decisions, (node_id, is_open)))
        return _enter(state, node.open if is_open else node.closed, actions)
    state = replace(state, node=node_id, failures=0, digits="")
    if not isinstance(node, ForwardNode):
        state = _stop_ringback(state, actions)   # ringing only while legs ring; stopped before a prompt or hang-up
    if node.dest is not None:
        state = replace(state, reached=node.dest)
    if isinstance(node, PlayNode):
        return _play(_answer(state, actions), node.media, "playing", actions)
    if isinstance(node, IvrNode):
        return _ivr_prompt(_answer(state, actions), node, actions)
    if isinstance(node, ForwardNode):
        return _enter_forward(state, node, actions)
    if isinstance(node, VoicemailNode):
        return _play(_answer(state, actions), prompt_media(PROMPT_VM_INTRO), "vm_intro", actions)
    if isinstance(node, PlayAndHangupNode):
        if node.disposition is not None:
            state = replace(state, disposition=node.disposition)
        return _play(_answer(state, actions), node.media, "closing", actions)
    if isinstance(node, HangupNode):
        return _finish(state, actions, node.cause)
    raise TypeError(f"unknown node type {node!r}")  # pragma: no cover - compile never builds one


# --------------------------------------------------------------------------------------------------------------------
# Playbacks


def _on_play_done(state: CallState, event: Event, actions: Actions) -> CallState | None:
    state = replace(state, playback_id=None)
    node = _node(state)
    if state.phase == "playing":
        assert isinstance(node, PlayNode)
        return _enter(state, node.next, actions)
    if state.phase == "closing":
        return _finish(state, actions, CAUSE_NORMAL)
    if state.phase == "ivr_prompt":
        assert isinstance(node, IvrNode)
        return replace(_start_timer(state, node.timeout, actions), phase="ivr_waiting")
    if state.phase == "ivr_invalid":
        assert isinstance(node, IvrNode)
        return _ivr_prompt(state, node, actions)
    if state.phase == "vm_intro":
        assert isinstance(node, VoicemailNode)
        n = state.n_recording + 1
        name = f"{state.prefix}-vm-{n}"
        actions.append(Record(name, node.max_seconds, node.max_silence, beep=True, terminate_on="#"))
        return replace(state, n_recording=n, recording=name, phase="vm_recording")
    return None  # pragma: no cover - the table only routes the phases above here


# --------------------------------------------------------------------------------------------------------------------
# IVR


def _ivr_prompt(state: CallState, node: IvrNode, actions: Actions) -> CallState:
    """(Re)play the menu prompt; a prompt-less menu starts waiting for a key at once."""
    state = replace(state, digits="")
    if node.prompt is None:
        return replace(_start_timer(state, node.timeout, actions), phase="ivr_waiting")
    return _play(state, node.prompt, "ivr_prompt", actions)


def _on_ivr_dtmf(state: CallState, event: Event, actions: Actions) -> CallState | None:
    assert isinstance(event, Dtmf)
    if event.digit not in DTMF_DIGITS:
        return None
    node = _node(state)
    assert isinstance(node, IvrNode)
    state = _stop_playback(state, actions)  # a key during a prompt interrupts it
    state = _cancel_timer(state, actions)
    if node.extensions is None:
        target = node.options.get(event.digit)
        return _enter(state, target, actions) if target is not None else _ivr_failure(state, node, True, actions)
    if event.digit == "#":
        return _ivr_lookup(state, node, state.digits or "#", actions)
    digits = state.digits + event.digit
    if len(digits) >= MAX_EXTENSION_DIGITS:
        return _ivr_lookup(state, node, digits, actions)
    state = _start_timer(replace(state, digits=digits), node.digit_timeout, actions)
    return replace(state, phase="ivr_waiting")


def _ivr_lookup(state: CallState, node: IvrNode, typed: str, actions: Actions) -> CallState:
    target = node.options.get(typed)
    if target is None and node.extensions is not None:
        target = node.extensions.get(typed)
    if target is None:
        return _ivr_failure(state, node, True, actions)
    return _enter(state, target, actions)


def _on_ivr_timer(state: CallState, event: Event, actions: Actions) -> CallState | None:
    state = replace(state, timer_id=None)
    node = _node(state)
    assert isinstance(node, IvrNode)
    if state.digits:
        return _ivr_lookup(state, node, state.digits, actions)
    return _ivr_failure(state, node, False, actions)


def _ivr_failure(state: CallState, node: IvrNode, invalid: bool, actions: Actions) -> CallState:
    """A wrong key (`invalid`) or a timeout. More than `retries` failures -> the fallback."""
    failures = state.failures + 1
    state = replace(state, failures=failures, digits="")
    if failures > node.retries:
        return _enter(state, node.fallback, actions)
    if invalid:
        return _play(state, node.invalid_prompt, "ivr_invalid", actions)
    return _ivr_prompt(state, node, actions)


# --------------------------------------------------------------------------------------------------------------------
# Forwarding


def _enter_forward(state: CallState, node: ForwardNode, actions: Actions) -> CallState:
    state = replace(state, phase="forwarding", next_target=0)
    if not node.targets:
        return _enter(state, node.fallback, actions)
    if state.answered:
        state = _start_ringback(state, actions)
    else:
        actions.append(Ring())
    if node.mode == "sequential":
        return _dial_next(state, node, actions)
    for target in node.targets:
        state = _dial(state, target, node.timeout, actions)
    return _start_timer(state, node.timeout, actions)


def _dial(state: CallState, target: Target, timeout: float, actions: Actions) -> CallState:
    n = state.n_leg + 1
    leg_id = f"{state.prefix}-leg-{n}"
    actions.append(Dial(leg_id, target, timeout))
    return replace(state, n_leg=n, legs=(*state.legs, Leg(leg_id, target)))


def _dial_next(state: CallState, node: ForwardNode, actions: Actions) -> CallState:
    """Sequential: dial the next target with its own timer, or fall back when the list is exhausted."""
    state = _cancel_timer(state, actions)
    if state.next_target >= len(node.targets):
        return _enter(state, node.fallback, actions)
    state = _dial(state, node.targets[state.next_target], node.timeout, actions)
    state = replace(state, next_target=state.next_target + 1)
    return _start_timer(state, node.timeout, actions)


def _forward_lost_leg(state: CallState, actions: Actions) -> CallState:
    """A leg failed or hung up before answering: sequential -> next target; simultaneous -> fallback once none live."""
    node = _node(state)
    assert isinstance(node, ForwardNode)
    if node.mode == "sequential":
        state = _hangup_live_legs(state, "normal", actions)
        return _dial_next(state, node, actions)
    if state.live_legs:
        return state
    return _enter(_cancel_timer(state, actions), node.fallback, actions)


def _on_forward_timer(state: CallState, event: Event, actions: Actions) -> CallState | None:
    state = replace(state, timer_id=None)
    node = _node(state)
    assert isinstance(node, ForwardNode)
    state = _hangup_live_legs(state, "timeout", actions)
    if node.mode == "sequential":
        return _dial_next(state, node, actions)
    return _enter(state, node.fallback, actions)


def _on_leg_ringing(state: CallState, event: Event, actions: Actions) -> CallState | None:
    assert isinstance(event, LegRinging)
    leg = state.leg(event.leg_id)
    if leg is None or leg.status != "dialing":
        return None
    return _set_leg(state, leg.leg_id, "ringing")


def _on_leg_answered(state: CallState, event: Event, actions: Actions) -> CallState | None:
    assert isinstance(event, LegAnswered)
    leg = state.leg(event.leg_id)
    if leg is None or leg.status == "answered":
        return None
    if state.phase == "forwarding" and leg.live:
        # First answer wins.
        state = _cancel_timer(state, actions)
        state = _stop_ringback(state, actions)
        actions.append(Bridge(leg.leg_id))
        if state.flow.record:
            actions.append(RecordCall())
        state = _set_leg(state, leg.leg_id, "answered")
        state = _hangup_live_legs(state, "answered_elsewhere", actions, keep=leg.leg_id)
        return replace(
            state, phase="bridged", bridged_leg=leg.leg_id, answered=True,
            answered_at=state.answered_at if state.answered_at is not None else state.clock,
            connected_at=state.clock, reached=leg.target.dest, disposition="answered",
        )
    # Answered too late (lost the race, timed out, or we already hung it up): hang it up.
    actions.append(HangupLeg(leg.leg_id, "answered_elsewhere" if state.bridged_leg else "normal"))
    return _set_leg(state, leg.leg_id, "hungup")


def _on_leg_gone(state: CallState, event: Event, actions: Actions) -> CallState | None:
    assert isinstance(event, (LegFailed, LegHungUp))
    leg = state.leg(event.leg_id)
    if leg is None or not leg.live:
        return None
    state = _set_leg(state, leg.leg_id, "failed" if isinstance(event, LegFailed) else "gone")
    if leg.status == "answered":
        # The bridged party hung up: so does the caller.
        return _finish(state, actions, CAUSE_NORMAL)
    if state.phase == "forwarding":
        return _forward_lost_leg(state, actions)
    return state  # pragma: no cover - live unanswered legs exist only while forwarding


# --------------------------------------------------------------------------------------------------------------------
# Voicemail


def _on_recording_finished(state: CallState, event: Event, actions: Actions) -> CallState | None:
    assert isinstance(event, RecordingFinished)
    node = _node(state)
    assert isinstance(node, VoicemailNode)
    if event.duration_s >= node.min_seconds:
        actions.append(DeliverVoicemail(event.name, node.emails, event.duration_s))
        state = replace(state, voicemail=True, disposition="voicemail")
    else:
        actions.append(DiscardRecording(event.name))
    return _after_recording(state, actions)


def _on_recording_failed(state: CallState, event: Event, actions: Actions) -> CallState | None:
    return _after_recording(state, actions)


def _after_recording(state: CallState, actions: Actions) -> CallState:
    state = replace(state, recording=None)
    if state.phase == "vm_orphaned":
        return _finish(state, actions, None)
    return _play(state, prompt_media(PROMPT_GOODBYE), "closing", actions)


# --------------------------------------------------------------------------------------------------------------------
# Hold


def _other_party(state: CallState, party: str) -> str | None:
    """The bridged party facing `party`, or None when `party` is not one of the two."""
    assert state.bridged_leg is not None
    if party == CALLER:
        return state.bridged_leg
    return CALLER if party == state.bridged_leg else None


def _on_hold(state: CallState, event: Event, actions: Actions) -> CallState | None:
    assert isinstance(event, Hold)
    other = _other_party(state, event.party)
    if other is None or event.party in state.holding:
        return None
    actions.append(StartMoh(other))
    return replace(state, holding=(*state.holding, event.party))


def _on_unhold(state: CallState, event: Event, actions: Actions) -> CallState | None:
    assert isinstance(event, Unhold)
    other = _other_party(state, event.party)
    if other is None or event.party not in state.holding:
        return None
    actions.append(StopMoh(other))
    return replace(state, holding=tuple(p for p in state.holding if p != event.party))


# --------------------------------------------------------------------------------------------------------------------
# Caller hang-up


def _on_caller_hangup(state: CallState, event: Event, actions: Actions) -> CallState | None:
    if state.phase == "vm_orphaned":
        return None
    if state.phase == "vm_recording":
        # The recording ends with the channel; Asterisk keeps the file. Wait for RecordingFinished to deliver it.
        return replace(state, phase="vm_orphaned")
    return _finish(state, actions, None)


# --------------------------------------------------------------------------------------------------------------------
# Transfers


def _on_handed_over(state: CallState, event: Event, actions: Actions) -> CallState | None:
    assert isinstance(event, HandedOver)
    if event.party == CALLER:
        # the bridged leg transferred the caller: the leg is hung up, the caller goes on in another call
        state = _finish(state, actions, None)
    elif event.party == state.bridged_leg:
        # the caller transferred the bridged leg: the caller is hung up, the leg goes on in another call
        state = _set_leg(state, event.party, "gone")
        state = _finish(state, actions, CAUSE_NORMAL)
    else:
        return None
    return replace(state, disposition="transferred")


_LEG_HANDLERS: dict[type, Handler] = {
    LegRinging: _on_leg_ringing,
    LegAnswered: _on_leg_answered,
    LegFailed: _on_leg_gone,
    LegHungUp: _on_leg_gone,
}

_play_done = _ids_ok(_on_play_done, "playback_id", "playback_id")
_ivr_timer = _ids_ok(_on_ivr_timer, "timer_id", "timer_id")
_forward_timer = _ids_ok(_on_forward_timer, "timer_id", "timer_id")
_rec_finished = _ids_ok(_on_recording_finished, "name", "recording")
_rec_failed = _ids_ok(_on_recording_failed, "name", "recording")

_TABLE: dict[tuple[str, type], Handler] = {
    ("playing", PlaybackFinished): _play_done,
    ("closing", PlaybackFinished): _play_done,
    ("ivr_prompt", PlaybackFinished): _play_done,
    ("ivr_invalid", PlaybackFinished): _play_done,
    ("vm_intro", PlaybackFinished): _play_done,
    ("ivr_prompt", Dtmf): _on_ivr_dtmf,
    ("ivr_invalid", Dtmf): _on_ivr_dtmf,
    ("ivr_waiting", Dtmf): _on_ivr_dtmf,
    ("ivr_waiting", TimerExpired): _ivr_timer,
    ("forwarding", TimerExpired): _forward_timer,
    ("vm_recording", RecordingFinished): _rec_finished,
    ("vm_orphaned", RecordingFinished): _rec_finished,
    ("vm_recording", RecordingFailed): _rec_failed,
    ("vm_orphaned", RecordingFailed): _rec_failed,
    ("bridged", Hold): _on_hold,
    ("bridged", Unhold): _on_unhold,
    ("bridged", HandedOver): _on_handed_over,
}

"""Test helpers for code that drives the machine: a Ledger of what the edge would hold live, `drive()`, sample flows.

Rule: pure, like the rest of the package. The Ledger sees only actions and events (never CallState), so it checks the
machine from the outside: every leg dialled is eventually hung up or gone, every timer started is cancelled or expired,
every playback started is stopped or finished, music on hold plays to a party at most once and stops (or the
party's channel goes).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from vpbx.dialplan.compile import compile_flow
from vpbx.dialplan.machine import step
from vpbx.dialplan.model import (
    CALLER,
    Action,
    Bridge,
    CallerHungUp,
    CallState,
    CancelTimer,
    DeliverVoicemail,
    Dial,
    DiscardRecording,
    Event,
    Flow,
    HandedOver,
    Hangup,
    HangupLeg,
    LegFailed,
    LegHungUp,
    Play,
    PlaybackFinished,
    Record,
    RecordingFailed,
    RecordingFinished,
    StartMoh,
    StartTimer,
    StopMoh,
    StopPlayback,
    TimerExpired,
)
from vpbx.domain.records import Group, Ivr, Number


class LedgerError(AssertionError):
    """The machine asked for something inconsistent (e.g. cancelled a timer that is not running)."""


@dataclass
class Ledger:
    """What an edge following the actions would have live. Raises LedgerError on an inconsistent action."""

    legs: set[str] = field(default_factory=set)          # dialled, not yet hung up / failed / gone
    dialled: list[str] = field(default_factory=list)
    timers: set[str] = field(default_factory=set)
    playbacks: set[str] = field(default_factory=set)
    recordings: set[str] = field(default_factory=set)
    bridged: str | None = None
    caller_hangup: int | None = None                     # cause of Hangup, once sent
    caller_gone: bool = False                            # CallerHungUp seen
    delivered: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    used_ids: set[str] = field(default_factory=set)
    moh: set[str] = field(default_factory=set)            # parties hearing music on hold (CALLER or leg ids)

    def _new_id(self, ident: str) -> None:
        if ident in self.used_ids:
            raise LedgerError(f"id {ident} issued twice")
        self.used_ids.add(ident)

    def action(self, action: Action) -> None:
        if self.caller_hangup is not None:
            raise LedgerError(f"{action!r} after the caller was hung up")
        if isinstance(action, Dial):
            self._new_id(action.leg_id)
            self.legs.add(action.leg_id)
            self.dialled.append(action.leg_id)
        elif isinstance(action, HangupLeg):
            if action.leg_id not in self.dialled:
                raise LedgerError(f"hang-up of leg {action.leg_id} never dialled")
            self.legs.discard(action.leg_id)
            self.moh.discard(action.leg_id)
        elif isinstance(action, StartMoh):
            if action.party in self.moh:
                raise LedgerError(f"music on hold started twice for {action.party}")
            if action.party != CALLER and (action.party != self.bridged or action.party not in self.legs):
                raise LedgerError(f"music on hold for {action.party}, which is not the bridged leg")
            self.moh.add(action.party)
        elif isinstance(action, StopMoh):
            if action.party not in self.moh:
                raise LedgerError(f"stop of music on hold that {action.party} does not hear")
            self.moh.discard(action.party)
        elif isinstance(action, StartTimer):
            self._new_id(action.timer_id)
            if self.timers:
                raise LedgerError(f"timer {action.timer_id} started while {self.timers} still run")
            self.timers.add(action.timer_id)
        elif isinstance(action, CancelTimer):
            if action.timer_id not in self.timers:
                raise LedgerError(f"cancel of timer {action.timer_id} that is not running")
            self.timers.discard(action.timer_id)
        elif isinstance(action, Play):
            self._new_id(action.playback_id)
            if self.playbacks:
                raise LedgerError(f"playback {action.playback_id} started while {self.playbacks} still play")
            self.playbacks.add(action.playback_id)
        elif isinstance(action, StopPlayback):
            if action.playback_id not in self.playbacks:
                raise LedgerError(f"stop of playback {action.playback_id} that is not playing")
            self.playbacks.discard(action.playback_id)
        elif isinstance(action, Record):
            self._new_id(action.name)
            self.recordings.add(action.name)
        elif isinstance(action, DeliverVoicemail):
            self.delivered.append(action.name)
        elif isinstance(action, DiscardRecording):
            self.discarded.append(action.name)
        elif isinstance(action, Bridge):
            if action.leg_id not in self.legs:
                raise LedgerError(f"bridge with leg {action.leg_id} that is not live")
            self.bridged = action.leg_id
        elif isinstance(action, Hangup):
            self.caller_hangup = action.cause
            self.moh.clear()           # the call is over: every channel goes

    def event(self, event: Event) -> None:
        if isinstance(event, (LegFailed, LegHungUp)):
            self.legs.discard(event.leg_id)
            self.moh.discard(event.leg_id)
        elif isinstance(event, TimerExpired):
            self.timers.discard(event.timer_id)
        elif isinstance(event, PlaybackFinished):
            self.playbacks.discard(event.playback_id)
        elif isinstance(event, (RecordingFinished, RecordingFailed)):
            self.recordings.discard(event.name)
        elif isinstance(event, CallerHungUp):
            self.caller_gone = True
            self.moh.discard(CALLER)
        elif isinstance(event, HandedOver) and event.party in (CALLER, self.bridged):
            # a bridged party left for another call (the edge hands over only those): no longer this call's
            if event.party == CALLER:
                self.caller_gone = True
            else:
                self.legs.discard(event.party)
            self.moh.discard(event.party)

    def idle(self) -> bool:
        """Nothing left live: what must hold once the call is finished."""
        return not self.legs and not self.timers and not self.playbacks and not self.moh


def drive(state: CallState, events: list[Event], ledger: Ledger | None = None) -> tuple[CallState, list[Action]]:
    """Feed `events` to `state` one by one (through `ledger` if given); return the last state and all actions."""
    every: list[Action] = []
    for event in events:
        if ledger is not None:
            ledger.event(event)
        state, actions = step(state, event)
        if ledger is not None:
            for action in actions:
                ledger.action(action)
        every.extend(actions)
    return state, every


# --------------------------------------------------------------------------------------------------------------------
# Sample flows: one per routing shape, all on +380441234567 with SIP accounts alice, bob, carol.

SAMPLE_NUMBER = "+380441234567"
SAMPLE_LOGINS = frozenset({"alice", "bob", "carol"})
SAMPLE_GROUPS = {
    "sales": Group("sales", ("sip:alice", "sip:bob", "tel:+380501112233"), strategy="simultaneous", timeout=20),
    "hunt": Group("hunt", ("sip:alice", "sip:bob", "uri:sip:desk@pbx.example.com:5070"), strategy="sequential",
                  timeout=10),
}
SAMPLE_IVRS = {
    "main": Ivr("main", "main-menu", (("1", "group:sales"), ("2", "group:hunt"), ("3", "voicemail"),
                                      ("4", "play:hours"), ("5", "ivr:directory"), ("9", "ivr:main"), ("0", "hangup")),
                timeout=5, retries=2, invalid_prompt="bad-key"),
    "directory": Ivr("directory", "dir-menu", (("0", "ivr:main"),), timeout=6, retries=1, extensions=True),
    "silent": Ivr("silent", "", (("1", "sip:carol"),), timeout=4, retries=0),
}
SAMPLE_EXTENSIONS = {"101": "sip:alice", "102": "sip:bob", "2000": "group:hunt"}


def sample_number(**changes: object) -> Number:
    base = Number(SAMPLE_NUMBER, channels=2, vm_emails=("owner@example.com",))
    return replace(base, **changes)  # type: ignore[arg-type]


def sample_flow(**changes: object) -> Flow:
    """Compile sample_number(**changes) against the sample groups, IVRs, logins and extensions."""
    return compile_flow(sample_number(**changes), dict(SAMPLE_GROUPS), dict(SAMPLE_IVRS), set(SAMPLE_LOGINS),
                        dict(SAMPLE_EXTENSIONS))


def sample_flows() -> dict[str, Flow]:
    """One flow per routing shape, keyed by a short name."""
    return {
        "ivr": sample_flow(greeting="welcome", route="ivr:main", fallback="voicemail"),
        "ivr-hangup": sample_flow(route="ivr:main", fallback="hangup"),
        "directory": sample_flow(route="ivr:directory", fallback="play:sorry"),
        "silent-ivr": sample_flow(route="ivr:silent"),
        "group": sample_flow(route="group:sales", fallback="voicemail"),
        "hunt": sample_flow(greeting="welcome", route="group:hunt", fallback="play:sorry"),
        "forward-seq": sample_flow(forward_to=("sip:alice", "tel:+380501112233"), forward_mode="sequential",
                                   forward_timeout=15, fallback="voicemail"),
        "forward-sim": sample_flow(forward_to=("sip:bob", "uri:sip:x@example.com"), forward_timeout=25),
        "sip": sample_flow(route="sip:alice"),
        "voicemail": sample_flow(route="voicemail"),
        "play": sample_flow(greeting="welcome", route="play:closed"),
        "hangup": sample_flow(route="hangup"),
        "unavailable": sample_flow(greeting="welcome"),
    }

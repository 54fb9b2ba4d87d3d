"""vpbx.dialplan: the pure call-flow model (compile records into a Flow, run calls through a state machine, dry-run).

Rule: pure. Nothing in this package does I/O or imports anything that could (asyncio, httpx, websockets, sqlite, click,
rich, logging...), and of vpbx it imports only `vpbx.domain` (destination syntax, DTMF keys, records, errors). Like h11:
data in, data out; the ARI edge owns channels, timers and the clock. A test walks the package's imports to keep it
that way.

    compile.py   records -> Flow (ValidationError when a number's routing is broken)
    model.py     Flow and nodes, events (edge -> machine), actions (machine -> edge), CallState
    machine.py   start() / adopt() / step() / reject_unknown()
    simulate.py  simulate(): a scripted dry run, one line per step
    blocklist.py what a blocked caller hears: reject_blocked() (403) or blocked_flow() (a prompt, then hang-up)
"""
from __future__ import annotations

from vpbx.dialplan.compile import compile_flow
from vpbx.dialplan.machine import adopt, reject_unknown, start, step
from vpbx.dialplan.model import (
    EVENT_TYPES,
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
    RecordingFailed,
    RecordingFinished,
    Ring,
    ScheduleNode,
    StartMoh,
    StartTimer,
    StopMoh,
    StopPlayback,
    Target,
    TimerExpired,
    Unhold,
    VoicemailNode,
)
from vpbx.dialplan.simulate import simulate

__all__ = [
    "EVENT_TYPES", "Action", "Answer", "Bridge", "CallState", "CallerHungUp", "CancelTimer", "DeliverVoicemail",
    "Dial", "DiscardRecording", "Dtmf", "Event", "Flow", "ForwardNode", "HandedOver", "Hangup", "HangupLeg",
    "HangupNode", "Hold",
    "IvrNode", "Leg", "LegAnswered", "LegFailed", "LegHungUp", "LegRinging", "Node", "Play", "PlayAndHangupNode",
    "PlayNode", "PlaybackFinished", "Record", "RecordingFailed", "RecordingFinished", "Ring", "ScheduleNode",
    "StartMoh", "StartTimer",
    "StopMoh", "StopPlayback", "Target", "TimerExpired", "Unhold", "VoicemailNode", "adopt", "compile_flow",
    "reject_unknown", "simulate", "start", "step",
]

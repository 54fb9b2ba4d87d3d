"""Call-flow data: flows and their nodes, call state, the events the edge feeds in and the actions it must carry out.

Rule: frozen dataclasses and constants only. No I/O, no clock, no randomness; behaviour lives in `machine.py`.
Every event and action carries the ids the edge needs (playback, timer, leg, recording ids). The machine derives those
ids deterministically from the call id, so tests and the edge can predict them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from vpbx.domain.schedules import Hours
from vpbx.domain.validation import DTMF_DIGITS as DTMF_DIGITS  # the one key set (0-9 * # A-D), re-exported

# --------------------------------------------------------------------------------------------------------------------
# Constants

# Built-in prompts shipped in prompts/<lang>/ and installed beside user prompts: played as `sound:vpbx/<name>`,
# so the channel's language (the number's) picks the English or Russian file.
PROMPT_INVALID = "invalid-option"
PROMPT_UNAVAILABLE = "number-unavailable"
PROMPT_ALL_BUSY = "all-busy"
PROMPT_GOODBYE = "goodbye"
PROMPT_VM_INTRO = "vm-intro"

# Hangup causes (Q.850) used by the machine.
CAUSE_UNALLOCATED = 1
CAUSE_NORMAL = 16
CAUSE_BUSY = 17
CAUSE_OUT_OF_ORDER = 27    # destination out of order: the number's flow does not load
CAUSE_CALL_REJECTED = 21      # SIP 403 Forbidden: the caller may not make this call (a toll-fraud guard)

FORWARD_MODES = ("simultaneous", "sequential")
LEG_FAIL_REASONS = ("busy", "noanswer", "unavailable", "congestion")
HANGUP_LEG_REASONS = ("answered_elsewhere", "normal", "timeout")
DISPOSITIONS = ("answered", "missed", "busy", "failed", "voicemail", "rejected", "transferred", "blocked")

# Hold: the party a Hold/Unhold event or a StartMoh/StopMoh action names is CALLER or a leg id (leg ids are
# f"{prefix}-leg-{n}", never "caller"); the class is vpbx's own (generated musiconhold_vpbx.conf).
CALLER = "caller"
MOH_CLASS = "vpbx"   # musiconhold_vpbx.conf; a class of its own, so a system Asterisk's [default] stays the admin's

# Voicemail shorter than this is discarded, not delivered.
VOICEMAIL_MIN_SECONDS = 1.0
# Extension IVRs: seconds of silence between digits that end the number typed.
DIGIT_TIMEOUT = 3.0
# Extension IVRs: a typed number this long is looked up without waiting for '#'.
MAX_EXTENSION_DIGITS = 32


def prompt_media(name: str) -> str:
    """Media string of a prompt, built-in (`sound:vpbx/goodbye`) or uploaded (`sound:vpbx/welcome`): both are
    installed under sounds/<lang>/vpbx/, so the channel's language picks the file."""
    return f"sound:vpbx/{name}"


builtin_media = prompt_media    # old name, kept until machine.py and tests/test_lifecycle.py use prompt_media


def _freeze(mapping: Mapping[str, str] | None) -> Mapping[str, str] | None:
    return None if mapping is None else MappingProxyType(dict(mapping))


# --------------------------------------------------------------------------------------------------------------------
# Targets and nodes


@dataclass(frozen=True)
class Target:
    """A leg's destination: kind `sip` (value: login), `tel` (value: +E164) or `uri` (value: sip:user@host[:port])."""

    kind: str
    value: str

    @property
    def dest(self) -> str:
        """The destination string this target was written as, e.g. `sip:alice`, `tel:+380441234567`, `uri:sip:a@b`."""
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class PlayNode:
    """Answer, play `media`, then go to node `next` (the number's greeting)."""

    id: str
    media: str
    next: str
    dest: str | None = None


@dataclass(frozen=True)
class IvrNode:
    """A menu. Answer, play `prompt` (None: silent), wait `timeout` s for a key.

    `options` maps a key to a node id. `extensions` is None for a plain menu; for an `--extensions` IVR it maps a typed
    number (ended by '#' or `digit_timeout` s of silence) to a node id. A wrong key or a timeout counts a failure; after
    more than `retries` failures the call goes to `fallback` (a node id).
    """

    id: str
    name: str
    prompt: str | None
    options: Mapping[str, str]
    timeout: float
    retries: int
    invalid_prompt: str
    fallback: str
    extensions: Mapping[str, str] | None = None
    digit_timeout: float = DIGIT_TIMEOUT
    dest: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _freeze(self.options))
        object.__setattr__(self, "extensions", _freeze(self.extensions))


@dataclass(frozen=True)
class ForwardNode:
    """Ring `targets` (simultaneous: all at once, `timeout` overall; sequential: one by one, `timeout` each).

    Nobody answers -> node `fallback`.
    """

    id: str
    targets: tuple[Target, ...]
    mode: str
    timeout: float
    fallback: str
    dest: str | None = None


@dataclass(frozen=True)
class VoicemailNode:
    """Answer, play the voicemail intro, record; a recording of `min_seconds` or more is delivered to `emails`."""

    id: str
    emails: tuple[str, ...] = ()
    max_seconds: int = 180
    max_silence: int = 5
    min_seconds: float = VOICEMAIL_MIN_SECONDS
    dest: str | None = "voicemail"


@dataclass(frozen=True)
class PlayAndHangupNode:
    """Answer, play `media`, hang up (cause 16). `disposition`, if set, is written to the call when entered."""

    id: str
    media: str
    dest: str | None = None
    disposition: str | None = None


@dataclass(frozen=True)
class HangupNode:
    """Hang up the caller with `cause`."""

    id: str
    cause: int = CAUSE_NORMAL
    dest: str | None = None


@dataclass(frozen=True)
class ScheduleNode:
    """Business hours: entering it enters node `open` if `hours` is open at the call's clock (the `now` the edge
    passes in), else node `closed`. Decided on entry, never a node the call rests at (`state.node` is never one)."""

    id: str
    hours: Hours
    open: str
    closed: str
    dest: str | None = None


Node = PlayNode | IvrNode | ForwardNode | VoicemailNode | PlayAndHangupNode | HangupNode | ScheduleNode


@dataclass(frozen=True)
class Flow:
    """A number's compiled call flow: nodes keyed by id, `start` (greeting or route) and `route_start` (no greeting).

    `record`: the call is recorded (both parties mixed, from when it is bridged to hang-up) as
    `vpbx.services.recordings.recording_name(call_id)`; `record_prompt`: the name of the prompt (played as
    `prompt_media(name)`) that announces it to the caller before the call is connected; None: no announcement, and
    always None when `record` is False.
    """

    number: str
    channels: int
    start: str
    route_start: str
    nodes: Mapping[str, Node]
    record: bool = False
    record_prompt: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", MappingProxyType(dict(self.nodes)))

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]


# --------------------------------------------------------------------------------------------------------------------
# Events (edge -> machine)


@dataclass(frozen=True)
class PlaybackFinished:
    """A playback ended (finished, stopped or failed: the edge maps all three here)."""

    playback_id: str


@dataclass(frozen=True)
class Dtmf:
    """The caller pressed a key. Anything but one of 0-9 * # A-D is ignored."""

    digit: str


@dataclass(frozen=True)
class TimerExpired:
    timer_id: str


@dataclass(frozen=True)
class LegRinging:
    leg_id: str


@dataclass(frozen=True)
class LegAnswered:
    leg_id: str


@dataclass(frozen=True)
class LegFailed:
    """A leg could not be reached; reason busy | noanswer | unavailable | congestion (others count as unavailable)."""

    leg_id: str
    reason: str


@dataclass(frozen=True)
class LegHungUp:
    leg_id: str


@dataclass(frozen=True)
class CallerHungUp:
    pass


@dataclass(frozen=True)
class RecordingFinished:
    name: str
    duration_s: float


@dataclass(frozen=True)
class RecordingFailed:
    name: str


@dataclass(frozen=True)
class Hold:
    """`party` (CALLER or a leg id) put the call on hold (a SIP re-INVITE sendonly/inactive: ARI ChannelHold)."""

    party: str


@dataclass(frozen=True)
class Unhold:
    """`party` took the call off hold (ARI ChannelUnhold)."""

    party: str


@dataclass(frozen=True)
class HandedOver:
    """A transfer handed bridged `party` (CALLER or the bridged leg) over to another call: this call ends without
    hanging that party up; the other party (the one who transferred) is hung up. Disposition "transferred"."""

    party: str


Event = (
    PlaybackFinished | Dtmf | TimerExpired | LegRinging | LegAnswered | LegFailed | LegHungUp | CallerHungUp
    | RecordingFinished | RecordingFailed | Hold | Unhold | HandedOver
)
EVENT_TYPES: tuple[type, ...] = (
    PlaybackFinished, Dtmf, TimerExpired, LegRinging, LegAnswered, LegFailed, LegHungUp, CallerHungUp,
    RecordingFinished, RecordingFailed, Hold, Unhold, HandedOver,
)


# --------------------------------------------------------------------------------------------------------------------
# Actions (machine -> edge)


@dataclass(frozen=True)
class Answer:
    """Answer the caller's channel."""


@dataclass(frozen=True)
class Ring:
    """Let the caller hear ringback (ARI: POST /channels/{caller}/ring)."""


@dataclass(frozen=True)
class Play:
    """Play `media` (`sound:NAME` built-in, `sound:vpbx/NAME` user prompt) to the caller as playback `playback_id`."""

    playback_id: str
    media: str


@dataclass(frozen=True)
class StopPlayback:
    playback_id: str


@dataclass(frozen=True)
class StartTimer:
    """Feed back TimerExpired(timer_id) after `seconds` unless cancelled."""

    timer_id: str
    seconds: float


@dataclass(frozen=True)
class CancelTimer:
    timer_id: str


@dataclass(frozen=True)
class Dial:
    """Create channel `leg_id` to `target` and dial it from the caller, giving up after `timeout` s."""

    leg_id: str
    target: Target
    timeout: float


@dataclass(frozen=True)
class HangupLeg:
    """Hang up leg `leg_id`; reason answered_elsewhere | normal | timeout."""

    leg_id: str
    reason: str = "normal"


@dataclass(frozen=True)
class Bridge:
    """Answer the caller if needed and bridge it with leg `leg_id`."""

    leg_id: str


@dataclass(frozen=True)
class RecordCall:
    """Record the call's bridge (both parties mixed) until it ends, under the name the edge gives the call
    (vpbx.services.recordings.recording_name); the edge keeps the audio when the call ends (Flow.record)."""


@dataclass(frozen=True)
class Record:
    """Record the caller as `name`; the edge reports RecordingFinished(name, duration) or RecordingFailed(name)."""

    name: str
    max_seconds: int
    max_silence: int
    beep: bool = True
    terminate_on: str = "#"


@dataclass(frozen=True)
class DeliverVoicemail:
    """Hand recording `name` (`duration` s long) over for delivery to `emails`."""

    name: str
    emails: tuple[str, ...]
    duration: float


@dataclass(frozen=True)
class DiscardRecording:
    """Delete recording `name` (too short to be a message)."""

    name: str


@dataclass(frozen=True)
class Hangup:
    """Hang up the caller with Q.850 `cause` (16 normal, 17 busy, 1 unallocated, 27 out of order)."""

    cause: int = CAUSE_NORMAL


@dataclass(frozen=True)
class StartRingback:
    """Play in-band ringing (`tone:ring`) to the already answered caller as playback `playback_id`, while legs ring.

    Only while forwarding: StopRingback comes before the caller is bridged, played to, recorded or hung up. Apart from
    `Play`: the ringing never ends by itself and no PlaybackFinished is expected for it.
    """

    playback_id: str


@dataclass(frozen=True)
class StopRingback:
    playback_id: str


@dataclass(frozen=True)
class StartMoh:
    """Play music on hold (class `moh_class`) to `party` (CALLER or a leg id): the other party put the call on hold."""

    party: str
    moh_class: str = MOH_CLASS


@dataclass(frozen=True)
class StopMoh:
    """Stop the music on hold `party` hears: the other party resumed the call."""

    party: str


Action = (
    Answer | Ring | Play | StopPlayback | StartTimer | CancelTimer | Dial | HangupLeg | Bridge | Record
    | DeliverVoicemail | DiscardRecording | Hangup | StartRingback | StopRingback | StartMoh | StopMoh | RecordCall
)


# --------------------------------------------------------------------------------------------------------------------
# Call state

LIVE_LEG_STATUSES = ("dialing", "ringing", "answered")


@dataclass(frozen=True)
class Leg:
    """An outgoing leg.

    status: dialing | ringing | answered (bridged) | failed | gone (hung up by the far end) | hungup (by us).
    """

    leg_id: str
    target: Target
    status: str = "dialing"

    @property
    def live(self) -> bool:
        return self.status in LIVE_LEG_STATUSES


# Phases of a call.
PHASES = (
    "playing",        # PlayNode media playing
    "closing",        # last prompt playing, then hang up
    "ivr_prompt",     # IVR prompt playing
    "ivr_invalid",    # IVR invalid-option prompt playing
    "ivr_waiting",    # IVR timer running, waiting for a key
    "forwarding",     # legs ringing
    "bridged",        # caller talking to a leg
    "vm_intro",       # voicemail intro playing
    "vm_recording",   # recording the caller
    "vm_orphaned",    # caller hung up while recording: waiting for RecordingFinished/RecordingFailed
    "finished",
)


@dataclass(frozen=True)
class CallState:
    """Everything the machine knows about one call. Replace, never mutate.

    For the call record: `answered_at` (caller's channel answered, by the PBX or by a bridge), `connected_at` (bridged
    with a person), `ended_at`, `reached` (destination string reached: the answering target, else the last destination
    entered), `disposition` (answered | missed | busy | failed | voicemail | rejected | transferred | blocked; final
    once `finished`),
    `voicemail` (a message was delivered), `finished`. Times come from `now` passed to start()/step()/adopt().
    """

    flow: Flow
    call_id: str
    caller: str
    prefix: str                       # ids: f"{prefix}-pb-{n}", -t-{n} (timers), -leg-{n}, -vm-{n} (recordings),
                                      # -rb-{n} (ringback, n: the number of the first leg it rings for)
    phase: str
    node: str | None = None
    started_at: float = 0.0
    clock: float = 0.0
    answered: bool = False
    answered_at: float | None = None
    connected_at: float | None = None
    ended_at: float | None = None
    reached: str | None = None
    disposition: str | None = None
    voicemail: bool = False
    finished: bool = False
    playback_id: str | None = None
    ringback: str | None = None       # playback id of the in-band ringing the answered caller hears while forwarding
    timer_id: str | None = None
    recording: str | None = None
    legs: tuple[Leg, ...] = ()
    bridged_leg: str | None = None
    holding: tuple[str, ...] = ()     # bridged parties (CALLER, the bridged leg) that have the call on hold: the other
                                      # party of each hears music on hold
    next_target: int = 0              # sequential forward: index of the next target to dial
    failures: int = 0                 # IVR: wrong keys + timeouts so far in this menu
    digits: str = ""                  # extension IVR: keys typed so far
    n_playback: int = 0
    n_timer: int = 0
    n_leg: int = 0
    n_recording: int = 0
    decisions: tuple[tuple[str, bool], ...] = ()   # (ScheduleNode id, open?) decided by the last start()/step()
                                                   # that changed the state (an ignored event returns it unchanged)

    @property
    def live_legs(self) -> tuple[Leg, ...]:
        return tuple(leg for leg in self.legs if leg.live)

    @property
    def awaiting_recording(self) -> bool:
        """The caller hung up mid-recording; the call finishes on RecordingFinished / RecordingFailed."""
        return self.phase == "vm_orphaned"

    def leg(self, leg_id: str) -> Leg | None:
        for leg in self.legs:
            if leg.leg_id == leg_id:
                return leg
        return None


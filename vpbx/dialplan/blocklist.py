"""What a caller the blocklist refuses hears (the rule itself is decided by vpbx.domain.blocklist.decide).

Rule: pure, like the rest of the package.

    reject_blocked()               refused before answer: hang up with cause 21 (call rejected; SIP 403 Forbidden)
    blocked_flow(number, prompt)   the rule has a prompt: a one-node flow that answers, plays it and hangs up; the
                                   call record's disposition is "blocked"

The prompt answers the call, so it is an answered call like any other: it takes one of the number's channels while it
plays (all taken: the caller gets busy) and, on a toll-free number, its seconds are rated like any answered call.
"""
from __future__ import annotations

from vpbx.dialplan.model import CAUSE_CALL_REJECTED, Action, Flow, Hangup, PlayAndHangupNode, prompt_media
from vpbx.domain.records import Number

BLOCKED_NODE = "blocked"           # the node id (a restarted engine finds it in the call record)
DISPOSITION_BLOCKED = "blocked"


def reject_blocked() -> list[Action]:
    """Actions for a call from a blocked caller (no prompt): hang up with cause 21 before anything is answered or
    rung (the caller's side gets 403 Forbidden)."""
    return [Hangup(cause=CAUSE_CALL_REJECTED)]


def blocked_flow(number: Number, prompt: str) -> Flow:
    """The flow of a call from a blocked caller whose rule has `prompt` (a prompt name): answer, play, hang up."""
    node = PlayAndHangupNode(BLOCKED_NODE, prompt_media(prompt), dest=None, disposition=DISPOSITION_BLOCKED)
    return Flow(number.number, number.channels, BLOCKED_NODE, BLOCKED_NODE, {BLOCKED_NODE: node})

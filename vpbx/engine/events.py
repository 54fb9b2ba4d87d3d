"""ARI events -> dialplan model events. Rule: translation only; no decision, no I/O but the call log line.

    CallStart.of(channel, args)        what a StasisStart of a new call says (direction, dialled extension, SIP login)
    translate(event, call_id, legs)    one ARI event of a call -> the model events it means ([] when none)
    asterisk_time(event)               when Asterisk emitted the event (its `timestamp`), as a Unix time
    endpoint_of(channel_name)          PJSIP/bob-0000002a -> bob (the SIP account or trunk a channel belongs to)
    transfer_channel(event)            the channel a ChannelTransfer (a REFER) arrived on

`translate` is pure over the event dict: the call's own bookkeeping (a caller reported gone twice, a leg that left)
is done by the call task (vpbx.engine.calls).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vpbx.dialplan import model as dm

call_log = logging.getLogger("vpbx.calls")

# Dial event `dialstatus` -> model leg failure reason (RINGING / ANSWER handled apart; PROGRESS / CANCEL mean nothing).
DIAL_FAILURES = {"BUSY": "busy", "NOANSWER": "noanswer", "CHANUNAVAIL": "unavailable", "CONGESTION": "congestion",
                 "DONTCALL": "unavailable", "TORTURE": "unavailable", "INVALIDARGS": "unavailable"}
# events that mean a channel is gone (or going)
CHANNEL_GONE = ("StasisEnd", "ChannelDestroyed", "ChannelHangupRequest")
# a phone's re-INVITE sendonly/inactive (hold) and back to sendrecv: model events naming the party
HOLD_EVENTS: dict[str, type[dm.Hold] | type[dm.Unhold]] = {"ChannelHold": dm.Hold, "ChannelUnhold": dm.Unhold}
# the first Stasis() argument of a leg the engine created (`appArgs=leg,CALLID`)
LEG_ARG = "leg"


@dataclass(frozen=True)
class CallStart:
    """A new call entering the Stasis app: `Stasis(vpbx,inbound,+E164)` from a carrier, or
    `Stasis(vpbx,outbound,EXTEN,LOGIN)` from a SIP account (extensions_vpbx.conf)."""

    channel_id: str
    caller: str          # the caller ID number the channel presents ("" if none)
    direction: str       # inbound | outbound
    exten: str           # the number dialled, as Asterisk got it
    login: str           # outbound: the SIP account (endpoint) that dialled
    answered: bool       # the channel is already up (an adopted call)

    @classmethod
    def of(cls, channel: dict[str, Any], args: list[str]) -> CallStart:
        exten = args[1] if len(args) > 1 else (channel.get("dialplan") or {}).get("exten", "")
        return cls(channel_id=channel["id"], caller=(channel.get("caller") or {}).get("number") or "",
                   direction=args[0] if args else "inbound", exten=exten, login=args[2] if len(args) > 2 else "",
                   answered=channel.get("state") == "Up")


def endpoint_of(channel_name: str) -> str:
    """The endpoint of a PJSIP channel name (`PJSIP/bob-0000002a` -> `bob`), "" for any other channel."""
    if not channel_name.startswith("PJSIP/") or "-" not in channel_name:
        return ""
    return channel_name[len("PJSIP/"):].rsplit("-", 1)[0]


def transfer_channel(event: dict[str, Any]) -> str:
    """The channel a ChannelTransfer event's REFER arrived on (`referred_by.source_channel.id`), "" if none."""
    source = ((event.get("referred_by") or {}).get("source_channel") or {})
    return str(source.get("id") or "")


def asterisk_time(event: dict[str, Any]) -> float | None:
    """The event's `timestamp` (Asterisk's clock, e.g. 2026-01-31T10:00:00.123+0000) as a Unix time, else None."""
    stamp = event.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def translate(event: dict[str, Any], call_id: str, legs: Collection[str], record_id: str | None = None
              ) -> list[dm.Event]:
    """One ARI event of the call whose caller is channel `call_id` (its live legs: `legs`) -> the model events it
    means. `record_id`: the call's record, when it is not the caller channel's id (the call log names it)."""
    etype = event.get("type")
    channel_id: str = (event.get("channel") or {}).get("id") or ""
    if etype in CHANNEL_GONE and channel_id == call_id:
        return [dm.CallerHungUp()]
    if etype in CHANNEL_GONE and channel_id in legs:
        # the hang-up request comes first; the leg counts as gone when it has left (StasisEnd / destroyed)
        return [] if etype == "ChannelHangupRequest" else [dm.LegHungUp(channel_id)]
    if etype == "ChannelDtmfReceived" and channel_id == call_id:
        return [dm.Dtmf(str(event.get("digit", "")))]
    if etype in HOLD_EVENTS and (channel_id == call_id or channel_id in legs):
        return [HOLD_EVENTS[etype](dm.CALLER if channel_id == call_id else channel_id)]
    if etype in ("PlaybackFinished", "PlaybackFailed"):
        playback = event.get("playback") or {}
        call_log.info(json.dumps({"call_id": record_id or call_id, "ari_event": etype,
                                  "playback_id": playback.get("id"), "media": playback.get("media_uri")}))
        return [dm.PlaybackFinished(playback.get("id", ""))]
    if etype == "Dial":
        peer: str = (event.get("peer") or {}).get("id") or ""
        status = event.get("dialstatus", "")
        if peer not in legs:
            return []
        if status == "RINGING":
            return [dm.LegRinging(peer)]
        if status == "ANSWER":
            return [dm.LegAnswered(peer)]
        if status in DIAL_FAILURES:
            return [dm.LegFailed(peer, DIAL_FAILURES[status])]
        return []
    if etype == "RecordingFinished":
        rec = event.get("recording") or {}
        return [dm.RecordingFinished(rec.get("name", ""), float(rec.get("duration") or 0))]
    if etype == "RecordingFailed":
        return [dm.RecordingFailed((event.get("recording") or {}).get("name", ""))]
    return []

"""Routing keys for ARI events. Rule: nothing here does I/O; pure functions over parsed event dicts.

`event_channel_ids(event)` names the channel(s) an event concerns, so the engine can put every event on the queue of
the call that owns one of those channels and handle each call's events in arrival order.
"""
from __future__ import annotations

from typing import Any

# Synthetic events produced by AriClient.events() (never sent by Asterisk).
CONNECTED = "VpbxConnected"
DISCONNECTED = "VpbxDisconnected"

# The event types vpbx's engine acts on (vpbx.engine.core and vpbx.engine.events), plus ApplicationReplaced, which the
# client itself watches. AriClient asks Asterisk for only these (PUT /applications/{app}/eventFilter, an allowed list)
# after every connect; every other type (ChannelStateChange, ChannelVarset, ChannelDialplan, PlaybackStarted, bridge
# events, ...) is then never serialised by Asterisk nor parsed here. An event type the engine starts to use must be
# added here, or the engine never sees it.
ENGINE_EVENTS: tuple[str, ...] = (
    "StasisStart", "StasisEnd", "ChannelDestroyed", "ChannelHangupRequest", "ChannelDtmfReceived",
    "ChannelHold", "ChannelUnhold", "ChannelTransfer", "Dial",
    "PlaybackFinished", "PlaybackFailed", "RecordingFinished", "RecordingFailed",
    "ApplicationReplaced",
)

# Event keys that hold a Channel object, in the order their ids are reported.
_CHANNEL_KEYS = (
    "channel",                # most channel events, StasisStart/End, ChannelEnteredBridge/LeftBridge, ...
    "peer",                   # Dial: the channel being dialled
    "caller",                 # Dial: the calling channel (absent when dialled without a caller)
    "forwarded",              # Dial: the channel the call was forwarded to
    "replace_channel",        # StasisStart after a masquerade, transfers
    "transferer_first_leg",   # BridgeAttendedTransfer
    "transferer_second_leg",
    "transferee",             # BridgeBlindTransfer / BridgeAttendedTransfer
    "transfer_target",
    "destination_link_first_leg",
    "destination_link_second_leg",
    "destination_threeway_channel",
)
# Event keys that hold a Bridge object whose `channels` are reported after the channel keys.
_BRIDGE_KEYS = ("bridge", "bridge_from", "transferer_first_leg_bridge", "transferer_second_leg_bridge",
                "destination_threeway_bridge")
# Event keys that hold an object with a `target_uri` ("channel:ID" or "bridge:ID").
_TARGET_KEYS = ("playback", "recording")


def _channel_from_uri(uri: Any) -> str | None:
    if isinstance(uri, str) and uri.startswith("channel:"):
        return uri[len("channel:"):] or None
    return None


def event_channel_ids(event: dict[str, Any]) -> list[str]:
    """Return the ids of the channels `event` concerns, most specific first, without duplicates.

    - channel events: `channel.id`
    - Dial: `peer.id`, then `caller.id` (and `forwarded.id`)
    - Playback* / Recording*: the channel of `target_uri` ("channel:ID"); a bridge target gives no id
    - bridge events: the event's own channel (if any), then every id in `bridge.channels`
    - anything else (e.g. a global ChannelVarset, synthetic VpbxConnected): []
    """
    ids: list[str] = []

    def add(value: Any) -> None:
        if isinstance(value, str) and value and value not in ids:
            ids.append(value)

    for key in _CHANNEL_KEYS:
        obj = event.get(key)
        if isinstance(obj, dict):
            add(obj.get("id"))
    for key in _TARGET_KEYS:
        obj = event.get(key)
        if isinstance(obj, dict):
            add(_channel_from_uri(obj.get("target_uri")))
    for key in _BRIDGE_KEYS:
        obj = event.get(key)
        if isinstance(obj, dict):
            for channel_id in obj.get("channels") or ():
                add(channel_id)
    return ids

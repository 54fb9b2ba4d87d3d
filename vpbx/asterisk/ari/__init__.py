"""vpbx.asterisk.ari: our own thin async ARI client (REST over the event WebSocket where Asterisk takes it, else httpx
over our HTTP/1.1 transport; websockets for events).

Rule: `vpbx.asterisk.ari.client` (with its transport `vpbx.asterisk.ari.http11`) is the only module that speaks
HTTP/WebSocket to Asterisk; nothing here holds business logic.
"""
from __future__ import annotations

from vpbx.asterisk.ari.client import AriClient
from vpbx.asterisk.ari.errors import AriConflict, AriError, AriNotFound, AriUnavailable
from vpbx.asterisk.ari.events import CONNECTED, DISCONNECTED, ENGINE_EVENTS, event_channel_ids

__all__ = [
    "CONNECTED",
    "DISCONNECTED",
    "ENGINE_EVENTS",
    "AriClient",
    "AriConflict",
    "AriError",
    "AriNotFound",
    "AriUnavailable",
    "event_channel_ids",
]

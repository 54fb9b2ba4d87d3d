"""vpbx.ari: our own thin async ARI client (httpx for REST, over our HTTP/1.1 transport; websockets for events).

Rule: `vpbx.ari.client` (with its transport `vpbx.ari.http11`) is the only module that speaks HTTP/WebSocket to
Asterisk; nothing here holds business logic.
"""
from __future__ import annotations

from vpbx.ari.client import AriClient
from vpbx.ari.errors import AriConflict, AriError, AriNotFound, AriUnavailable
from vpbx.ari.events import CONNECTED, DISCONNECTED, event_channel_ids

__all__ = [
    "AriClient",
    "AriConflict",
    "AriError",
    "AriNotFound",
    "AriUnavailable",
    "CONNECTED",
    "DISCONNECTED",
    "event_channel_ids",
]

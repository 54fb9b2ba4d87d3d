"""Thin async ARI client. Rule: the only module that speaks HTTP/WebSocket to Asterisk; no business logic here.

REST: each method maps its keyword arguments to the ARI query parameters of the same operation in the ARI reference and
either returns the parsed JSON (None for 204) or raises one of `vpbx.asterisk.ari.errors`. A request travels one of two
ways, with the same result and the same errors:

- over the event WebSocket (`rest_transport="auto"`, the default), as a `RESTRequest` message answered by a
  `RESTResponse` (Asterisk 22.4+, 21.9+, 20.14+): no HTTP request to build, send and parse, no connection pool. Each
  request has its own `request_id`; the reader hands the answer to the waiting request (never to `events()`). No
  answer within `timeout`, or the socket drops before the answer: AriUnavailable (the request may or may not have
  been carried out, as with a broken HTTP connection).
- over HTTP: one shared `httpx.AsyncClient` (keep-alive, basic auth; Asterisk's http.conf `sessionlimit` is 100, so
  the pool is capped well below it) over `vpbx.asterisk.ari.http11.Http11Transport` (unit tests pass
  `transport=httpx.MockTransport(...)`). Used for binary answers (`stored_file`: Asterisk answers 406 over the
  WebSocket), while no event WebSocket is connected (or it is closing: a request it could not send goes by HTTP),
  with an Asterisk that does not take REST over the WebSocket, and always with `rest_transport="http"`
  (vpbx.toml `[ari] rest_transport`, the rollback switch).

Which Asterisk takes REST over the WebSocket is decided per connection, by behaviour, not by version string: the first
message after connecting is a RESTRequest (the event filter below, else `GET asterisk/ping`). A RESTResponse of any
status means yes, and from then on requests use the WebSocket; older Asterisk ignores messages from the client, so no
answer within `probe_timeout` (2 s) means HTTP until the next connect. Requests made before the answer go by HTTP.

Events: `events()` keeps one WebSocket to `/ari/events?app=APP&subscribeAll=false` open, reconnecting by itself with
exponential backoff, and yields parsed events plus the synthetic `VpbxConnected` (after every (re)connect: reconcile
with `get_application()` now, events during the gap are lost) and `VpbxDisconnected` (the stream broke). After every
connect the app's event filter is set to `event_types` (default `vpbx.asterisk.ari.events.ENGINE_EVENTS`; None: all
events), so Asterisk does not send what nobody reads.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import secrets
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from vpbx import STASIS_APP
from vpbx.asterisk.ari.errors import AriConflict, AriError, AriNotFound, AriUnavailable
from vpbx.asterisk.ari.events import CONNECTED, DISCONNECTED, ENGINE_EVENTS
from vpbx.asterisk.ari.http11 import Http11Transport

log = logging.getLogger(__name__)

Json = Any
ParamValue = str | int | bool | Sequence[str] | None

REST_TRANSPORTS = ("auto", "http")    # vpbx.toml [ari] rest_transport


def _seg(value: str) -> str:
    """Quote one path segment (ids and names never contain a usable '/')."""
    return quote(str(value), safe="")


def _params(values: Mapping[str, ParamValue]) -> dict[str, str]:
    """ARI query parameters: drop None, booleans as true/false, lists comma-joined (ARI's allowMultiple form)."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            out[key] = ",".join(str(v) for v in value)
        else:
            out[key] = str(value)
    return out


def _join(value: str | Sequence[str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return ",".join(value)


class _NotSent(Exception):
    """The WebSocket closed before a RESTRequest could be written: nothing reached Asterisk, HTTP may carry it."""


class _End:
    """Queue marker: the event reader finished (error is None after stop())."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class AriClient:
    """Async ARI client for one Stasis application. Use as `async with AriClient(...) as ari:` or call `aclose()`."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        app: str = STASIS_APP,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        max_connections: int = 16,
        ping_interval: float = 2.0,
        ping_timeout: float = 3.0,
        open_timeout: float = 5.0,
        close_timeout: float = 0.5,
        backoff_min: float = 0.2,
        backoff_max: float = 5.0,
        rest_transport: str = "auto",
        event_types: Collection[str] | None = ENGINE_EVENTS,
        probe_timeout: float = 2.0,
    ) -> None:
        """`rest_transport`: "auto" (REST over the event WebSocket when Asterisk takes it, else HTTP) or "http".
        `event_types`: the only event types Asterisk should send the app (None: every type)."""
        if rest_transport not in REST_TRANSPORTS:
            raise ValueError(f"rest_transport must be one of {', '.join(REST_TRANSPORTS)}, got {rest_transport!r}")
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"ARI base_url must look like http://127.0.0.1:8088, got {base_url!r}")
        path = parts.path.rstrip("/")
        if path.endswith("/ari"):
            path = path[: -len("/ari")]
        self.base_url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self.app = app
        self._auth_header = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        ws_scheme = "wss" if parts.scheme == "https" else "ws"
        self.events_url = urlunsplit((ws_scheme, parts.netloc, f"{path}/ari/events",
                                      urlencode({"app": app, "subscribeAll": "false"}), ""))
        self._http = httpx.AsyncClient(
            base_url=f"{self.base_url}/ari",
            auth=httpx.BasicAuth(username, password),
            transport=transport or Http11Transport(max_connections),
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            trust_env=False,
        )
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._open_timeout = open_timeout
        self._close_timeout = close_timeout
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._stopped = False
        self._readers: set[asyncio.Task[None]] = set()
        self._queues: set[asyncio.Queue[dict[str, Any] | _End]] = set()
        self.connected = False
        self.rest_transport = rest_transport
        self.event_types = tuple(event_types) if event_types is not None else None
        self._timeout = timeout
        self._probe_timeout = probe_timeout
        self._ws: ClientConnection | None = None    # the connected event WebSocket
        self._ws_rest = False                        # its Asterisk answered a RESTRequest: REST goes over it
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._request_ids = itertools.count(1)
        self._request_prefix = secrets.token_hex(4)
        self._helpers: set[asyncio.Task[None]] = set()
        self.sent_over_ws = 0                        # requests answered over the WebSocket / sent by HTTP (stats)
        self.sent_over_http = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> AriClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the event stream and close the HTTP connection pool."""
        self.stop()
        if self._readers:
            await asyncio.wait(set(self._readers))
        await self._http.aclose()

    # ------------------------------------------------------------------ REST core

    @property
    def rest_over_ws(self) -> bool:
        """True while requests (other than binary ones) go over the event WebSocket."""
        return self._ws is not None and self._ws_rest

    async def _request(self, method: str, path: str, *, params: Mapping[str, ParamValue] | None = None,
                       body: Json = None, raw: bool = False) -> Json:
        query = _params(params or {})
        ws = self._ws
        if ws is not None and self._ws_rest and not raw:
            try:
                answer = await self._ws_exchange(ws, method, path, query, body, self._timeout)
            except _NotSent:
                pass                      # the socket is closing: nothing was sent, HTTP carries it
            else:
                self.sent_over_ws += 1
                text = answer.get("message_body")
                if not isinstance(text, str):   # absent (204); or, should Asterisk ever inline it, the JSON itself
                    text = "" if text is None else json.dumps(text)
                return self._result(method, path, _status(answer), str(answer.get("reason_phrase") or ""), text)
        return await self._http_request(method, path, query, body, raw)

    async def _http_request(self, method: str, path: str, query: dict[str, str], body: Json, raw: bool) -> Json:
        self.sent_over_http += 1
        try:
            resp = await self._http.request(method, path, params=query, json=body)
        except httpx.TransportError as exc:
            raise AriUnavailable(
                f"Asterisk ARI unreachable at {self.base_url} ({type(exc).__name__}: {exc}) on {method} {path}: "
                f"is Asterisk running with the HTTP server and ARI enabled?",
                method=method, path=path, detail=str(exc)) from exc
        log.debug("ARI %s %s %s -> %s", method, path, query, resp.status_code)
        if raw and resp.is_success:
            return resp.content
        return self._result(method, path, resp.status_code, resp.reason_phrase, resp.text)

    @classmethod
    def _result(cls, method: str, path: str, status: int, reason: str, text: str) -> Json:
        """One answer, whichever way it came: the parsed JSON (None when empty) or the AriError its status means."""
        if 200 <= status < 300:
            if status == 204 or not text:
                return None
            try:
                return json.loads(text)
            except ValueError as exc:
                raise AriError(f"Asterisk ARI {method} {path} returned invalid JSON",
                               method=method, path=path, status=status, detail=text[:200]) from exc
        raise cls._error_for(method, path, status, reason, text)

    @staticmethod
    def _error(method: str, path: str, resp: httpx.Response) -> AriError:
        return AriClient._error_for(method, path, resp.status_code, resp.reason_phrase, resp.text)

    @staticmethod
    def _error_for(method: str, path: str, status: int, reason: str, text: str) -> AriError:
        detail = ""
        try:
            data = json.loads(text)
            if isinstance(data, dict):
                detail = str(data.get("message") or data.get("error") or "")
        except ValueError:
            pass
        if not detail:
            detail = text.strip()[:200] or reason
        message = f"Asterisk ARI {method} {path} failed: {status} {detail}"
        cls: type[AriError] = AriError
        if status == 404:
            cls = AriNotFound
        elif status in (409, 422):
            cls = AriConflict
        elif status >= 500:
            cls = AriUnavailable
        elif status in (401, 403):
            message += " (check the ARI user and password in ari.conf and the vpbx config)"
        return cls(message, method=method, path=path, status=status, detail=detail)

    async def _ws_exchange(self, ws: ClientConnection, method: str, path: str, query: Mapping[str, str],
                           body: Json, timeout: float) -> dict[str, Any]:
        """Send one RESTRequest over `ws` and wait for its RESTResponse. _NotSent when the socket would not take it;
        AriUnavailable when no answer comes within `timeout` or the socket drops first."""
        request_id = f"{self._request_prefix}-{next(self._request_ids)}"
        uri = path.lstrip("/")
        if query:
            uri += "?" + urlencode(query, quote_via=quote)
        message: dict[str, Any] = {"type": "RESTRequest", "transaction_id": request_id, "request_id": request_id,
                                   "method": method, "uri": uri}
        if body is not None:
            message["content_type"] = "application/json"
            message["message_body"] = json.dumps(body)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            try:
                await ws.send(json.dumps(message))
            except websockets.exceptions.ConnectionClosed as exc:
                raise _NotSent() from exc
            try:
                async with asyncio.timeout(timeout):
                    answer = await future
            except TimeoutError:
                raise AriUnavailable(
                    f"Asterisk ARI {method} {path}: no answer over the event WebSocket within {timeout:g} s",
                    method=method, path=path, detail="timeout") from None
            except AriUnavailable as exc:      # from _fail_pending: the socket dropped
                raise AriUnavailable(f"Asterisk ARI {method} {path}: {exc}", method=method, path=path,
                                     detail=exc.detail) from None
        finally:
            self._pending.pop(request_id, None)
        log.debug("ARI (ws) %s %s -> %s", method, uri, answer.get("status_code"))
        return answer

    def _take_response(self, message: dict[str, Any]) -> None:
        """A RESTResponse from the reader: to the request waiting for it (a late one, after a timeout, is dropped)."""
        future = self._pending.get(str(message.get("request_id")))
        if future is not None and not future.done():
            future.set_result(message)
        else:
            log.debug("ARI: RESTResponse for no waiting request: %s", message.get("request_id"))

    def _fail_pending(self, reason: str) -> None:
        for request_id, future in list(self._pending.items()):
            if not future.done():
                future.set_exception(AriUnavailable(f"the event WebSocket closed before the answer ({reason})",
                                                    detail=reason))
            self._pending.pop(request_id, None)

    async def _after_connect(self, ws: ClientConnection) -> None:
        """Set the event filter and, with rest_transport "auto", find out whether this connection carries REST."""
        if self.rest_transport == "http":
            if self.event_types is not None:
                await self._set_event_filter(ws, over_ws=False)
            return
        if self.event_types is not None:
            answered = await self._set_event_filter(ws, over_ws=True)
        else:
            try:
                await self._ws_exchange(ws, "GET", "/asterisk/ping", {}, None, self._probe_timeout)
                answered = True
            except (_NotSent, AriUnavailable):
                answered = False
        if self._ws is not ws:
            return
        if answered:
            self._ws_rest = True
            log.info("ARI: REST requests go over the event WebSocket")
        else:
            log.info("ARI: Asterisk did not answer a REST request over the event WebSocket within %g s (older than "
                     "22.4?): REST stays on HTTP for this connection", self._probe_timeout)
            if self.event_types is not None:
                await self._set_event_filter(ws, over_ws=False)

    async def _set_event_filter(self, ws: ClientConnection, *, over_ws: bool) -> bool:
        """PUT /applications/{app}/eventFilter {"allowed": event_types}. Over the WebSocket: True when Asterisk
        answered at all (it takes REST there), False when it did not."""
        path = f"/applications/{_seg(self.app)}/eventFilter"
        # RESTResponse is listed too in case a filter ever applies to it: the answers must never be filtered out
        allowed = [{"type": t} for t in (*(self.event_types or ()), "RESTResponse")]
        body = {"allowed": allowed, "disallowed": []}
        try:
            if over_ws:
                try:
                    answer = await self._ws_exchange(ws, "PUT", path, {}, body, self._probe_timeout)
                except (_NotSent, AriUnavailable):
                    return False
                self._result("PUT", path, _status(answer), str(answer.get("reason_phrase") or ""),
                             str(answer.get("message_body") or ""))
            else:
                await self._http_request("PUT", path, {}, body, False)
            log.info("ARI: event filter set (%d event types)", len(allowed))
        except AriError as exc:
            log.warning("ARI: the event filter was not set, every event type comes (%s)", exc)
        return True

    # ------------------------------------------------------------------ channels

    async def list_channels(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._request("GET", "/channels")
        return result

    async def get_channel(self, channel_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", f"/channels/{_seg(channel_id)}")
        return result

    async def create(self, endpoint: str, app: str | None = None, app_args: str | Sequence[str] | None = None,
                     channel_id: str | None = None, other_channel_id: str | None = None,
                     originator: str | None = None, formats: str | Sequence[str] | None = None,
                     variables: Mapping[str, str] | None = None) -> dict[str, Any]:
        """POST /channels/create: a channel in Stasis, not yet dialled (`dial()` it). `app` defaults to ours."""
        params = {"endpoint": endpoint, "app": app or self.app, "appArgs": _join(app_args), "channelId": channel_id,
                  "otherChannelId": other_channel_id, "originator": originator, "formats": _join(formats)}
        body = {"variables": dict(variables)} if variables else None
        result: dict[str, Any] = await self._request("POST", "/channels/create", params=params, body=body)
        return result

    async def originate(self, endpoint: str, *, extension: str | None = None, context: str | None = None,
                        priority: int | None = None, label: str | None = None, app: str | None = None,
                        app_args: str | Sequence[str] | None = None, caller_id: str | None = None,
                        timeout: int | None = None, channel_id: str | None = None,
                        other_channel_id: str | None = None, originator: str | None = None,
                        formats: str | Sequence[str] | None = None,
                        variables: Mapping[str, str] | None = None) -> dict[str, Any]:
        """POST /channels: create and dial at once (into `app`, or into a dialplan extension)."""
        params = {"endpoint": endpoint, "extension": extension, "context": context, "priority": priority,
                  "label": label, "app": app, "appArgs": _join(app_args), "callerId": caller_id, "timeout": timeout,
                  "channelId": channel_id, "otherChannelId": other_channel_id, "originator": originator,
                  "formats": _join(formats)}
        body = {"variables": dict(variables)} if variables else None
        result: dict[str, Any] = await self._request("POST", "/channels", params=params, body=body)
        return result

    async def dial(self, channel_id: str, caller: str | None = None, timeout: int | None = None) -> None:
        await self._request("POST", f"/channels/{_seg(channel_id)}/dial",
                            params={"caller": caller, "timeout": timeout})

    async def answer(self, channel_id: str) -> None:
        await self._request("POST", f"/channels/{_seg(channel_id)}/answer")

    async def ring(self, channel_id: str) -> None:
        await self._request("POST", f"/channels/{_seg(channel_id)}/ring")

    async def ring_stop(self, channel_id: str) -> None:
        await self._request("DELETE", f"/channels/{_seg(channel_id)}/ring")

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        """POST /channels/{id}/moh: music on hold to the channel (a `play` on it suspends the music)."""
        await self._request("POST", f"/channels/{_seg(channel_id)}/moh", params={"mohClass": moh_class})

    async def stop_moh(self, channel_id: str) -> None:
        await self._request("DELETE", f"/channels/{_seg(channel_id)}/moh")

    async def progress(self, channel_id: str) -> None:
        """POST /channels/{id}/progress (183 Session Progress); Asterisk 22.6+ / 20.16+ only."""
        await self._request("POST", f"/channels/{_seg(channel_id)}/progress")

    async def play(self, channel_id: str, media: str | Sequence[str], playback_id: str | None = None,
                   lang: str | None = None, offsetms: int | None = None, skipms: int | None = None) -> dict[str, Any]:
        """Start a playback (`sound:`, `recording:`, `tone:`, ... URIs; a list plays in order); returns the Playback."""
        params = {"media": _join(media), "lang": lang, "offsetms": offsetms, "skipms": skipms}
        path = f"/channels/{_seg(channel_id)}/play"
        if playback_id is not None:
            path += f"/{_seg(playback_id)}"
        result: dict[str, Any] = await self._request("POST", path, params=params)
        return result

    async def record(self, channel_id: str, name: str, format: str = "wav", max_duration: int | None = None,
                     max_silence: int | None = None, beep: bool | None = None, terminate_on: str | None = None,
                     if_exists: str | None = None) -> dict[str, Any]:
        """Start recording the channel to stored recording `name`; returns the LiveRecording."""
        params = {"name": name, "format": format, "maxDurationSeconds": max_duration,
                  "maxSilenceSeconds": max_silence, "ifExists": if_exists, "beep": beep, "terminateOn": terminate_on}
        result: dict[str, Any] = await self._request("POST", f"/channels/{_seg(channel_id)}/record", params=params)
        return result

    async def hangup(self, channel_id: str, reason: str | None = None, reason_code: int | str | None = None) -> None:
        """DELETE /channels/{id}; `reason` (normal, busy, answered_elsewhere, ...) or a Q.850 `reason_code`."""
        await self._request("DELETE", f"/channels/{_seg(channel_id)}",
                            params={"reason": reason, "reason_code": reason_code})

    async def continue_in_dialplan(self, channel_id: str, context: str | None = None, extension: str | None = None,
                                   priority: int | None = None, label: str | None = None) -> None:
        params = {"context": context, "extension": extension, "priority": priority, "label": label}
        await self._request("POST", f"/channels/{_seg(channel_id)}/continue", params=params)

    async def transfer_progress(self, channel_id: str, state: str) -> None:
        """POST /channels/{id}/transfer_progress (Asterisk 22.3+): tell the phone that sent a REFER how its transfer
        goes (a NOTIFY sipfrag): channel_progress | channel_answered | channel_unavailable | channel_declined."""
        await self._request("POST", f"/channels/{_seg(channel_id)}/transfer_progress", params={"states": state})

    async def set_var(self, channel_id: str, variable: str, value: str | None = None) -> None:
        await self._request("POST", f"/channels/{_seg(channel_id)}/variable",
                            params={"variable": variable, "value": value})

    # ------------------------------------------------------------------ playbacks and recordings

    async def stop_playback(self, playback_id: str) -> None:
        await self._request("DELETE", f"/playbacks/{_seg(playback_id)}")

    async def live_recording(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", f"/recordings/live/{_seg(name)}")
        return result

    async def stop_recording(self, name: str) -> None:
        """POST /recordings/live/{name}/stop: stop and store a live recording."""
        await self._request("POST", f"/recordings/live/{_seg(name)}/stop")

    async def stored_file(self, name: str) -> bytes:
        """The audio bytes of stored recording `name` (no shared filesystem with Asterisk needed)."""
        audio: bytes = await self._request("GET", f"/recordings/stored/{_seg(name)}/file", raw=True)
        return audio

    async def delete_stored(self, name: str) -> None:
        await self._request("DELETE", f"/recordings/stored/{_seg(name)}")

    # ------------------------------------------------------------------ bridges

    async def create_bridge(self, type: str = "mixing", bridge_id: str | None = None,
                            name: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("POST", "/bridges",
                                                     params={"type": type, "bridgeId": bridge_id, "name": name})
        return result

    async def add_channel(self, bridge_id: str, channel_ids: str | Sequence[str], role: str | None = None,
                          absorb_dtmf: bool | None = None, mute: bool | None = None,
                          inhibit_connected_line_updates: bool | None = None) -> None:
        params = {"channel": _join(channel_ids), "role": role, "absorbDTMF": absorb_dtmf, "mute": mute,
                  "inhibitConnectedLineUpdates": inhibit_connected_line_updates}
        await self._request("POST", f"/bridges/{_seg(bridge_id)}/addChannel", params=params)

    async def remove_channel(self, bridge_id: str, channel_ids: str | Sequence[str]) -> None:
        await self._request("POST", f"/bridges/{_seg(bridge_id)}/removeChannel",
                            params={"channel": _join(channel_ids)})

    async def get_bridge(self, bridge_id: str) -> dict[str, Any]:
        """GET /bridges/{id}: its `channels` (ids) and `creationtime`."""
        result: dict[str, Any] = await self._request("GET", f"/bridges/{_seg(bridge_id)}")
        return result

    async def record_bridge(self, bridge_id: str, name: str, format: str = "wav") -> None:
        """POST /bridges/{id}/record: record everything the bridge mixes as stored recording `name` until the bridge
        goes (an existing recording of that name is replaced)."""
        await self._request("POST", f"/bridges/{_seg(bridge_id)}/record",
                            params={"name": name, "format": format, "ifExists": "overwrite"})

    async def play_bridge(self, bridge_id: str, media: str | Sequence[str],
                          playback_id: str | None = None) -> dict[str, Any]:
        """Play into a bridge: every channel in it hears the media (a list plays in order); returns the Playback."""
        path = f"/bridges/{_seg(bridge_id)}/play"
        if playback_id is not None:
            path += f"/{_seg(playback_id)}"
        result: dict[str, Any] = await self._request("POST", path, params={"media": _join(media)})
        return result

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self._request("DELETE", f"/bridges/{_seg(bridge_id)}")

    # ------------------------------------------------------------------ applications and system

    async def get_application(self, app: str | None = None) -> dict[str, Any]:
        """GET /applications/{app}: `channel_ids`, `bridge_ids` ... the app holds (reconcile after VpbxConnected)."""
        result: dict[str, Any] = await self._request("GET", f"/applications/{_seg(app or self.app)}")
        return result

    async def asterisk_info(self, only: str | Sequence[str] | None = None) -> dict[str, Any]:
        """GET /asterisk/info (health check); `only` filters to build, system, config and/or status."""
        result: dict[str, Any] = await self._request("GET", "/asterisk/info", params={"only": _join(only)})
        return result

    # ------------------------------------------------------------------ events

    def stop(self) -> None:
        """End every running `events()` iteration (it returns normally). Final: later `events()` end at once."""
        self._stopped = True
        for reader in self._readers:
            reader.cancel()
        for queue in self._queues:
            queue.put_nowait(_End())

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Yield ARI events for our app in arrival order, forever, until `stop()`, `aclose()` or cancellation.

        A background task reads the WebSocket eagerly (Asterisk closes sockets of slow readers), so handle events
        quickly or hand them to per-call queues (see `event_channel_ids`). Iterate it inside
        `contextlib.aclosing(...)` or a task you cancel, so the socket is closed when you stop consuming.
        """
        queue: asyncio.Queue[dict[str, Any] | _End] = asyncio.Queue()
        if self._stopped:
            return
        reader = asyncio.create_task(self._read_events(queue), name=f"ari-events-{self.app}")
        self._readers.add(reader)
        self._queues.add(queue)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            self._queues.discard(queue)
            reader.cancel()
            await asyncio.wait({reader})
            self._readers.discard(reader)

    async def _read_events(self, queue: asyncio.Queue[dict[str, Any] | _End]) -> None:
        """Connect, pump events into `queue`, reconnect with backoff; ends only by cancellation (or a bug)."""
        delay = self._backoff_min
        try:
            while True:
                opened, replaced, reason = await self._session(queue)
                if opened:
                    self.connected = False
                    queue.put_nowait({"type": DISCONNECTED, "application": self.app, "reason": reason})
                if replaced:
                    # Another engine registered the same app: do not fight it at full speed.
                    delay = self._backoff_max
                elif opened:
                    delay = self._backoff_min
                log.info("ARI events: reconnecting in %.1f s (%s)", delay, reason)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max)
        except Exception as exc:  # a bug: surface it to the consumer instead of hanging it
            log.exception("ARI events reader crashed")
            queue.put_nowait(_End(exc))
        finally:
            self.connected = False

    async def _session(self, queue: asyncio.Queue[dict[str, Any] | _End]) -> tuple[bool, bool, str]:
        """One WebSocket connection. Returns (opened, got ApplicationReplaced, why it ended)."""
        opened = replaced = False
        try:
            async with ws_connect(
                self.events_url,
                additional_headers={"Authorization": self._auth_header},
                open_timeout=self._open_timeout,
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_timeout,
                close_timeout=self._close_timeout,
                max_queue=None,          # never stop reading: Asterisk drops slow readers
                max_size=16 * 2**20,
                compression=None,
                proxy=None,
            ) as ws:
                opened = True
                self.connected = True
                self._ws, self._ws_rest = ws, False
                helper = asyncio.create_task(self._after_connect(ws), name=f"ari-connect-{self.app}")
                self._helpers.add(helper)
                helper.add_done_callback(self._helper_done)
                log.info("ARI events: connected to %s", self.events_url)
                queue.put_nowait({"type": CONNECTED, "application": self.app})
                try:
                    async for raw in ws:
                        event = self._parse(raw)
                        if event is None:
                            continue
                        etype = event.get("type")
                        if etype == "RESTResponse":      # an answer to one of our requests, never an event
                            self._take_response(event)
                            continue
                        if etype == "ApplicationReplaced":
                            replaced = True
                            log.warning("ARI events: application %r was taken over by another connection "
                                        "(another vpbx engine?); backing off", self.app)
                        queue.put_nowait(event)
                    why = f"closed by Asterisk ({ws.close_code} {ws.close_reason})".strip()
                finally:
                    self._ws, self._ws_rest = None, False
                    helper.cancel()
                    self._fail_pending("connection closed")
                return opened, replaced, why
        except websockets.exceptions.InvalidStatus as exc:
            status = exc.response.status_code
            hint = " (check the ARI user and password)" if status in (401, 403) else ""
            log.error("ARI events: Asterisk refused the WebSocket: HTTP %s%s", status, hint)
            return opened, replaced, f"HTTP {status}{hint}"
        except (OSError, websockets.exceptions.WebSocketException) as exc:
            # OSError includes TimeoutError (handshake or connect took longer than open_timeout)
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            (log.warning if opened else log.info)("ARI events: connection %s (%s)",
                                                  "lost" if opened else "failed", reason)
            return opened, replaced, reason

    def _helper_done(self, task: asyncio.Task[None]) -> None:
        self._helpers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ARI: setting up the connection failed", exc_info=task.exception())

    @staticmethod
    def _parse(raw: str | bytes) -> dict[str, Any] | None:
        try:
            event = json.loads(raw)
        except ValueError:
            log.warning("ARI events: ignoring a frame that is not JSON: %r", raw[:200])
            return None
        if not isinstance(event, dict):
            log.warning("ARI events: ignoring a frame that is not a JSON object: %r", raw[:200])
            return None
        return event


def _status(answer: Mapping[str, Any]) -> int:
    try:
        return int(answer.get("status_code") or 0)
    except (TypeError, ValueError):
        return 0

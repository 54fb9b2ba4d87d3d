"""Thin async ARI client. Rule: the only module that speaks HTTP/WebSocket to Asterisk; no business logic here.

REST: one shared `httpx.AsyncClient` (keep-alive, basic auth; Asterisk's http.conf `sessionlimit` is 100, so the pool is
capped well below it) over `vpbx.asterisk.ari.http11.Http11Transport` (unit tests pass
`transport=httpx.MockTransport(...)`).
Each method maps its keyword arguments to the ARI query parameters of the same operation in the ARI reference and
either returns the parsed JSON (None for 204) or raises one of `vpbx.asterisk.ari.errors`.

Events: `events()` keeps one WebSocket to `/ari/events?app=APP&subscribeAll=false` open, reconnecting by itself with
exponential backoff, and yields parsed events plus the synthetic `VpbxConnected` (after every (re)connect: reconcile
with `get_application()` now, events during the gap are lost) and `VpbxDisconnected` (the stream broke).
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx
import websockets
from websockets.asyncio.client import connect as ws_connect

from vpbx import STASIS_APP
from vpbx.asterisk.ari.errors import AriConflict, AriError, AriNotFound, AriUnavailable
from vpbx.asterisk.ari.events import CONNECTED, DISCONNECTED
from vpbx.asterisk.ari.http11 import Http11Transport

log = logging.getLogger(__name__)

Json = Any
ParamValue = str | int | bool | Sequence[str] | None


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
    ) -> None:
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

    async def _request(self, method: str, path: str, *, params: Mapping[str, ParamValue] | None = None,
                       body: Json = None, raw: bool = False) -> Json:
        query = _params(params or {})
        try:
            resp = await self._http.request(method, path, params=query, json=body)
        except httpx.TransportError as exc:
            raise AriUnavailable(
                f"Asterisk ARI unreachable at {self.base_url} ({type(exc).__name__}: {exc}) on {method} {path}: "
                f"is Asterisk running with the HTTP server and ARI enabled?",
                method=method, path=path, detail=str(exc)) from exc
        log.debug("ARI %s %s %s -> %s", method, path, query, resp.status_code)
        if resp.is_success:
            if raw:
                return resp.content
            if resp.status_code == 204 or not resp.content:
                return None
            try:
                return resp.json()
            except ValueError as exc:
                raise AriError(f"Asterisk ARI {method} {path} returned invalid JSON",
                               method=method, path=path, status=resp.status_code, detail=resp.text[:200]) from exc
        raise self._error(method, path, resp)

    @staticmethod
    def _error(method: str, path: str, resp: httpx.Response) -> AriError:
        status = resp.status_code
        detail = ""
        try:
            data = resp.json()
            if isinstance(data, dict):
                detail = str(data.get("message") or data.get("error") or "")
        except ValueError:
            pass
        if not detail:
            detail = resp.text.strip()[:200] or resp.reason_phrase
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
                log.info("ARI events: connected to %s", self.events_url)
                queue.put_nowait({"type": CONNECTED, "application": self.app})
                async for raw in ws:
                    event = self._parse(raw)
                    if event is None:
                        continue
                    if event.get("type") == "ApplicationReplaced":
                        replaced = True
                        log.warning("ARI events: application %r was taken over by another connection "
                                    "(another vpbx engine?); backing off", self.app)
                    queue.put_nowait(event)
                return opened, replaced, f"closed by Asterisk ({ws.close_code} {ws.close_reason})".strip()
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

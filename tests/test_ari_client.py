"""Tests for vpbx.asterisk.ari: REST through httpx.MockTransport, events through a real local WebSocket server."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from vpbx.asterisk.ari import (
    CONNECTED,
    DISCONNECTED,
    AriClient,
    AriConflict,
    AriError,
    AriNotFound,
    AriUnavailable,
    event_channel_ids,
)
from vpbx.domain.errors import AsteriskError

AUTH = "Basic " + base64.b64encode(b"vpbx:s3cret").decode()


# ---------------------------------------------------------------------------------------------------- REST


class Recorder:
    """MockTransport handler: records requests and answers with a fixed response."""

    def __init__(self, status: int = 204, body: Any = None, content: bytes | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status, self.body, self.content = status, body, content

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.content is not None:
            return httpx.Response(self.status, content=self.content)
        if self.body is not None:
            return httpx.Response(self.status, json=self.body)
        return httpx.Response(self.status)


def run_rest(call: Callable[[AriClient], Awaitable[Any]], handler: Callable[[httpx.Request], httpx.Response],
             base_url: str = "http://127.0.0.1:8088") -> Any:
    async def main() -> Any:
        async with AriClient(base_url, "vpbx", "s3cret", "vpbx", transport=httpx.MockTransport(handler)) as ari:
            return await call(ari)
    return asyncio.run(main())


# (call, method, raw path after /ari, exact query params, JSON body or None)
REST_CASES: list[tuple[str, Callable[[AriClient], Awaitable[Any]], str, str, dict[str, str], Any]] = [
    ("list_channels", lambda a: a.list_channels(), "GET", "/channels", {}, None),
    ("get_channel", lambda a: a.get_channel("c1"), "GET", "/channels/c1", {}, None),
    ("create", lambda a: a.create("PJSIP/alice", app_args=["leg", "CALL1"], channel_id="leg-1"),
     "POST", "/channels/create",
     {"endpoint": "PJSIP/alice", "app": "vpbx", "appArgs": "leg,CALL1", "channelId": "leg-1"}, None),
    ("create-full", lambda a: a.create("PJSIP/bob", "other", "x", "l2", other_channel_id="l2b", originator="c1",
                                       formats=["ulaw", "alaw"], variables={"CALLERID(name)": "Alice"}),
     "POST", "/channels/create",
     {"endpoint": "PJSIP/bob", "app": "other", "appArgs": "x", "channelId": "l2", "otherChannelId": "l2b",
      "originator": "c1", "formats": "ulaw,alaw"}, {"variables": {"CALLERID(name)": "Alice"}}),
    ("originate", lambda a: a.originate("PJSIP/alice", extension="100", context="vpbx-in", priority=1,
                                        caller_id="Bob <200>", timeout=20, channel_id="o1"),
     "POST", "/channels",
     {"endpoint": "PJSIP/alice", "extension": "100", "context": "vpbx-in", "priority": "1",
      "callerId": "Bob <200>", "timeout": "20", "channelId": "o1"}, None),
    ("dial", lambda a: a.dial("leg-1", caller="c1", timeout=25), "POST", "/channels/leg-1/dial",
     {"caller": "c1", "timeout": "25"}, None),
    ("dial-bare", lambda a: a.dial("leg-1"), "POST", "/channels/leg-1/dial", {}, None),
    ("answer", lambda a: a.answer("c1"), "POST", "/channels/c1/answer", {}, None),
    ("ring", lambda a: a.ring("c1"), "POST", "/channels/c1/ring", {}, None),
    ("ring_stop", lambda a: a.ring_stop("c1"), "DELETE", "/channels/c1/ring", {}, None),
    ("progress", lambda a: a.progress("c1"), "POST", "/channels/c1/progress", {}, None),
    ("play", lambda a: a.play("c1", "sound:hello-world", lang="en"), "POST", "/channels/c1/play",
     {"media": "sound:hello-world", "lang": "en"}, None),
    ("play-id", lambda a: a.play("c1", ["sound:a", "recording:b"], playback_id="pb1"), "POST",
     "/channels/c1/play/pb1", {"media": "sound:a,recording:b"}, None),
    ("record", lambda a: a.record("c1", "vm-1", max_duration=120, max_silence=5, beep=True, terminate_on="#",
                                  if_exists="fail"),
     "POST", "/channels/c1/record",
     {"name": "vm-1", "format": "wav", "maxDurationSeconds": "120", "maxSilenceSeconds": "5", "ifExists": "fail",
      "beep": "true", "terminateOn": "#"}, None),
    ("hangup", lambda a: a.hangup("c1"), "DELETE", "/channels/c1", {}, None),
    ("hangup-reason", lambda a: a.hangup("c1", reason="answered_elsewhere"), "DELETE", "/channels/c1",
     {"reason": "answered_elsewhere"}, None),
    ("hangup-code", lambda a: a.hangup("c1", reason_code=17), "DELETE", "/channels/c1", {"reason_code": "17"}, None),
    ("continue", lambda a: a.continue_in_dialplan("c1", context="vpbx-fallback", extension="s", priority=1),
     "POST", "/channels/c1/continue", {"context": "vpbx-fallback", "extension": "s", "priority": "1"}, None),
    ("set_var", lambda a: a.set_var("c1", "VPBX_CALL", "42"), "POST", "/channels/c1/variable",
     {"variable": "VPBX_CALL", "value": "42"}, None),
    ("stop_playback", lambda a: a.stop_playback("pb1"), "DELETE", "/playbacks/pb1", {}, None),
    ("live_recording", lambda a: a.live_recording("vm-1"), "GET", "/recordings/live/vm-1", {}, None),
    ("stop_recording", lambda a: a.stop_recording("vm-1"), "POST", "/recordings/live/vm-1/stop", {}, None),
    ("delete_stored", lambda a: a.delete_stored("vm-1"), "DELETE", "/recordings/stored/vm-1", {}, None),
    ("create_bridge", lambda a: a.create_bridge(), "POST", "/bridges", {"type": "mixing"}, None),
    ("create_bridge-id", lambda a: a.create_bridge("mixing,dtmf_events", bridge_id="b1"), "POST", "/bridges",
     {"type": "mixing,dtmf_events", "bridgeId": "b1"}, None),
    ("add_channel", lambda a: a.add_channel("b1", ["c1", "leg-1"]), "POST", "/bridges/b1/addChannel",
     {"channel": "c1,leg-1"}, None),
    ("add_channel-opts", lambda a: a.add_channel("b1", "c1", role="participant", absorb_dtmf=False, mute=True,
                                                 inhibit_connected_line_updates=True),
     "POST", "/bridges/b1/addChannel",
     {"channel": "c1", "role": "participant", "absorbDTMF": "false", "mute": "true",
      "inhibitConnectedLineUpdates": "true"}, None),
    ("remove_channel", lambda a: a.remove_channel("b1", "c1"), "POST", "/bridges/b1/removeChannel",
     {"channel": "c1"}, None),
    ("destroy_bridge", lambda a: a.destroy_bridge("b1"), "DELETE", "/bridges/b1", {}, None),
    ("get_application", lambda a: a.get_application(), "GET", "/applications/vpbx", {}, None),
    ("get_application-other", lambda a: a.get_application("x"), "GET", "/applications/x", {}, None),
    ("asterisk_info", lambda a: a.asterisk_info(), "GET", "/asterisk/info", {}, None),
    ("asterisk_info-only", lambda a: a.asterisk_info(only=["build", "status"]), "GET", "/asterisk/info",
     {"only": "build,status"}, None),
    ("quoted-id", lambda a: a.answer("a/b c"), "POST", "/channels/a%2Fb%20c/answer", {}, None),
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("call,method,path,params,body", [c[1:] for c in REST_CASES], ids=[c[0] for c in REST_CASES])
def test_rest_request_shape(call: Callable[[AriClient], Awaitable[Any]], method: str, path: str,
                            params: dict[str, str], body: Any) -> None:
    rec = Recorder(204)
    assert run_rest(call, rec) is None
    [req] = rec.requests
    assert req.method == method
    assert req.url.raw_path.decode().split("?")[0] == "/ari" + path
    assert req.url.host == "127.0.0.1" and req.url.port == 8088
    assert req.url.params.multi_items() == list(params.items())
    assert req.headers["authorization"] == AUTH
    if body is None:
        assert req.content == b""
    else:
        assert json.loads(req.content) == body


@pytest.mark.timeout(10)
def test_rest_returns_parsed_json() -> None:
    channel = {"id": "c1", "state": "Ring", "name": "PJSIP/alice-00000001"}
    assert run_rest(lambda a: a.get_channel("c1"), Recorder(200, channel)) == channel
    assert run_rest(lambda a: a.list_channels(), Recorder(200, [channel])) == [channel]


@pytest.mark.timeout(10)
def test_stored_file_returns_bytes() -> None:
    rec = Recorder(200, content=b"RIFF\x00\x01WAVE")
    assert run_rest(lambda a: a.stored_file("vm-1"), rec) == b"RIFF\x00\x01WAVE"
    assert rec.requests[0].method == "GET"
    assert rec.requests[0].url.path == "/ari/recordings/stored/vm-1/file"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8088/", "http://127.0.0.1:8088/ari", "http://127.0.0.1:8088/ari/"])
def test_base_url_normalised(base_url: str) -> None:
    rec = Recorder(204)
    run_rest(lambda a: a.answer("c1"), rec, base_url=base_url)
    assert str(rec.requests[0].url) == "http://127.0.0.1:8088/ari/channels/c1/answer"
    client = AriClient(base_url, "u", "p", "vpbx")
    assert client.events_url == "ws://127.0.0.1:8088/ari/events?app=vpbx&subscribeAll=false"
    asyncio.run(client.aclose())


def test_bad_base_url() -> None:
    with pytest.raises(ValueError, match="base_url"):
        AriClient("127.0.0.1:8088", "u", "p")


@pytest.mark.timeout(10)
@pytest.mark.parametrize("status,exc", [
    (404, AriNotFound), (409, AriConflict), (422, AriConflict), (500, AriUnavailable), (503, AriUnavailable),
    (400, AriError), (401, AriError), (403, AriError),
])
def test_rest_error_mapping(status: int, exc: type[AriError]) -> None:
    rec = Recorder(status, {"message": "Channel not in Stasis application"})
    with pytest.raises(exc) as info:
        run_rest(lambda a: a.answer("c1"), rec)
    err = info.value
    assert type(err) is exc
    assert isinstance(err, AsteriskError)
    assert (err.method, err.path, err.status) == ("POST", "/channels/c1/answer", status)
    assert err.detail == "Channel not in Stasis application"
    assert "POST /channels/c1/answer" in str(err) and str(status) in str(err)
    if status == 401:
        assert "password" in str(err)


@pytest.mark.timeout(10)
def test_error_without_json_body() -> None:
    with pytest.raises(AriNotFound) as info:
        run_rest(lambda a: a.get_channel("gone"), Recorder(404, content=b"Not Found"))
    assert info.value.detail == "Not Found"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                   httpx.RemoteProtocolError("peer closed")])
def test_transport_errors_are_unavailable(error: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error
    with pytest.raises(AriUnavailable) as info:
        run_rest(lambda a: a.asterisk_info(), handler)
    assert info.value.status is None
    assert "unreachable" in str(info.value)


@pytest.mark.timeout(10)
def test_invalid_json_is_ari_error() -> None:
    with pytest.raises(AriError, match="invalid JSON"):
        run_rest(lambda a: a.get_channel("c1"), Recorder(200, content=b"{nope"))


@pytest.mark.timeout(10)
def test_real_connection_refused_is_unavailable() -> None:
    async def main() -> None:
        # find a free port, then close it so nothing listens there
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        async with AriClient(f"http://127.0.0.1:{port}", "u", "p") as ari:
            with pytest.raises(AriUnavailable):
                await ari.asterisk_info()
    asyncio.run(main())


# ---------------------------------------------------------------------------------------------------- event helper


def test_event_channel_ids() -> None:
    ch = lambda i: {"id": i, "name": f"PJSIP/x-{i}"}  # noqa: E731
    assert event_channel_ids({"type": "StasisStart", "channel": ch("c1"), "args": []}) == ["c1"]
    assert event_channel_ids({"type": "Dial", "peer": ch("leg"), "caller": ch("c1"), "dialstatus": "RINGING"}) \
        == ["leg", "c1"]
    assert event_channel_ids({"type": "Dial", "peer": ch("leg"), "dialstatus": "ANSWER"}) == ["leg"]
    assert event_channel_ids({"type": "PlaybackFinished",
                              "playback": {"id": "pb", "target_uri": "channel:c1"}}) == ["c1"]
    assert event_channel_ids({"type": "PlaybackStarted",
                              "playback": {"id": "pb", "target_uri": "bridge:b1"}}) == []
    assert event_channel_ids({"type": "RecordingFinished",
                              "recording": {"name": "vm", "target_uri": "channel:c2"}}) == ["c2"]
    assert event_channel_ids({"type": "BridgeDestroyed", "bridge": {"id": "b1", "channels": ["c1", "leg"]}}) \
        == ["c1", "leg"]
    assert event_channel_ids({"type": "ChannelEnteredBridge", "channel": ch("leg"),
                              "bridge": {"id": "b1", "channels": ["c1", "leg"]}}) == ["leg", "c1"]
    assert event_channel_ids({"type": "ChannelVarset", "variable": "X", "value": "1"}) == []
    assert event_channel_ids({"type": CONNECTED}) == []
    assert event_channel_ids({"type": "BridgeBlindTransfer", "channel": ch("t"), "transferee": ch("c1"),
                              "replace_channel": ch("r"), "bridge": {"id": "b", "channels": ["t", "c1"]}}) \
        == ["t", "r", "c1"]


# ---------------------------------------------------------------------------------------------------- events

Handler = Callable[[ServerConnection, int], Awaitable[None]]


class FakeAsterisk:
    """A real WebSocket server on 127.0.0.1:0 playing Asterisk's /ari/events; `handler(ws, n)` runs per connection."""

    def __init__(self, handler: Handler, reject_first: int = 0) -> None:
        self.handler = handler
        self.reject_first = reject_first
        self.attempts: list[float] = []
        self.connections = 0
        self.paths: list[str] = []
        self.auth: list[str | None] = []
        self.port = 0
        self._server: Any = None

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        self.attempts.append(time.monotonic())
        self.paths.append(request.path)
        self.auth.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != AUTH:
            return Response(401, "Unauthorized", Headers(), b"")
        if len(self.attempts) <= self.reject_first:
            return Response(503, "Service Unavailable", Headers(), b"")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        await self.handler(ws, self.connections)

    async def __aenter__(self) -> FakeAsterisk:
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._process_request,
                                   close_timeout=0.2, ping_interval=None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    def client(self, **kw: Any) -> AriClient:
        return AriClient(f"http://127.0.0.1:{self.port}", "vpbx", "s3cret", "vpbx", **kw)


def ev(kind: str, n: int, channel: str = "c1") -> str:
    return json.dumps({"type": kind, "n": n, "channel": {"id": channel}, "application": "vpbx"})


async def take(stream: Any, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            out.append(await anext(stream))
    return out


async def hold_open(ws: ServerConnection) -> None:
    with contextlib.suppress(Exception):
        await ws.wait_closed()


@pytest.mark.timeout(10)
def test_events_in_order_with_auth_and_url() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        for i in range(5):
            await ws.send(ev("ChannelStateChange", i))
        await ws.send(b"not json")          # ignored
        await ws.send(json.dumps([1, 2]))     # ignored: not an object
        await ws.send(ev("StasisEnd", 5))
        await hold_open(ws)

    async def main() -> None:
        async with FakeAsterisk(handler) as fake, fake.client() as ari:
            async with contextlib.aclosing(ari.events()) as stream:
                got = await take(stream, 7)
                assert ari.connected
            assert got[0] == {"type": CONNECTED, "application": "vpbx"}
            assert [e["n"] for e in got[1:]] == [0, 1, 2, 3, 4, 5]
            assert got[-1]["type"] == "StasisEnd"
            assert fake.paths == ["/ari/events?app=vpbx&subscribeAll=false"]
            assert fake.auth == [AUTH]
    asyncio.run(main())


@pytest.mark.timeout(10)
def test_reconnects_after_server_close() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        await ws.send(ev("StasisStart", n))
        if n == 1:
            await ws.close()                 # Asterisk restarted / closed us
        else:
            await hold_open(ws)

    async def main() -> None:
        async with FakeAsterisk(handler) as fake, fake.client() as ari:
            async with contextlib.aclosing(ari.events()) as stream:
                t0 = time.monotonic()
                got = await take(stream, 5)
                elapsed = time.monotonic() - t0
            assert [e["type"] for e in got] == [CONNECTED, "StasisStart", DISCONNECTED, CONNECTED, "StasisStart"]
            assert [e.get("n") for e in got if e["type"] == "StasisStart"] == [1, 2]
            assert "closed" in got[2]["reason"]
            assert fake.connections == 2
            assert elapsed < 2.0             # first retry after backoff_min (0.2 s)
    asyncio.run(main())


@pytest.mark.timeout(15)
def test_silent_server_detected_by_ping_within_6s() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        await ws.send(ev("StasisStart", n))
        if n == 1:
            ws.transport.pause_reading()     # peer stops answering pings (host froze / network gone)
        await hold_open(ws)

    async def main() -> None:
        async with FakeAsterisk(handler) as fake, fake.client() as ari:   # default ping 2 s / timeout 3 s
            async with contextlib.aclosing(ari.events()) as stream:
                got = await take(stream, 2)
                t0 = time.monotonic()
                gone = await take(stream, 1, timeout=8)
                detected = time.monotonic() - t0
                again = await take(stream, 2)
            assert gone[0]["type"] == DISCONNECTED
            assert "ping" in gone[0]["reason"]
            assert detected <= 6.0, detected
            assert [e["type"] for e in got + again] == [CONNECTED, "StasisStart", CONNECTED, "StasisStart"]
    asyncio.run(main())


@pytest.mark.timeout(10)
def test_stalled_handshake_times_out_and_retries_then_stop_ends_cleanly() -> None:
    async def main() -> None:
        accepted: list[float] = []
        writers: list[asyncio.StreamWriter] = []

        async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(time.monotonic())
            writers.append(writer)
            with contextlib.suppress(Exception):
                await reader.read()           # read the upgrade request, never reply

        server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ari = AriClient(f"http://127.0.0.1:{port}", "vpbx", "s3cret", open_timeout=0.5)
        seen: list[dict[str, Any]] = []

        async def consume() -> None:
            async for event in ari.events():
                seen.append(event)

        task = asyncio.create_task(consume())
        await asyncio.sleep(1.6)
        t0 = time.monotonic()
        ari.stop()
        await asyncio.wait_for(task, 1.0)     # returns normally, promptly
        assert time.monotonic() - t0 < 0.5
        assert task.exception() is None
        assert seen == []
        assert len(accepted) >= 2              # timed out and tried again
        assert not ari.connected
        await ari.aclose()
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()
    asyncio.run(main())


@pytest.mark.timeout(10)
def test_backoff_grows_then_resets_after_good_connection() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        await ws.send(ev("StasisStart", n))
        if n == 1:
            await ws.close()
        else:
            await hold_open(ws)

    async def main() -> None:
        async with FakeAsterisk(handler, reject_first=4) as fake, \
                fake.client(backoff_min=0.05, backoff_max=0.2) as ari:
            async with contextlib.aclosing(ari.events()) as stream:
                got = await take(stream, 5)
            assert [e["type"] for e in got] == [CONNECTED, "StasisStart", DISCONNECTED, CONNECTED, "StasisStart"]
            a = fake.attempts
            assert len(a) == 6
            gaps = [a[i + 1] - a[i] for i in range(5)]
            # rejected (HTTP 503) x4: 0.05, 0.1, 0.2, 0.2 (capped); then good connection; reset to 0.05
            for gap, want in zip(gaps[:3], [0.05, 0.1, 0.2], strict=True):
                assert want * 0.8 <= gap < want + 0.15, gaps
            assert gaps[4] < 0.15, gaps
    asyncio.run(main())


@pytest.mark.timeout(10)
def test_application_replaced_backs_off_to_max_and_reconnects() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        if n == 1:
            await ws.send(json.dumps({"type": "ApplicationReplaced", "application": "vpbx"}))
            await ws.close()
        else:
            await ws.send(ev("StasisStart", n))
            await hold_open(ws)

    async def main() -> None:
        async with FakeAsterisk(handler) as fake, fake.client(backoff_max=0.6) as ari:
            async with contextlib.aclosing(ari.events()) as stream:
                got = await take(stream, 5)
            assert [e["type"] for e in got] == [CONNECTED, "ApplicationReplaced", DISCONNECTED, CONNECTED,
                                                "StasisStart"]
            assert fake.attempts[1] - fake.attempts[0] >= 0.55    # waited backoff_max, not backoff_min
    asyncio.run(main())


@pytest.mark.timeout(10)
def test_wrong_password_keeps_retrying_without_events() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        await hold_open(ws)

    async def main() -> None:
        async with FakeAsterisk(handler) as fake:
            ari = AriClient(f"http://127.0.0.1:{fake.port}", "vpbx", "wrong", backoff_min=0.05, backoff_max=0.1)
            stream = ari.events()
            with pytest.raises(TimeoutError):
                await take(stream, 1, timeout=0.5)
            assert len(fake.attempts) >= 3 and fake.connections == 0
            await ari.aclose()
    asyncio.run(main())


@pytest.mark.timeout(10)
def test_cancelling_consumer_closes_socket() -> None:
    async def main() -> None:
        closed = asyncio.Event()

        async def handler(ws: ServerConnection, n: int) -> None:
            await ws.send(ev("StasisStart", n))
            await hold_open(ws)
            closed.set()

        async with FakeAsterisk(handler) as fake, fake.client() as ari:
            got: list[dict[str, Any]] = []

            async def consume() -> None:
                async for event in ari.events():
                    got.append(event)

            task = asyncio.create_task(consume())
            async with asyncio.timeout(3):
                while len(got) < 2:  # noqa: ASYNC110 - polls a list the consumer task fills
                    await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(closed.wait(), 2)
            assert not ari._readers
    asyncio.run(main())


@pytest.mark.timeout(10)
def test_aclose_ends_running_stream_and_later_events_end_at_once() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        await hold_open(ws)

    async def main() -> None:
        async with FakeAsterisk(handler) as fake:
            ari = fake.client()
            stream = ari.events()
            assert (await take(stream, 1))[0]["type"] == CONNECTED
            pending = asyncio.create_task(anext(stream))
            await asyncio.sleep(0.05)
            await asyncio.wait_for(ari.aclose(), 2)
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(pending, 2)
            assert [e async for e in ari.events()] == []
    asyncio.run(main())

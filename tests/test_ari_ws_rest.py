"""REST over the ARI event WebSocket (vpbx.asterisk.ari.client), without Asterisk: a local WebSocket server plays
Asterisk 22.4+ (answers RESTRequest with RESTResponse) or an older Asterisk (ignores them); HTTP goes to
httpx.MockTransport, so every request shows which way it went."""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from vpbx.asterisk.ari import (
    CONNECTED,
    DISCONNECTED,
    AriClient,
    AriConflict,
    AriError,
    AriNotFound,
    AriUnavailable,
)
from vpbx.asterisk.ari.events import ENGINE_EVENTS
from vpbx.config import load_config
from vpbx.domain.errors import ConfigError

pytestmark = pytest.mark.timeout(15)

Answer = dict[str, Any] | None
Responder = Callable[[dict[str, Any]], Answer]


def ok(status: int = 200, body: Any = None, reason: str = "OK") -> dict[str, Any]:
    out: dict[str, Any] = {"status_code": status, "reason_phrase": reason}
    if body is not None:
        out["content_type"] = "application/json"
        out["message_body"] = json.dumps(body)
    return out


def default_responder(msg: dict[str, Any]) -> Answer:
    if msg["method"] == "PUT" and msg["uri"].endswith("/eventFilter"):
        return ok(200, {"name": "vpbx"})
    if msg["uri"].startswith("channels/gone"):
        return ok(404, {"message": "Channel not found"}, "Not Found")
    if msg["method"] == "GET":
        return ok(200, {"echo": msg["uri"]})
    return ok(204, reason="No Content")


class FakeAri:
    """A WebSocket server playing /ari/events. `responder(msg)` answers each RESTRequest (None: never answer, as an
    Asterisk before 22.4 does); `events` are sent after connecting; `close_on` closes the socket on that uri."""

    def __init__(self, responder: Responder = default_responder, events: list[dict[str, Any]] | None = None,
                 reverse_batch: int = 0) -> None:
        self.responder = responder
        self.events = events or []
        self.requests: list[dict[str, Any]] = []
        self.reverse_batch = reverse_batch          # hold this many answers, then send them in reverse order
        self.close_on: str | None = None
        self.sockets: list[ServerConnection] = []
        self.http: list[httpx.Request] = []
        self.port = 0
        self._server: Any = None

    async def _handle(self, ws: ServerConnection) -> None:
        self.sockets.append(ws)
        for event in self.events:
            await ws.send(json.dumps(event))
        held: list[dict[str, Any]] = []
        with contextlib.suppress(Exception):
            async for raw in ws:
                msg = json.loads(raw)
                self.requests.append(msg)
                assert msg["type"] == "RESTRequest"
                if self.close_on is not None and msg["uri"].startswith(self.close_on):
                    await ws.close()
                    return
                answer = self.responder(msg)
                if answer is None:
                    continue
                answer = {"type": "RESTResponse", "transaction_id": msg["transaction_id"],
                          "request_id": msg["request_id"], "uri": msg["uri"], **answer}
                if self.reverse_batch and not msg["uri"].endswith("/eventFilter"):
                    held.append(answer)
                    if len(held) == self.reverse_batch:
                        for a in reversed(held):
                            await ws.send(json.dumps(a))
                        held.clear()
                    continue
                await ws.send(json.dumps(answer))

    def http_handler(self, request: httpx.Request) -> httpx.Response:
        self.http.append(request)
        if request.url.path.endswith("/file"):
            return httpx.Response(200, content=b"RIFF\x00WAVE")
        if request.method == "GET":
            return httpx.Response(200, json={"via": "http"})
        return httpx.Response(204)

    async def __aenter__(self) -> FakeAri:
        self._server = await serve(self._handle, "127.0.0.1", 0, ping_interval=None, close_timeout=0.2)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    def client(self, **kw: Any) -> AriClient:
        return AriClient(f"http://127.0.0.1:{self.port}", "vpbx", "s3cret", "vpbx",
                         transport=httpx.MockTransport(self.http_handler), **kw)

    def rest(self) -> list[dict[str, Any]]:
        """The RESTRequests after the first one (the connection's probe: the event filter)."""
        return self.requests[1:]


async def until(pred: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():  # noqa: ASYNC110 - polls state another task changes
            await asyncio.sleep(0.005)


class Running:
    """An AriClient with its event stream consumed in the background (`seen`)."""

    def __init__(self, ari: AriClient) -> None:
        self.ari = ari
        self.seen: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        async def consume() -> None:
            async for event in self.ari.events():
                self.seen.append(event)
        self.task = asyncio.create_task(consume())
        await until(lambda: any(e["type"] == CONNECTED for e in self.seen))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.ari.aclose()


def test_requests_go_over_the_websocket_once_asterisk_answers() -> None:
    async def main() -> None:
        async with FakeAri() as fake, Running(fake.client()) as run:
            ari = run.ari
            await until(lambda: ari.rest_over_ws)
            assert await ari.get_channel("c1") == {"echo": "channels/c1"}
            assert await ari.answer("c1") is None
            await ari.create("PJSIP/alice", app_args=["leg", "CALL 1"], channel_id="leg-1",
                             variables={"CALLERID(name)": "Alice é"})
            await ari.hangup("c1", reason="normal")
            assert fake.http == []                      # nothing went by HTTP
            assert ari.sent_over_ws == 4 and ari.sent_over_http == 0
            get, answer, create, hangup = fake.rest()
            assert answer["method"] == "POST" and answer["uri"] == "channels/c1/answer"
            assert answer["request_id"] and answer["transaction_id"]
            assert "message_body" not in answer
            assert get["method"] == "GET" and get["uri"] == "channels/c1"
            path, _, query = create["uri"].partition("?")
            assert path == "channels/create"
            assert dict(parse_qsl(query)) == {"endpoint": "PJSIP/alice", "app": "vpbx", "appArgs": "leg,CALL 1",
                                              "channelId": "leg-1"}
            assert "PJSIP%2Falice" in query and "CALL%201" in query     # percent-encoded like HTTP
            assert create["content_type"] == "application/json"
            assert json.loads(create["message_body"]) == {"variables": {"CALLERID(name)": "Alice é"}}
            assert (hangup["method"], hangup["uri"]) == ("DELETE", "channels/c1?reason=normal")
            assert len({r["request_id"] for r in fake.requests}) == len(fake.requests)
    asyncio.run(main())


def test_first_message_sets_the_event_filter() -> None:
    async def main() -> None:
        async with FakeAri() as fake, Running(fake.client()) as run:
            await until(lambda: run.ari.rest_over_ws)
            first = fake.requests[0]
            assert (first["method"], first["uri"]) == ("PUT", "applications/vpbx/eventFilter")
            body = json.loads(first["message_body"])
            allowed = [x["type"] for x in body["allowed"]]
            assert allowed[: len(ENGINE_EVENTS)] == list(ENGINE_EVENTS)
            assert {"StasisStart", "StasisEnd", "Dial", "ChannelTransfer", "RESTResponse"} <= set(allowed)
            assert "ChannelStateChange" not in allowed
    asyncio.run(main())


def test_without_event_types_the_probe_is_a_ping() -> None:
    async def main() -> None:
        async with FakeAri() as fake, Running(fake.client(event_types=None)) as run:
            await until(lambda: run.ari.rest_over_ws)
            assert (fake.requests[0]["method"], fake.requests[0]["uri"]) == ("GET", "asterisk/ping")
            assert fake.http == []
    asyncio.run(main())


@pytest.mark.parametrize("status,exc", [
    (404, AriNotFound), (409, AriConflict), (422, AriConflict), (500, AriUnavailable), (503, AriUnavailable),
    (400, AriError), (401, AriError),
])
def test_errors_map_as_over_http(status: int, exc: type[AriError]) -> None:
    def responder(msg: dict[str, Any]) -> Answer:
        if msg["uri"].endswith("/eventFilter"):
            return ok()
        return ok(status, {"message": "Channel not in Stasis application"}, "Whatever")

    async def main() -> AriError:
        async with FakeAri(responder) as fake, Running(fake.client()) as run:
            await until(lambda: run.ari.rest_over_ws)
            with pytest.raises(exc) as info:
                await run.ari.answer("c1")
            assert fake.http == []
            return info.value

    err = asyncio.run(main())
    assert type(err) is exc
    assert (err.method, err.path, err.status) == ("POST", "/channels/c1/answer", status)
    assert err.detail == "Channel not in Stasis application"
    assert "POST /channels/c1/answer" in str(err)


def test_error_without_body_uses_the_reason_phrase_and_bad_json_is_an_error() -> None:
    def responder(msg: dict[str, Any]) -> Answer:
        if msg["uri"].endswith("/eventFilter"):
            return ok()
        if msg["uri"] == "channels/gone":
            return {"status_code": 404, "reason_phrase": "Not Found"}
        return {"status_code": 200, "reason_phrase": "OK", "message_body": "{nope"}

    async def main() -> None:
        async with FakeAri(responder) as fake, Running(fake.client()) as run:
            await until(lambda: run.ari.rest_over_ws)
            with pytest.raises(AriNotFound) as info:
                await run.ari.get_channel("gone")
            assert info.value.detail == "Not Found"
            with pytest.raises(AriError, match="invalid JSON"):
                await run.ari.get_channel("c1")
    asyncio.run(main())


def test_responses_are_never_events_and_events_keep_their_order() -> None:
    events = [{"type": "StasisStart", "n": i, "channel": {"id": f"c{i}"}} for i in range(3)]
    stray = {"type": "RESTResponse", "request_id": "nobody", "transaction_id": "x", "status_code": 200,
             "reason_phrase": "OK", "uri": "x"}

    async def main() -> None:
        async with FakeAri(events=[*events[:2], stray, events[2]]) as fake, Running(fake.client()) as run:
            await until(lambda: run.ari.rest_over_ws)
            await asyncio.gather(*(run.ari.answer(f"c{i}") for i in range(10)))
            await until(lambda: len(run.seen) >= 4)
            await asyncio.sleep(0.05)
            assert [e["type"] for e in run.seen] == [CONNECTED, "StasisStart", "StasisStart", "StasisStart"]
            assert [e["n"] for e in run.seen[1:]] == [0, 1, 2]
    asyncio.run(main())


def test_answers_out_of_order_reach_their_own_requests() -> None:
    async def main() -> None:
        async with FakeAri(reverse_batch=20) as fake, Running(fake.client()) as run:
            await until(lambda: run.ari.rest_over_ws)
            got = await asyncio.gather(*(run.ari.get_channel(f"c{i}") for i in range(20)))
            assert got == [{"echo": f"channels/c{i}"} for i in range(20)]
            assert not run.ari._pending
    asyncio.run(main())


def test_no_answer_times_out_as_unavailable() -> None:
    def responder(msg: dict[str, Any]) -> Answer:
        return None if msg["uri"].startswith("channels/slow") else default_responder(msg)

    async def main() -> None:
        async with FakeAri(responder) as fake, Running(fake.client(timeout=0.3)) as run:
            await until(lambda: run.ari.rest_over_ws)
            t0 = time.monotonic()
            with pytest.raises(AriUnavailable) as info:
                await run.ari.answer("slow")
            assert 0.25 <= time.monotonic() - t0 < 1.5
            assert info.value.status is None and "no answer" in str(info.value)
            assert not run.ari._pending
            assert await run.ari.get_channel("c1") == {"echo": "channels/c1"}     # the socket is still good
            assert fake.http == []
    asyncio.run(main())


def test_socket_drop_fails_the_waiting_request_then_http_carries_requests() -> None:
    async def main() -> None:
        async with FakeAri() as fake:
            fake.close_on = "channels/doomed"
            async with Running(fake.client(backoff_min=5.0)) as run:
                await until(lambda: run.ari.rest_over_ws)
                t0 = time.monotonic()
                with pytest.raises(AriUnavailable) as info:
                    await run.ari.answer("doomed")
                assert time.monotonic() - t0 < 2.0
                assert "closed before the answer" in str(info.value)
                assert (info.value.method, info.value.path) == ("POST", "/channels/doomed/answer")
                await until(lambda: any(e["type"] == DISCONNECTED for e in run.seen))
                assert not run.ari.rest_over_ws and not run.ari._pending
                assert await run.ari.get_channel("c1") == {"via": "http"}          # not connected: HTTP
                assert [r.url.path for r in fake.http] == ["/ari/channels/c1"]
    asyncio.run(main())


def test_reconnect_probes_again_and_goes_back_to_the_websocket() -> None:
    async def main() -> None:
        async with FakeAri() as fake, Running(fake.client(backoff_min=0.05)) as run:
            await until(lambda: run.ari.rest_over_ws)
            await fake.sockets[0].close()
            await until(lambda: len(fake.sockets) == 2 and run.ari.rest_over_ws)
            assert await run.ari.get_channel("c2") == {"echo": "channels/c2"}
            assert [r["uri"] for r in fake.requests] == ["applications/vpbx/eventFilter"] * 2 + ["channels/c2"]
    asyncio.run(main())


def test_binary_answers_stay_on_http() -> None:
    async def main() -> None:
        async with FakeAri() as fake, Running(fake.client()) as run:
            await until(lambda: run.ari.rest_over_ws)
            assert await run.ari.stored_file("vm-1") == b"RIFF\x00WAVE"
            assert [r.url.path for r in fake.http] == ["/ari/recordings/stored/vm-1/file"]
            await run.ari.delete_stored("vm-1")                                      # JSON: WebSocket
            assert [r["uri"] for r in fake.rest()] == ["recordings/stored/vm-1"]
    asyncio.run(main())


def test_older_asterisk_that_ignores_requests_keeps_http() -> None:
    async def main() -> None:
        async with FakeAri(lambda msg: None) as fake, Running(fake.client(probe_timeout=0.2)) as run:
            ari = run.ari
            assert await ari.get_channel("c1") == {"via": "http"}                    # before the verdict: HTTP
            await until(lambda: any(r.url.path.endswith("/eventFilter") for r in fake.http))
            assert not ari.rest_over_ws
            assert await ari.get_channel("c2") == {"via": "http"}
            assert [r["uri"] for r in fake.requests] == ["applications/vpbx/eventFilter"]   # only the probe
            put = next(r for r in fake.http if r.url.path.endswith("/eventFilter"))
            assert put.method == "PUT"
            assert [x["type"] for x in json.loads(put.content)["allowed"]][: len(ENGINE_EVENTS)] == list(ENGINE_EVENTS)
    asyncio.run(main())


def test_rest_transport_http_never_uses_the_websocket() -> None:
    async def main() -> None:
        async with FakeAri() as fake, Running(fake.client(rest_transport="http")) as run:
            await until(lambda: len(fake.http) >= 1)
            assert await run.ari.get_channel("c1") == {"via": "http"}
            await run.ari.answer("c1")
            await asyncio.sleep(0.1)
            assert fake.requests == [] and not run.ari.rest_over_ws
            assert [(r.method, r.url.path) for r in fake.http] == [
                ("PUT", "/ari/applications/vpbx/eventFilter"), ("GET", "/ari/channels/c1"),
                ("POST", "/ari/channels/c1/answer")]
    asyncio.run(main())


def test_refused_event_filter_still_enables_rest() -> None:
    def responder(msg: dict[str, Any]) -> Answer:
        if msg["uri"].endswith("/eventFilter"):
            return ok(400, {"message": "Invalid filter"}, "Bad Request")
        return default_responder(msg)

    async def main() -> None:
        async with FakeAri(responder) as fake, Running(fake.client()) as run:
            await until(lambda: run.ari.rest_over_ws)
            assert await run.ari.get_channel("c1") == {"echo": "channels/c1"}
    asyncio.run(main())


def test_bad_rest_transport() -> None:
    with pytest.raises(ValueError, match="rest_transport"):
        AriClient("http://127.0.0.1:8088", "u", "p", rest_transport="websocket")


@pytest.mark.parametrize("line,want", [("", "auto"), ('rest_transport = "auto"', "auto"),
                                       ('rest_transport = "http"', "http")])
def test_config_rest_transport(tmp_path: Path, line: str, want: str) -> None:
    path = tmp_path / "vpbx.toml"
    path.write_text(f'[ari]\nurl = "http://127.0.0.1:8088"\n{line}\n')
    assert load_config(str(path)).ari.rest_transport == want


@pytest.mark.parametrize("line", ['rest_transport = "ws"', "rest_transport = 1"])
def test_config_rest_transport_refused(tmp_path: Path, line: str) -> None:
    path = tmp_path / "vpbx.toml"
    path.write_text(f"[ari]\n{line}\n")
    with pytest.raises(ConfigError, match=r"\[ari\] rest_transport"):
        load_config(str(path))


def test_uri_has_no_leading_slash_and_query_is_split_off() -> None:
    """What Asterisk sees as the uri: the path after /ari/ without a leading slash, then the query string."""
    async def main() -> None:
        async with FakeAri() as fake, Running(fake.client()) as run:
            await until(lambda: run.ari.rest_over_ws)
            await run.ari.play("c 1", ["sound:hello", "sound:world"], playback_id="pb/1")
            uri = fake.rest()[0]["uri"]
            parts = urlsplit("/" + uri)
            assert parts.path == "/channels/c%201/play/pb%2F1"
            assert dict(parse_qsl(parts.query)) == {"media": "sound:hello,sound:world"}
    asyncio.run(main())

"""REST over the ARI event WebSocket against the real Asterisk 22 sandbox: Asterisk answers the connection's first
RESTRequest (the event filter), requests then travel over the WebSocket with their query strings and JSON bodies
intact, Asterisk's 404 is AriNotFound, binary answers stay on HTTP, and the app gets only the allowed events."""
from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import pytest

from vpbx.asterisk.ari import CONNECTED, AriClient, AriError, AriNotFound
from vpbx.asterisk.ari.events import ENGINE_EVENTS

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(120)]


async def _until(pred: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():  # noqa: ASYNC110 - polls state another task changes
            await asyncio.sleep(0.01)


def test_requests_travel_over_the_event_websocket(asterisk):
    app = f"vpbxws{uuid.uuid4().hex[:8]}"
    cfg = asterisk.cfg.ari

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with AriClient(cfg.url, cfg.user, cfg.password, app) as ari:
            seen: list[dict[str, Any]] = []

            async def consume() -> None:
                async for event in ari.events():
                    seen.append(event)

            reader = asyncio.create_task(consume())
            try:
                await _until(lambda: ari.rest_over_ws)
                http_before = ari.sent_over_http
                info = await ari.asterisk_info("system")
                out["version"] = info["system"]["version"]
                channel_id = f"{app}-chan"
                await ari.create("Local/s@vpbx-unknown", app=app, channel_id=channel_id,
                                 variables={"VPBX_PROBE": "body é ok"})
                out["created"] = (await ari.get_channel(channel_id))["id"]
                value = "a b/c&d=e+f%g é"
                await ari.set_var(channel_id, "VPBX_Q", value)
                out["body_var"] = (await ari._request("GET", f"/channels/{channel_id}/variable",
                                                      params={"variable": "VPBX_PROBE"}))["value"]
                out["query_var"] = (await ari._request("GET", f"/channels/{channel_id}/variable",
                                                       params={"variable": "VPBX_Q"}))["value"]
                out["query_var_sent"] = value
                out["app"] = await ari.get_application()
                await ari.hangup(channel_id, reason="normal")
                with pytest.raises(AriNotFound) as missing:
                    await ari.get_channel("no-such-channel")
                with pytest.raises(AriNotFound) as gone:
                    await ari.hangup("no-such-channel", reason="normal")
                out["missing"], out["gone"] = missing.value, gone.value
                with pytest.raises(AriError) as audio:   # binary: HTTP (a 404 for a recording that is not there)
                    await ari.stored_file(f"{app}-none")
                out["audio"] = audio.value
                out["over_ws"] = ari.sent_over_ws
                out["over_http"] = ari.sent_over_http - http_before
                await asyncio.sleep(0.5)             # the hangup's events
                out["seen"] = [e["type"] for e in seen]
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        return out

    out = asyncio.run(run())
    assert out["version"].startswith("22."), out["version"]
    assert out["created"] == f"{app}-chan"
    assert out["body_var"] == "body é ok"
    assert out["query_var"] == out["query_var_sent"]
    assert out["missing"].status == 404 and "Channel not found" in out["missing"].detail
    assert out["gone"].status == 404 and out["gone"].method == "DELETE"
    assert out["audio"].status == 404
    assert out["over_ws"] == 10                  # every JSON request went over the WebSocket...
    assert out["over_http"] == 1                 # ...and only the audio one by HTTP
    allowed = {x["type"] for x in out["app"]["events_allowed"]}
    assert set(ENGINE_EVENTS) <= allowed
    assert set(out["seen"]) <= allowed | {CONNECTED}, out["seen"]


def test_http_switch_keeps_every_request_on_http(asterisk):
    app = f"vpbxws{uuid.uuid4().hex[:8]}"
    cfg = asterisk.cfg.ari

    async def run() -> tuple[int, int, list[Any]]:
        async with AriClient(cfg.url, cfg.user, cfg.password, app, rest_transport="http") as ari:
            events = ari.events()
            assert (await anext(events))["type"] == CONNECTED
            await asyncio.sleep(0.5)                 # the event filter (by HTTP)
            await ari.asterisk_info("system")
            with pytest.raises(AriNotFound):
                await ari.get_channel("no-such-channel")
            allowed = (await ari.get_application())["events_allowed"]
            await events.aclose()
            return ari.sent_over_ws, ari.sent_over_http, allowed

    over_ws, over_http, allowed = asyncio.run(run())
    assert over_ws == 0 and over_http == 4
    assert {x["type"] for x in allowed} >= set(ENGINE_EVENTS)

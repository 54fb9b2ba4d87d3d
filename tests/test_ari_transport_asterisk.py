"""vpbx.asterisk.ari.http11.Http11Transport (the ARI client's HTTP transport in production) against the real
Asterisk 22 ARI.

The unit tests drive AriClient through httpx.MockTransport; these check the bytes on the wire with Asterisk's own HTTP
server: keep-alive reuse, concurrency within the connection cap, Asterisk's errors mapped like before, JSON bodies,
connections Asterisk closes after its keep-alive time (http.conf session_keep_alive, 15 s by default), and an
unreachable server.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest

from vpbx.asterisk.ari import AriClient, AriNotFound, AriUnavailable
from vpbx.asterisk.ari.errors import AriError
from vpbx.asterisk.ari.http11 import Http11Transport

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(120)]

ASTERISK_KEEP_ALIVE_S = 15


def _client(asterisk, transport: Http11Transport, app: str = "vpbx", password: str | None = None) -> AriClient:
    ari = asterisk.cfg.ari
    return AriClient(ari.url, ari.user, ari.password if password is None else password, app, transport=transport)


def test_requests_reuse_one_keep_alive_connection(asterisk):
    async def run() -> tuple[list[dict], int]:
        transport = Http11Transport()
        async with _client(asterisk, transport) as ari:
            infos = [await ari.asterisk_info("system") for _ in range(200)]
        return infos, transport.opened

    infos, opened = asyncio.run(run())
    assert all("version" in info["system"] for info in infos), infos[0]
    assert opened == 1


def test_concurrent_requests_stay_within_the_connection_cap(asterisk):
    async def run() -> tuple[list[dict], int]:
        transport = Http11Transport(max_connections=4)
        async with _client(asterisk, transport) as ari:
            infos = await asyncio.gather(*(ari.asterisk_info("system") for _ in range(300)))
        return infos, transport.opened

    infos, opened = asyncio.run(run())
    assert len(infos) == 300 and all("version" in info["system"] for info in infos)
    assert 1 < opened <= 4, opened


def test_asterisk_errors_keep_their_meaning(asterisk):
    async def run() -> tuple[AriError, AriError, AriError]:
        async with _client(asterisk, Http11Transport()) as ari:
            with pytest.raises(AriNotFound) as missing:
                await ari.get_channel("no-such-channel")
            with pytest.raises(AriNotFound) as gone:
                await ari.hangup("no-such-channel", reason="normal")
        async with _client(asterisk, Http11Transport(), password="wrong-password") as ari:
            with pytest.raises(AriError) as refused:
                await ari.asterisk_info()
        return missing.value, gone.value, refused.value

    missing, gone, refused = asyncio.run(run())
    assert missing.status == 404 and "Channel not found" in missing.detail, (missing.status, missing.detail)
    assert gone.status == 404 and gone.method == "DELETE"
    assert refused.status == 401 and not isinstance(refused, AriUnavailable)


def test_json_body_reaches_asterisk(asterisk):
    """POST /channels/create with a JSON body of channel variables (what the engine sends for outbound legs)."""
    app = f"vpbxt{uuid.uuid4().hex[:8]}"

    async def run() -> str:
        async with _client(asterisk, Http11Transport(), app=app) as ari:
            events = ari.events()
            assert (await anext(events))["type"] == "VpbxConnected"          # the app exists from here on
            channel_id = f"{app}-chan"
            await ari.create("Local/s@vpbx-unknown", app=app, channel_id=channel_id,
                             variables={"VPBX_PROBE": "body é ok"})
            try:
                value = await ari._request("GET", f"/channels/{channel_id}/variable", params={"variable": "VPBX_PROBE"})
            finally:
                with contextlib.suppress(AriError):
                    await ari.hangup(channel_id)
                await events.aclose()
            return value["value"]

    assert asyncio.run(run()) == "body é ok"


def test_connections_asterisk_closed_are_replaced(asterisk):
    """Asterisk closes a keep-alive connection after 15 s idle. Noticed while we wait (the loop sees the close) or
    only when the next request crosses it (the loop was busy: a blocking wait), the request is answered either way."""
    async def run() -> list[tuple[int, int]]:
        transport = Http11Transport()
        seen = []
        async with _client(asterisk, transport) as ari:
            await ari.asterisk_info("system")
            seen.append((transport.opened, transport.resent))
            time.sleep(ASTERISK_KEEP_ALIVE_S + 2)  # noqa: ASYNC251 - blocks the loop on purpose: the close is not seen
            await ari.asterisk_info("system")
            seen.append((transport.opened, transport.resent))
            await asyncio.sleep(ASTERISK_KEEP_ALIVE_S + 2)  # the loop reads the close while idle
            await ari.asterisk_info("system")
            seen.append((transport.opened, transport.resent))
        return seen

    # (connections opened, requests sent again): the crossed close costs one resend, the noticed one none
    assert asyncio.run(run()) == [(1, 0), (2, 1), (3, 1)]


def test_unreachable_asterisk_is_unavailable():
    from sipp import free_tcp_port

    async def run() -> AriUnavailable:
        async with AriClient(f"http://127.0.0.1:{free_tcp_port()}", "vpbx", "x", transport=Http11Transport()) as ari:
            with pytest.raises(AriUnavailable) as exc:
                await ari.asterisk_info()
            return exc.value

    err = asyncio.run(run())
    assert err.status is None and "ConnectError" in str(err)

"""Real Asterisk 22 + real sipp: what `vpbx sip add` / `trunk add` / `reload` generate really works on the wire.

(a) a SIP account registers with its generated password (digest from `password_digest`); a wrong one is refused;
(b) a trunk makes Asterisk REGISTER to the carrier (a sipp registrar checking the digest) with the trunk's login;
(c) `vpbx reload` while a call is up: the call survives and ends with BYE/200;
plus the security edges: no anonymous endpoint, unknown numbers from a trunk are unallocated, Stasis down -> 503.
"""
from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from typing import Any

import pytest

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(180)]


def _name(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def add_account(asterisk, login: str, *extra: str) -> str:
    out = asterisk.vpbx("sip", "add", login, "--json", *extra).stdout
    return json.loads(out)["password"]


# ---- (a) SIP accounts ------------------------------------------------------------------------------------------
def test_account_registers_with_generated_password(asterisk, sipp):
    login = _name("phone")
    password = add_account(asterisk, login)
    asterisk.vpbx("reload")

    res = sipp.register(login, password, domain=asterisk.cfg.domain).wait()
    assert res.ok, res.describe()
    assert res.final_response("REGISTER") == 200, res.describe()
    challenge = res.responses(401, "REGISTER")[0].header("WWW-Authenticate") or ""
    assert f'realm="{asterisk.cfg.domain}"' in challenge and "MD5" in challenge
    assert f"{login}/sip:{login}@127.0.0.1" in asterisk.cli("pjsip show contacts")

    bad = sipp.register(login, password + "x", domain=asterisk.cfg.domain).wait()
    assert bad.returncode == 1, bad.describe()
    assert bad.final_response("REGISTER") in (401, 403), bad.describe()
    assert not bad.responses(200, "REGISTER", direction="received")


def test_generated_config_holds_only_the_digest(asterisk):
    login = _name("digest")
    password = add_account(asterisk, login)
    asterisk.vpbx("config", "generate")
    text = (asterisk.etc / "pjsip_vpbx.conf").read_text()
    assert password not in text
    from vpbx.asterisk.render import password_digest

    assert f"password_digest = {password_digest(login, asterisk.cfg.domain, password)}" in text
    asterisk.vpbx("reload")
    shown = asterisk.cli(f"pjsip show auth {login}-auth")
    assert "auth_type" in shown and "digest" in shown
    assert asterisk.vpbx("config", "check").returncode == 0


def test_unknown_peer_is_not_an_anonymous_endpoint(asterisk, sipp):
    """No endpoint matches: Asterisk must challenge/refuse, never route the call (no anonymous endpoint)."""
    assert "anonymous" not in asterisk.cli("pjsip show endpoints").lower()
    call = sipp.uac("+380501234567", from_user=_name("nobody"), hold_ms=0, timeout_s=15).wait(30)
    assert not call.ok
    finals = [s for s in call.statuses("INVITE") if s >= 200]
    assert finals and finals[0] in (401, 403, 404), call.describe()
    assert not call.responses(200, "INVITE", direction="received"), call.describe()


# ---- (b) trunks ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_trunk_registers_to_the_carrier(asterisk, sipp, transport):
    name, login, password = _name("carrier"), _name("acct"), "Carrier-pass-" + secrets.token_hex(4)
    carrier = sipp.uas("uas_registrar.xml", keys={"login": login, "password": password}, transport=transport)
    asterisk.vpbx("trunk", "add", name, "--server", "127.0.0.1", "--port", str(carrier.port),
                  "--login", login, "--password", password, "--transport", transport)
    try:
        asterisk.vpbx("reload")
        # Asterisk spreads initial registrations over 1-10 s after a (re)load
        msgs = carrier.wait_for(lambda ms: any(m.direction == "sent" and m.status == 200 and m.method == "REGISTER"
                                               for m in ms), timeout=25)
        registers = [m for m in msgs if m.is_request and m.method == "REGISTER"]
        params = "" if transport == "udp" else f";transport={transport}"
        assert registers[0].request_uri == f"sip:127.0.0.1:{carrier.port}{params}"
        assert (registers[0].header("Via") or "").startswith(f"SIP/2.0/{transport.upper()} ")
        assert (registers[0].header("From") or "").startswith(f"<sip:{login}@127.0.0.1")
        assert (registers[0].header("To") or "").startswith(f"<sip:{login}@127.0.0.1")
        assert f'username="{login}"' in (registers[-1].header("Authorization") or "")
        assert not [m for m in msgs if m.status == 403], "the carrier rejected Asterisk's digest"
        deadline = time.monotonic() + 10
        while "Registered" not in (shown := asterisk.cli("pjsip show registrations")) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert f"{name}/sip:127.0.0.1:{carrier.port}" in shown and "Registered" in shown, shown
    finally:
        asterisk.vpbx("trunk", "remove", name)
        asterisk.vpbx("reload")
        carrier.stop()


def test_calls_from_a_trunk_reach_only_our_numbers(asterisk, sipp):
    """A call from the carrier's address to a number we do not have is unallocated (404), never routed out."""
    name = _name("inbound")
    carrier = sipp.uas("uas_answer.xml")
    asterisk.vpbx("trunk", "add", name, "--server", "127.0.0.1", "--port", str(carrier.port), "--login", "x" + name,
                  "--password", "whatever-123", "--no-register")
    try:
        asterisk.vpbx("reload")
        call = sipp.uac("+380991112233", from_user="+380671234567", hold_ms=0, timeout_s=15).wait(30)
        assert not call.responses(401, direction="received"), "a trunk's call must not be challenged"
        assert 404 in call.statuses("INVITE"), call.describe()
        assert not carrier.messages() or not [m for m in carrier.messages() if m.method == "INVITE"], \
            "an unknown number reached the carrier"
    finally:
        asterisk.vpbx("trunk", "remove", name)
        asterisk.vpbx("reload")
        carrier.stop()


def test_outbound_call_without_the_engine_gets_no_service(asterisk, sipp):
    """Stasis() fails when no ARI app is connected: early media + 503 (cause 34), the call goes nowhere else."""
    login = _name("caller")
    password = add_account(asterisk, login)
    asterisk.vpbx("reload")
    call = sipp.uac("+380501234567", login=login, password=password, hold_ms=0, timeout_s=20).wait(40)
    assert call.final_response("INVITE") == 503, call.describe()
    assert "cause=34" in (call.responses(503)[0].header("Reason") or "")


# ---- (c) reload keeps live calls -----------------------------------------------------------------------------
class AnsweringApp:
    """A minimal ARI app in a thread: answers every channel entering Stasis and records the events."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.events: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        import httpx
        import websockets

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        base = self.cfg.ari.url.rstrip("/")
        ws_url = base.replace("http", "ws", 1) + f"/ari/events?app={self.cfg.ari.app}"
        auth = (self.cfg.ari.user, self.cfg.ari.password)
        import base64

        header = {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()}
        async with httpx.AsyncClient(base_url=base + "/ari", auth=auth, timeout=5) as http:
            async with websockets.connect(ws_url, additional_headers=header) as ws:
                self.ready.set()
                while not self._stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 0.2)
                    except TimeoutError:
                        continue
                    event = json.loads(raw)
                    self.events.append(event)
                    if event.get("type") == "StasisStart":
                        await http.post(f"/channels/{event['channel']['id']}/answer")

    def __enter__(self) -> AnsweringApp:
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("ARI websocket did not connect")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(5)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]


def test_reload_keeps_a_live_call(asterisk, sipp):
    login = _name("talker")
    password = add_account(asterisk, login)
    asterisk.vpbx("reload")
    with AnsweringApp(asterisk.cfg) as app:
        call = sipp.uac("+380441110000", login=login, password=password, hold_ms=6000, audio=True, dtmf="1",
                        timeout_s=60)
        call.wait_for(lambda ms: any(m.direction == "received" and m.status == 200 and m.method == "INVITE"
                                     for m in ms), timeout=15)
        start = app.of_type("StasisStart")
        assert start, app.events
        assert start[0]["args"][:2] == ["outbound", "+380441110000"], start[0]["args"]
        assert start[0]["args"][2] == login, start[0]["args"]       # ${CHANNEL(endpoint)}
        # a real change, then reload while the call is up
        add_account(asterisk, _name("late"))
        t0 = time.monotonic()
        assert asterisk.vpbx("reload").stdout.strip() == "Asterisk reloaded"
        reload_s = time.monotonic() - t0
        assert f"PJSIP/{login}-" in asterisk.cli("core show channels concise"), "the call was dropped by the reload"
        assert not app.of_type("StasisEnd"), "the call left Stasis during the reload"
        res = call.wait(60)
        assert res.ok, res.describe()
        assert res.requests("BYE", "sent") and res.final_response("BYE") == 200, res.describe()
        deadline = time.monotonic() + 5
        while not app.of_type("StasisEnd") and time.monotonic() < deadline:
            time.sleep(0.1)
    assert app.of_type("StasisEnd")
    digits = [e["digit"] for e in app.of_type("ChannelDtmfReceived")]
    assert digits == ["1"], f"RFC 4733 DTMF not received as one '1': {digits}"
    assert reload_s < 10


# ---- calls out of Asterisk: to a registered phone, to a carrier that is busy / never answers -----------------
def _ari(asterisk, method: str, path: str, **params: Any) -> Any:
    import httpx

    r = httpx.request(method, f"{asterisk.cfg.ari.url}/ari{path}", params=params,
                      auth=(asterisk.cfg.ari.user, asterisk.cfg.ari.password), timeout=10)
    assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def _wait_event(app: AnsweringApp, pred, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in list(app.events):
            if pred(e):
                return e
        time.sleep(0.05)
    raise AssertionError(f"event not seen; got {[e.get('type') for e in app.events]}")


def test_call_reaches_a_registered_account(asterisk, sipp):
    """A phone registered as an account (sipp REGISTER + an out-of-call UAS) receives PJSIP/LOGIN and answers."""
    login = _name("desk")
    password = add_account(asterisk, login)
    asterisk.vpbx("reload")
    phone = sipp.register(login, password, domain=asterisk.cfg.domain, hold_ms=8000, ooc="uas_answer.xml")
    phone.wait_for(lambda ms: any(m.status == 200 and m.method == "REGISTER" and m.direction == "received"
                                  for m in ms))
    with AnsweringApp(asterisk.cfg) as app:
        chan = _ari(asterisk, "POST", "/channels", endpoint=f"PJSIP/{login}", app=asterisk.cfg.ari.app,
                    appArgs="test", callerId="+380441234567")
        _wait_event(app, lambda e: e.get("type") == "StasisStart" and e["channel"]["id"] == chan["id"])
        time.sleep(0.5)
        _ari(asterisk, "DELETE", f"/channels/{chan['id']}")
        _wait_event(app, lambda e: e.get("type") == "StasisEnd" and e["channel"]["id"] == chan["id"])
    res = phone.wait(30)
    invite = res.requests("INVITE", "received")
    assert invite and invite[0].request_uri.startswith(f"sip:{login}@127.0.0.1:{phone.port}"), res.describe()
    assert f"sip:{login}@{asterisk.cfg.domain}" not in (invite[0].header("From") or "")   # caller id, not the callee
    assert res.saw("BYE", "received") and res.responses(200, "BYE", direction="sent"), res.describe()


@pytest.mark.parametrize("scenario,expect", [("uas_busy.xml", "busy"), ("uas_silent.xml", "cancel")])
def test_dial_out_through_a_trunk(asterisk, sipp, scenario, expect):
    """PJSIP/+E164@TRUNK reaches the carrier; busy gives cause 17; hanging up a ringing leg sends CANCEL."""
    name = _name("out")
    carrier = sipp.uas(scenario)
    asterisk.vpbx("trunk", "add", name, "--server", "127.0.0.1", "--port", str(carrier.port), "--login", "u" + name,
                  "--password", "pass-" + name, "--no-register")
    try:
        asterisk.vpbx("reload")
        with AnsweringApp(asterisk.cfg) as app:
            chan = _ari(asterisk, "POST", "/channels", endpoint=f"PJSIP/+380671234567@{name}",
                        app=asterisk.cfg.ari.app, appArgs="test", timeout=30)
            if expect == "cancel":
                carrier.wait_for(lambda ms: any(m.status == 180 for m in ms))
                _ari(asterisk, "DELETE", f"/channels/{chan['id']}")
            gone = _wait_event(app, lambda e: e.get("type") == "ChannelDestroyed" and e["channel"]["id"] == chan["id"])
        msgs = carrier.wait_for(lambda ms: any(m.method == "ACK" for m in ms))
        invite = next(m for m in msgs if m.method == "INVITE" and m.is_request)
        assert invite.request_uri == f"sip:+380671234567@127.0.0.1:{carrier.port}"
        assert (invite.header("From") or "").find("@127.0.0.1>") > 0      # from_domain = the carrier's host
        if expect == "busy":
            assert gone["cause"] == 17, gone
        else:
            assert [m for m in msgs if m.method == "CANCEL" and m.is_request], "no CANCEL reached the carrier"
            assert any(m.status == 487 for m in msgs)
    finally:
        asterisk.vpbx("trunk", "remove", name)
        asterisk.vpbx("reload")
        carrier.stop()

"""Transfers from phones bridged by vpbx, with real PJSIP phones (each sends its own tone) and real Asterisk: blind
(REFER) to a number of this install, to a colleague's login and to an external number through a carrier (sipp);
attended (REFER with Replaces); a blind transfer to a target that fails gives the transferee the target's fallback.

After a transfer the transferee and the target hear each other, the transferer's legs end, nobody is rung twice, and
the call records say who transferred whom to what (vpbx.engine.transfers).
"""
from __future__ import annotations

import json
import os
import time
from itertools import count

import pytest
from phone import Phone, carries, rms, tone_levels
from test_engine_asterisk import _outbound_setup, calls_for, carrier_invites, wait_no_channels, wait_record
from test_media import account

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(240)]

ALICE_HZ, BOB_HZ, CAROL_HZ = 700, 1100, 1500
REGISTRAR = "127.0.0.1:5060"
_seq = count(1)


def _tag() -> str:
    return f"{os.getpid() % 10000}{next(_seq)}"


def _number(asterisk, route: str, *extra: str) -> str:
    number = f"+38044{(os.getpid() % 1000):03d}{next(_seq):04d}"
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "route", number, route, *extra)
    return number




def _hears(listener: Phone, label: str, hz: int, who: str) -> None:
    rec = listener.segment_recording(label)
    assert carries(rec, hz), f"{listener.name} did not hear {who} ({label}): {tone_levels(rec, hz)}"


def _talk(asterisk, engine, tmp_path, ports: tuple[int, int, int]):
    """alice, bob and carol registered; alice calls a number that rings bob, bob answers: (phones, logins, number)."""
    t = _tag()
    logins = {name: f"x{name}{t}" for name in ("alice", "bob", "carol")}
    passwords = {name: account(asterisk, login) for name, login in logins.items()}
    number = _number(asterisk, f"sip:{logins['bob']}", "--fallback", "hangup")
    phones = {}
    for (name, hz), port in zip((("alice", ALICE_HZ), ("bob", BOB_HZ), ("carol", CAROL_HZ)), ports, strict=True):
        phones[name] = Phone(name, hz, tmp_path / name, port=port)
    return phones, logins, passwords, number


def _register_and_call(asterisk, phones, logins, passwords, number) -> None:
    for name, p in phones.items():
        p.register(logins[name], passwords[name], REGISTRAR, asterisk.cfg.domain)
    a, b = phones["alice"], phones["bob"]
    a.call(f"sip:{number}@{REGISTRAR}")
    b.wait("incoming", timeout=20)
    b.answer()
    a.wait("confirmed", timeout=20)
    b.wait("confirmed", timeout=10)


def _closed(phones) -> None:
    for p in phones.values():
        p.close()


@pytest.mark.parametrize("to", ["number", "login"])
def test_blind_transfer(asterisk, engine, tmp_path, to):
    phones, logins, passwords, number = _talk(asterisk, engine, tmp_path, (5085, 5086, 5087))
    carol_number = _number(asterisk, f"sip:{logins['carol']}", "--fallback", "hangup")
    asterisk.reload()
    engine.start()
    a, b, c = phones["alice"], phones["bob"], phones["carol"]
    try:
        _register_and_call(asterisk, phones, logins, passwords, number)
        time.sleep(1)
        target = carol_number if to == "number" else logins["carol"]
        b.xfer(f"sip:{target}@{REGISTRAR}")
        status = b.wait("xfer_status", timeout=10, final=True)
        assert status["code"] == 200, status
        b.wait("disconnected", timeout=10)               # the transferer's leg ends
        c.wait("incoming", timeout=20)
        c.answer()
        c.wait("confirmed", timeout=10)
        time.sleep(1)
        a.segment("after"), c.segment("after")
        time.sleep(4)
        assert not [e for e in c.unclaimed() if e["event"] == "incoming"], "carol was rung twice"
        assert not [e for e in a.unclaimed() if e["event"] == "disconnected"], "alice lost the call"
        a.hangup()
        a.wait("disconnected", timeout=10)
        c.wait("disconnected", timeout=10)
    finally:
        _closed(phones)
    _hears(a, "after", CAROL_HZ, "carol")
    _hears(c, "after", ALICE_HZ, "alice")
    first = wait_record(asterisk, number)
    assert first["disposition"] == "transferred", first
    assert (first["transferred_by"], first["transferred_to"]) == (logins["bob"], target), first
    rows = [r for r in json.loads(asterisk.vpbx("calls", "list", "--json").stdout)
            if r.get("transferred_from") == first["call_id"]]
    assert len(rows) == 1 and rows[0]["reached"] == f"sip:{logins['carol']}", rows
    assert rows[0]["disposition"] == "answered" and rows[0]["transferred_by"] == logins["bob"], rows
    wait_no_channels(asterisk)


def test_attended_transfer(asterisk, engine, tmp_path):
    phones, logins, passwords, number = _talk(asterisk, engine, tmp_path, (5088, 5089, 5090))
    carol_number = _number(asterisk, f"sip:{logins['carol']}", "--fallback", "hangup")
    asterisk.reload()
    engine.start()
    a, b, c = phones["alice"], phones["bob"], phones["carol"]
    try:
        _register_and_call(asterisk, phones, logins, passwords, number)
        b.hold(call=1)                                           # bob's call 1: alice's
        time.sleep(1)
        b.call(f"sip:{carol_number}@{REGISTRAR}")               # the consultation call: bob's call 2
        c.wait("incoming", timeout=20)
        c.answer()
        c.wait("confirmed", timeout=10)
        b.wait("confirmed", timeout=10, call=2)
        time.sleep(1)
        b.xfer_replaces(call=1, to=2)
        status = b.wait("xfer_status", timeout=10, final=True)
        assert status["code"] == 200, status
        b.wait("disconnected", timeout=10)
        b.wait("disconnected", timeout=10)                      # both of bob's calls end
        time.sleep(1)
        a.segment("after"), c.segment("after")
        time.sleep(4)
        assert not [e for e in a.unclaimed() + c.unclaimed() if e["event"] == "disconnected"], "a party lost the call"
        c.hangup()
        c.wait("disconnected", timeout=10)
        a.wait("disconnected", timeout=10)
    finally:
        _closed(phones)
    _hears(a, "after", CAROL_HZ, "carol")
    _hears(c, "after", ALICE_HZ, "alice")
    wait_record(asterisk, number)
    rows = calls_for(asterisk, number)         # alice's call, and the one she went on in (its number's flow)
    first = [r for r in rows if not r.get("transferred_from")]
    assert len(first) == 1 and first[0]["disposition"] == "transferred", rows
    assert first[0]["transferred_by"] == logins["bob"], first
    joined = [r for r in rows if r.get("transferred_from") == first[0]["call_id"]]
    assert len(joined) == 1 and joined[0]["disposition"] == "answered", rows
    assert joined[0]["reached"] == f"sip:{logins['carol']}" and joined[0]["ended_at"], joined
    wait_no_channels(asterisk)


def test_blind_transfer_to_a_target_that_fails_gives_its_fallback(asterisk, engine, tmp_path):
    phones, logins, passwords, number = _talk(asterisk, engine, tmp_path, (5091, 5092, 5093))
    # nobody is registered as this account: the target is unavailable, its number's fallback plays
    ghost = f"ghost{_tag()}"
    account(asterisk, ghost)
    failing = _number(asterisk, f"sip:{ghost}", "--fallback", "play:short")
    asterisk.reload()
    engine.start()
    a, b = phones["alice"], phones["bob"]
    try:
        _register_and_call(asterisk, phones, logins, passwords, number)
        b.xfer(f"sip:{failing}@{REGISTRAR}")
        assert b.wait("xfer_status", timeout=10, final=True)["code"] == 200
        a.wait("disconnected", timeout=30)                     # after the fallback prompt, not at once
    finally:
        _closed(phones)
    first = wait_record(asterisk, number)
    rows = [r for r in calls_for(asterisk, failing) if r.get("transferred_from") == first["call_id"]]
    assert len(rows) == 1, calls_for(asterisk, failing)
    played = [e["media"] for e in engine.playbacks(rows[0]["call_id"]) if e["ari_event"] == "PlaybackFinished"]
    # the transferred caller heard ringing, then the target's fallback prompt (never silence)
    assert played == ["tone:ring", "sound:vpbx/short"], engine.playbacks(rows[0]["call_id"])
    wait_no_channels(asterisk)


def test_blind_transfer_to_an_external_number_follows_the_outbound_rules(asterisk, sipp, engine, tmp_path):
    caller_id = f"+38044{(os.getpid() % 1000):03d}{next(_seq):04d}"
    out = _outbound_setup(asterisk, sipp, caller_id, "both")       # bob = out.login, calling out as caller_id
    t = _tag()
    alice = f"xalice{t}"
    alice_pw = account(asterisk, alice)
    number = _number(asterisk, f"sip:{out.login}", "--fallback", "hangup")
    asterisk.reload()
    engine.start()
    with Phone("alice", ALICE_HZ, tmp_path / "alice", port=5094) as a, \
            Phone("bob", BOB_HZ, tmp_path / "bob", port=5095) as b:
        a.register(alice, alice_pw, REGISTRAR, asterisk.cfg.domain)
        b.register(out.login, out.password, REGISTRAR, asterisk.cfg.domain)
        a.call(f"sip:{number}@{REGISTRAR}")
        b.wait("incoming", timeout=20)
        b.answer()
        a.wait("confirmed", timeout=20)
        # a country bob may not call is refused: the talk goes on
        b.xfer(f"sip:+4930123456@{REGISTRAR}")
        assert b.wait("xfer_status", timeout=10, final=True)["code"] >= 400
        assert not carrier_invites(out)
        b.xfer(f"sip:+380671234567@{REGISTRAR}")
        assert b.wait("xfer_status", timeout=10, final=True)["code"] == 200
        b.wait("disconnected", timeout=10)
        out.carrier.wait_for(lambda msgs: any(m.is_request and m.method == "INVITE" for m in msgs), timeout=20)
        time.sleep(2)
        a.hangup()
        a.wait("disconnected", timeout=10)
    got = carrier_invites(out)
    assert len(got) == 1 and got[0].request_uri.startswith("sip:+380671234567@"), [str(m) for m in got]
    assert f"sip:{caller_id}@" in (got[0].header("P-Asserted-Identity") or ""), str(got[0])
    first = wait_record(asterisk, number)
    assert first["disposition"] == "transferred" and first["transferred_to"] == "+380671234567", first
    wait_no_channels(asterisk)


def test_hold_and_transfer_work_on_a_call_adopted_after_an_engine_restart(asterisk, engine, tmp_path):
    phones, logins, passwords, number = _talk(asterisk, engine, tmp_path, (5098, 5099, 5100))
    carol_number = _number(asterisk, f"sip:{logins['carol']}", "--fallback", "hangup")
    asterisk.reload()
    engine.start()
    a, b, c = phones["alice"], phones["bob"], phones["carol"]
    try:
        _register_and_call(asterisk, phones, logins, passwords, number)
        time.sleep(1)
        mark = engine.log_path.stat().st_size
        engine.kill9()
        engine.start()
        adopted = engine.wait_log(lambda e: e.get("event") == "adopted", timeout=10, since=mark)
        assert adopted.get("talking") is True, adopted
        b.hold()                                       # the adopted call still plays music to the held party
        time.sleep(1)
        a.segment("held")
        time.sleep(3)
        b.xfer(f"sip:{carol_number}@{REGISTRAR}")
        assert b.wait("xfer_status", timeout=10, final=True)["code"] == 200
        c.wait("incoming", timeout=20)
        c.answer()
        c.wait("confirmed", timeout=10)
        time.sleep(1)
        a.segment("after"), c.segment("after")
        time.sleep(4)
        a.hangup()
        a.wait("disconnected", timeout=10)
        c.wait("disconnected", timeout=10)
    finally:
        _closed(phones)
    held = a.segment_recording("held")
    assert not carries(held, BOB_HZ, min_share=0.3), f"alice heard bob while held: {tone_levels(held, BOB_HZ)}"
    assert rms(held) > 0.005, f"alice heard silence while held (rms {rms(held):.4f}), not music"
    _hears(a, "after", CAROL_HZ, "carol")
    _hears(c, "after", ALICE_HZ, "alice")
    rows = calls_for(asterisk, number)
    first = [r for r in rows if r["disposition"] == "transferred"]
    assert len(first) == 1 and first[0]["restarts"] == 1 and first[0]["transferred_to"] == carol_number, rows
    wait_no_channels(asterisk)

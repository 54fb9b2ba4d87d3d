"""A bridged call survives the engine: two real PJSIP phones talk through a vpbx number (each sends its own tone), the
engine is killed (SIGKILL) or stopped (SIGTERM) mid-talk, the phones go on talking while it is down, and the restarted
engine adopts the call as talking: no leg hung up, no re-dial, no new bridge, audio both ways before, during and
after; when either party hangs up the other is hung up, and the call record keeps the original answer time and the
true billsec. The pure side (machine.adopt_talking) is in tests/test_dialplan_machine.py.
"""
from __future__ import annotations

import os
import time
from datetime import datetime

import pytest
from phone import Phone, carries, tone_levels
from test_engine_asterisk import wait_no_channels, wait_record
from test_media import account

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(240)]

ALICE_HZ, BOB_HZ = 700, 1100




def _both_ways(a: Phone, b: Phone, label: str) -> None:
    heard_by_alice, heard_by_bob = a.segment_recording(label), b.segment_recording(label)
    assert carries(heard_by_alice, BOB_HZ), f"{label}: alice did not hear bob: {tone_levels(heard_by_alice, BOB_HZ)}"
    assert carries(heard_by_bob, ALICE_HZ), f"{label}: bob did not hear alice: {tone_levels(heard_by_bob, ALICE_HZ)}"


@pytest.mark.parametrize("how,hangs_up", [("kill9", "caller"), ("sigterm", "callee")])
def test_a_talk_survives_an_engine_restart(asterisk, engine, tmp_path, how, hangs_up):
    tag = f"{os.getpid() % 10000}{how[0]}"
    alice, bob = f"talka{tag}", f"talkb{tag}"
    number = f"+38044{(os.getpid() % 100000):05d}{len(how):02d}"
    alice_pw, bob_pw = account(asterisk, alice), account(asterisk, bob)
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "route", number, f"sip:{bob}", "--fallback", "hangup")
    asterisk.reload()
    engine.start()
    registrar, domain = "127.0.0.1:5060", asterisk.cfg.domain
    with Phone("alice", ALICE_HZ, tmp_path / "alice", port=5083) as a, \
            Phone("bob", BOB_HZ, tmp_path / "bob", port=5084) as b:
        a.register(alice, alice_pw, registrar, domain)
        b.register(bob, bob_pw, registrar, domain)
        a.call(f"sip:{number}@{registrar}")
        b.wait("incoming", timeout=20)
        b.answer()
        a.wait("confirmed", timeout=20)
        b.wait("confirmed", timeout=10)
        connected = time.time()
        a.segment("before"), b.segment("before")
        time.sleep(3)
        mark = engine.log_path.stat().st_size
        if how == "kill9":
            engine.kill9()
        else:
            engine.stop()
        a.segment("down"), b.segment("down")
        time.sleep(4)                                  # the engine is gone: Asterisk's bridge carries on
        engine.start()
        adopted = engine.wait_log(lambda e: e.get("event") == "adopted", timeout=10, since=mark)
        assert adopted.get("talking") is True, adopted
        a.segment("after"), b.segment("after")
        time.sleep(10)
        # nobody was rung again (the one incoming call was taken by b.wait above), nobody hung up
        assert not [e for e in b.unclaimed() if e["event"] == "incoming"], b.unclaimed()
        assert not [e for e in a.unclaimed() + b.unclaimed() if e["event"] in ("disconnected", "exited")]
        leaving, staying = (a, b) if hangs_up == "caller" else (b, a)
        leaving.hangup()
        ended = time.time()
        leaving.wait("disconnected", timeout=10)
        staying.wait("disconnected", timeout=10)     # vpbx hung up the other party
    for label in ("before", "down", "after"):
        _both_ways(a, b, label)
    record = wait_record(asterisk, number)
    assert record["disposition"] == "answered" and record["reached"] == f"sip:{bob}", record
    assert record["restarts"] == 1, record
    answered = datetime.fromisoformat(record["answered_at"]).timestamp()
    assert abs(answered - connected) <= 2, (record, connected)        # the original answer, not the adoption
    assert abs(record["billsec"] - (ended - connected)) <= 1, (record, ended - connected)
    # one bridge in all: the adopted call used the bridge it was in
    assert not [e for e in engine.entries(mark) if "already exists" in e.get("message", "")]
    wait_no_channels(asterisk)

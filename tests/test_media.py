"""Calls with real media: two PJSIP phones (tests/phone.py) registered to vpbx's Asterisk, a call between them through a
vpbx number, and each side's recording must carry the other side's tone. sipp checks signalling; only this proves the
engine's bridge carries audio both ways (a call that connects with silence fails here).
"""
from __future__ import annotations

import json
import os
import time

import pytest
from phone import Phone, carries, tone_levels
from test_engine_asterisk import wait_record

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(180)]

ALICE_HZ, BOB_HZ = 700, 1100


def account(asterisk, login: str, caller_id: str | None = None) -> str:
    extra = ["--caller-id", caller_id] if caller_id else []
    return json.loads(asterisk.vpbx("sip", "add", login, *extra, "--json").stdout)["password"]


def test_call_through_a_number_carries_audio_both_ways(asterisk, engine, tmp_path):
    tag = str(os.getpid() % 100000)
    alice, bob = f"alice{tag}", f"bob{tag}"
    number = f"+38044{int(tag):07d}"
    alice_pw, bob_pw = account(asterisk, alice), account(asterisk, bob)
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "route", number, f"sip:{bob}", "--fallback", "hangup")
    asterisk.reload()
    engine.start()
    registrar, domain = "127.0.0.1:5060", asterisk.cfg.domain
    with Phone("alice", ALICE_HZ, tmp_path / "alice", port=5081) as a, \
            Phone("bob", BOB_HZ, tmp_path / "bob", port=5082) as b:
        a.register(alice, alice_pw, registrar, domain)
        b.register(bob, bob_pw, registrar, domain)
        a.call(f"sip:{number}@{registrar}")
        b.wait("incoming", timeout=20)
        b.answer()
        a.wait("confirmed", timeout=20)
        b.wait("confirmed", timeout=10)
        time.sleep(4)                     # both tones flow through Asterisk's bridge
        a.hangup()
        a.wait("disconnected", timeout=10)
        b.wait("disconnected", timeout=10)
    heard_by_alice, heard_by_bob = a.recording(), b.recording()
    assert carries(heard_by_alice, BOB_HZ), f"alice did not hear bob's tone: {tone_levels(heard_by_alice, BOB_HZ)}"
    assert carries(heard_by_bob, ALICE_HZ), f"bob did not hear alice's tone: {tone_levels(heard_by_bob, ALICE_HZ)}"
    # and not merely her own tone echoed back
    assert not carries(heard_by_alice, ALICE_HZ, min_share=0.3), tone_levels(heard_by_alice, ALICE_HZ)
    record = wait_record(asterisk, number)
    assert record["ended_at"], record

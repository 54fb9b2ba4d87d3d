"""Call recording on live calls: real Asterisk, `vpbx serve`, two PJSIP phones each sending its own tone. A number set
to record announces it to the caller, records the talk with both parties mixed, and keeps the audio when the call
ends (`vpbx recording list|export`); an engine killed mid-talk loses nothing (Asterisk records the bridge meanwhile).
The storage half is in tests/test_recordings.py.
"""
from __future__ import annotations

import json
import os
import time

import pytest
import soundfile as sf
from phone import Phone, carries, tone_levels
from test_engine_asterisk import wait_no_channels, wait_record
from test_media import account

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(240)]

ALICE_HZ, BOB_HZ = 700, 1100
REGISTRAR = "127.0.0.1:5060"



def _recordings(asterisk, number: str) -> list[dict]:
    return json.loads(asterisk.vpbx("recording", "list", "--number", number, "--json").stdout)


@pytest.mark.parametrize("restart", [False, True])
def test_a_recorded_call_keeps_both_parties(asterisk, engine, tmp_path, restart):
    tag = f"{os.getpid() % 10000}{int(restart)}"
    alice, bob = f"reca{tag}", f"recb{tag}"
    number = f"+38044{(os.getpid() % 100000):05d}{30 + int(restart)}"
    alice_pw, bob_pw = account(asterisk, alice), account(asterisk, bob)
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "route", number, f"sip:{bob}", "--fallback", "hangup")
    asterisk.vpbx("number", "set", number, "--record", "--record-prompt", "short")
    asterisk.reload()
    engine.start()
    with Phone("alice", ALICE_HZ, tmp_path / "alice", port=5096) as a, \
            Phone("bob", BOB_HZ, tmp_path / "bob", port=5097) as b:
        a.register(alice, alice_pw, REGISTRAR, asterisk.cfg.domain)
        b.register(bob, bob_pw, REGISTRAR, asterisk.cfg.domain)
        a.call(f"sip:{number}@{REGISTRAR}")
        b.wait("incoming", timeout=30)                   # after the announcement
        b.answer()
        b.wait("confirmed", timeout=10)
        started = time.time()
        time.sleep(3)
        if restart:
            engine.kill9()
            time.sleep(3)
            engine.start()
            engine.wait_log(lambda e: e.get("event") == "adopted", timeout=10)
        time.sleep(3)
        a.hangup()
        a.wait("disconnected", timeout=10)
        talked = time.time() - started
    record = wait_record(asterisk, number)
    played = [e["media"] for e in engine.playbacks(record["call_id"]) if e["ari_event"] == "PlaybackFinished"]
    assert played[:1] == ["sound:vpbx/short"], played                  # the announcement came first
    deadline = time.monotonic() + 15
    while not _recordings(asterisk, number) and time.monotonic() < deadline:
        time.sleep(0.3)
    rows = _recordings(asterisk, number)
    assert len(rows) == 1 and rows[0]["call_id"] == record["call_id"], rows
    listed = json.loads(asterisk.vpbx("calls", "list", "--number", number, "--json").stdout)
    assert listed[0]["recording"] == rows[0]["id"], listed
    exported = tmp_path / "call.wav"
    asterisk.vpbx("recording", "export", str(rows[0]["id"]), str(exported))
    info = sf.info(str(exported))
    assert abs(info.duration - talked) <= 2.5, (info.duration, talked)     # the whole talk, the restart included
    assert carries(exported, ALICE_HZ, min_share=0.1), tone_levels(exported, ALICE_HZ)
    assert carries(exported, BOB_HZ, min_share=0.1), tone_levels(exported, BOB_HZ)
    wait_no_channels(asterisk)

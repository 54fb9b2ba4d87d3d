"""Phone features with real PJSIP phones (tests/phone.py) on vpbx's Asterisk: codecs (a G.722-only phone hears the
IVR's prompts and drives it), every DTMF mode of a SIP account driving an IVR, and hold: the held party hears vpbx's
music on hold (not silence, not the holder's tone), and after the resume both hear each other again.
Audio is checked by tone frequency, as in tests/test_media.py.
"""
from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest
from conftest import channels_left
from phone import Phone, bands_share, carries, rms, tone_levels
from test_engine_asterisk import _unique_number, wait_record

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parent.parent
A_HZ, B_HZ = 700, 1100
REGISTRAR = "127.0.0.1:5060"


def _moh_notes() -> tuple[float, ...]:
    spec = importlib.util.spec_from_file_location("vpbx_prompts_build", REPO / "prompts" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.MOH_NOTES)


def _login(prefix: str) -> str:
    return f"{prefix}{os.getpid() % 100000}{int(time.monotonic() * 1000) % 100000}"


def account(asterisk, login: str, *options: str) -> str:
    return json.loads(asterisk.vpbx("sip", "add", login, *options, "--json").stdout)["password"]


def ivr_number(asterisk, *options: str) -> str:
    """A number routed to a new IVR playing the `menu` prompt with `options`."""
    number = _unique_number()
    name = _login("menu")
    asterisk.vpbx("number", "add", number)
    args = ["ivr", "add", name, "--prompt", "menu", "--timeout", "8", "--retries", "1"]
    for opt in options:
        args += ["--option", opt]
    asterisk.vpbx(*args)
    asterisk.vpbx("number", "route", number, f"ivr:{name}", "--fallback", "hangup")
    return number


def native_formats(asterisk, login: str) -> str:
    """The NativeFormats line of the account's live channel (what Asterisk negotiated with the phone)."""
    names = [line.split("!")[0] for line in channels_left(asterisk) if line.startswith(f"PJSIP/{login}-")]
    assert names, f"no channel of {login}: {channels_left(asterisk)}"
    shown = asterisk.cli(f"core show channel {names[0]}")
    return next((line.split(":", 1)[1].strip() for line in shown.splitlines() if "NativeFormats" in line), shown)


def test_g722_only_phone_hears_the_ivr_and_drives_it(asterisk, engine, tmp_path):
    alice, bob = _login("wide"), _login("desk")
    alice_pw = account(asterisk, alice)                      # the install's codecs: g722 first
    bob_pw = account(asterisk, bob, "--codecs", "alaw")      # the IVR's option rings a G.711-only desk phone
    number = ivr_number(asterisk, f"1=sip:{bob}", "9=hangup")
    asterisk.reload()
    allow = next(line for line in (asterisk.root / "etc/asterisk/pjsip_vpbx.conf").read_text().split(f"[{alice}]")[1]
                 .splitlines() if line.startswith("allow"))
    assert allow.split("=")[1].strip().startswith("g722,"), allow
    engine.start()
    with Phone("g722", A_HZ, tmp_path / "a", port=5085, codecs=["G722"]) as a, \
            Phone("desk", B_HZ, tmp_path / "b", port=5086) as b:
        a.register(alice, alice_pw, REGISTRAR, asterisk.cfg.domain)
        b.register(bob, bob_pw, REGISTRAR, asterisk.cfg.domain)
        a.call(f"sip:{number}@{REGISTRAR}")
        a.wait("confirmed", timeout=20)
        assert a.codec() == "G722"
        assert "g722" in native_formats(asterisk, alice)
        a.segment("prompt")
        time.sleep(2.5)                                      # the menu prompt plays (transcoded to G.722)
        a.segment("key")                                     # ends the prompt's stretch
        a.dtmf("1")
        a.wait("sent", timeout=5)
        b.wait("incoming", timeout=20)
        b.answer()
        b.wait("confirmed", timeout=10)
        assert b.codec() == "PCMA"
        time.sleep(0.5)
        a.segment("bridge")
        b.segment("bridge")
        time.sleep(3)
        a.hangup()
        a.wait("disconnected", timeout=10)
        b.wait("disconnected", timeout=10)
    prompt = a.segment_recording("prompt")
    assert rms(prompt) > 0.01, f"the G.722 phone heard silence instead of the prompt: {tone_levels(prompt, A_HZ)}"
    assert not carries(prompt, B_HZ), "the prompt stretch already carries the desk phone's tone"
    assert carries(a.segment_recording("bridge"), B_HZ), tone_levels(a.segment_recording("bridge"), B_HZ)
    assert carries(b.segment_recording("bridge"), A_HZ), tone_levels(b.segment_recording("bridge"), A_HZ)
    record = wait_record(asterisk, number)
    assert record["reached"] == f"sip:{bob}" and record["disposition"] == "answered", record
    steps = [e for e in engine.entries() if e.get("call_id") == record["call_id"] and "event" in e]
    assert any(e["event"] == "Dtmf" and "Dial" in e["actions"] for e in steps), steps


@pytest.mark.parametrize("mode,method", [("inband", "inband"), ("info", "info"), ("rfc4733", "rfc4733"),
                                         ("auto", "rfc4733")])
def test_every_dtmf_mode_drives_an_ivr(asterisk, engine, tmp_path, mode, method):
    """`vpbx sip set --dtmf MODE`; the phone presses 5 the way that mode expects: option 5 plays `welcome` and hangs
    up, so the call ending after `welcome` proves the key arrived (1 would hang up at once, a timeout retries)."""
    login = _login(f"dtmf{mode}")
    password = account(asterisk, login)
    asterisk.vpbx("sip", "set", login, "--dtmf", mode)
    shown = json.loads(asterisk.vpbx("sip", "show", login, "--json").stdout)
    assert shown["dtmf"] == mode
    number = ivr_number(asterisk, "5=play:welcome", "1=hangup")
    asterisk.reload()
    engine.start()
    with Phone(f"dtmf-{mode}", A_HZ, tmp_path / "a", port=5087) as a:
        a.register(login, password, REGISTRAR, asterisk.cfg.domain)
        a.call(f"sip:{number}@{REGISTRAR}")
        a.wait("confirmed", timeout=20)
        time.sleep(1.5)
        a.dtmf("5", method=method)
        a.wait("sent", timeout=5)
        a.wait("disconnected", timeout=25)                   # welcome played, then the PBX hung up
    record = wait_record(asterisk, number)
    steps = [e for e in engine.entries() if e.get("call_id") == record["call_id"] and "event" in e]
    assert any(e["event"] == "Dtmf" and "Play" in e["actions"] for e in steps), steps
    media = [e["media"] for e in engine.playbacks(record["call_id"]) if e["ari_event"] == "PlaybackFinished"]
    assert "sound:vpbx/welcome" in media, media
    assert "sound:vpbx/invalid-option" not in media, media


def test_hold_plays_music_to_the_other_party_and_resume_restores_audio(asterisk, engine, tmp_path):
    asterisk.vpbx("config", "generate")                     # installs the music on hold (and the built-in prompts)
    asterisk.reload()                                        # res_musiconhold loads the default class's file
    classes = asterisk.cli("moh show files")
    assert "vpbx-moh/default" in classes, f"Asterisk has no vpbx music on hold (restart the sandbox?): {classes}"
    alice, bob = _login("holder"), _login("held")
    alice_pw, bob_pw = account(asterisk, alice), account(asterisk, bob)
    number = _unique_number()
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "route", number, f"sip:{bob}", "--fallback", "hangup")
    asterisk.reload()
    engine.start()
    with Phone("holder", A_HZ, tmp_path / "a", port=5088) as a, Phone("held", B_HZ, tmp_path / "b", port=5089) as b:
        a.register(alice, alice_pw, REGISTRAR, asterisk.cfg.domain)
        b.register(bob, bob_pw, REGISTRAR, asterisk.cfg.domain)
        a.call(f"sip:{number}@{REGISTRAR}")
        b.wait("incoming", timeout=20)
        b.answer()
        a.wait("confirmed", timeout=20)
        b.wait("confirmed", timeout=10)
        time.sleep(1)
        b.segment("before")
        time.sleep(2)
        a.hold()
        a.wait("sent", timeout=5)
        time.sleep(1)
        b.segment("hold")
        time.sleep(4)
        a.unhold()
        a.wait("sent", timeout=5)
        time.sleep(1)
        a.segment("resumed")
        b.segment("resumed")
        time.sleep(3)
        a.hangup()
        a.wait("disconnected", timeout=10)
        b.wait("disconnected", timeout=10)
    notes = _moh_notes()
    before, held, after = (b.segment_recording(x) for x in ("before", "hold", "resumed"))
    assert carries(before, A_HZ), tone_levels(before, A_HZ)
    assert rms(held) > 0.01, f"the held party heard silence: {tone_levels(held, A_HZ)}"
    assert not carries(held, A_HZ, min_share=0.1), f"the held party still heard the holder: {tone_levels(held, A_HZ)}"
    assert bands_share(held, notes) > 0.5, f"the held party did not hear vpbx's music: {bands_share(held, notes)}"
    assert carries(after, A_HZ), f"after the resume bob does not hear alice: {tone_levels(after, A_HZ)}"
    heard_by_a = a.segment_recording("resumed")
    assert carries(heard_by_a, B_HZ), f"after the resume alice does not hear bob: {tone_levels(heard_by_a, B_HZ)}"
    record = wait_record(asterisk, number)
    steps = [e for e in engine.entries() if e.get("call_id") == record["call_id"] and "event" in e]
    assert any(e["event"] == "Hold" and e["actions"] == ["StartMoh"] for e in steps), steps
    assert any(e["event"] == "Unhold" and e["actions"] == ["StopMoh"] for e in steps), steps

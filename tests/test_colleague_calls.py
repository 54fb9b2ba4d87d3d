"""Calls between colleagues on the real Asterisk 22 sandbox with `vpbx serve`: sipp as alice's phone (digest auth,
the phones' context) and as bob's registered phone (answering, never answering, or busy), sipp as the carrier behind
bob's caller-ID number's trunk.

Run them alone on a machine (one sandbox per machine):

    flock /tmp/vpbx-sandbox.lock python -m pytest tests/test_colleague_calls.py -q -x -p no:cacheprovider

The pure decision is tests/test_dialplan_colleagues.py; the settings tests/test_colleague_settings.py.
"""
from __future__ import annotations

import email
import email.policy
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from test_engine_asterisk import (
    REPO,
    _login,
    _outbound_setup,
    _unique_number,
    carrier_invites,
    invites,
    smtp_server_at,
    wait_no_channels,
    wait_record,
)

from smtptools import Smtp, free_port

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(180)]

MOBILE = "+380671234567"


def _account(asterisk, login: str, *args: str) -> str:
    """Add SIP account `login` (with `args`); its generated password."""
    return json.loads(asterisk.vpbx("sip", "add", login, *args, "--json").stdout)["password"]


def _phone(asterisk, sipp, login: str, password: str, scenario: str = "uas_answer.xml") -> Any:
    """`login`'s phone, registered, answering calls with `scenario`."""
    proc = sipp.register(login, password, domain=asterisk.cfg.domain, hold_ms=60000, ooc=scenario)
    proc.wait_for(lambda ms: any(m.status == 200 and m.method == "REGISTER" and m.direction == "received" for m in ms))
    return proc


def _colleagues(asterisk, sipp, bob_scenario: str = "uas_answer.xml", *bob_args: str) -> tuple[str, str, str, Any]:
    """alice (a phone that dials) and bob (extension, registered with `bob_scenario`): (alice, password, bob, phone)."""
    alice, bob = _login("alice"), _login("bob")
    alice_pw = _account(asterisk, alice)
    bob_pw = _account(asterisk, bob, *bob_args)
    asterisk.vpbx("reload")
    return alice, alice_pw, bob, _phone(asterisk, sipp, bob, bob_pw, bob_scenario)


def _extension() -> str:
    return str(200000 + int(_login("")) % 800000)[:6]


@pytest.mark.parametrize("by", ["login", "extension"])
def test_alice_rings_bob_by_login_and_by_extension(asterisk, sipp, engine, by):
    ext = _extension()
    alice, alice_pw, bob, bob_phone = _colleagues(asterisk, sipp, "uas_answer.xml", "--extension", ext)
    engine.start()
    dialled = bob if by == "login" else ext
    res = sipp.uac(dialled, login=alice, password=alice_pw, hold_ms=1500, timeout_s=30).wait(40)
    assert res.ok, res.describe()
    assert res.final_response("INVITE") == 200
    got = invites(bob_phone)
    assert len(got) == 1, [str(m) for m in bob_phone.messages()]
    assert f"sip:{bob}@" in (got[0].request_uri or "")
    record = wait_record(asterisk, f"sip:{bob}")                  # the call record names the called account
    assert (record["disposition"], record["reached"], record["caller"]) == ("answered", f"sip:{bob}", alice), record
    assert record["billsec"] >= 1
    wait_no_channels(asterisk)


def _leave_message(sipp, dialled: str, login: str, password: str, tmp_path: Path) -> Any:
    """Call `dialled` as `login`: after the answer the voicemail intro (~5.7 s) and beep, then 7 s of speech
    (g711a.pcap); the caller hangs up mid-message."""
    scenario = (REPO / "tests/sipp/uac_call.xml").read_text().replace(
        "<!--MEDIA-->", '<pause milliseconds="8500"/>\n  <nop><action><exec play_pcap_audio='
                        '"/usr/share/sip-tester/g711a.pcap"/></action></nop>\n  <pause milliseconds="7000"/>')
    path = tmp_path / "uac_message.xml"
    path.write_text(scenario)
    return sipp.uac(dialled, login=login, password=password, scenario=path, hold_ms=0, timeout_s=60).wait(70)


def test_no_answer_goes_to_bobs_voicemail_and_the_email_arrives(asterisk, sipp, engine, tmp_path):
    port = free_port()
    with Smtp(port) as server, smtp_server_at(asterisk, port):
        alice, alice_pw, bob, bob_phone = _colleagues(
            asterisk, sipp, "uas_silent.xml", "--ring-timeout", "5", "--no-answer", "voicemail",
            "--vm-email", "bob@example.com")
        engine.start()
        started = time.monotonic()
        res = _leave_message(sipp, bob, alice, alice_pw, tmp_path)
        assert res.ok, res.describe()
        assert invites(bob_phone), "bob's phone was never rung"
        assert time.monotonic() - started >= 5 + 8.5, "voicemail answered before bob's ring timeout"
        deadline = time.monotonic() + 30
        # the outbox also delivers notices earlier tests left pending: wait for bob's own message
        while time.monotonic() < deadline and not [m for m in server.messages if "bob@example.com" in m.rcpt_tos]:
            time.sleep(0.2)
        mails = [m for m in server.messages if "bob@example.com" in m.rcpt_tos]
        assert len(mails) == 1, server.mails()
    msg = email.message_from_bytes(mails[0].original_content, policy=email.policy.default)
    assert msg["Subject"].startswith(f"Voicemail for sip:{bob} from {alice} "), msg["Subject"]
    wavs = [p for p in msg.walk() if p.get_content_type() == "audio/wav"]
    assert len(wavs) == 1
    import soundfile as sf

    data, rate = sf.read(io.BytesIO(wavs[0].get_payload(decode=True)))
    assert rate == 8000 and 4.0 <= len(data) / rate <= 12.0, len(data) / rate
    record = wait_record(asterisk, f"sip:{bob}")
    assert (record["disposition"], record["voicemail"], record["caller"]) == ("voicemail", 1, alice), record
    rows = [r for r in json.loads(asterisk.vpbx("voicemail", "list", "--json").stdout) if r["number"] == f"sip:{bob}"]
    assert len(rows) == 1 and rows[0]["delivered_at"], rows
    wait_no_channels(asterisk)


def test_busy_colleague_is_forwarded_to_a_mobile_through_the_trunk_of_its_caller_id_number(asterisk, sipp, engine):
    caller_id = _unique_number()
    out = _outbound_setup(asterisk, sipp, caller_id, "both")     # bob = out.login, caller ID on a trunk to a carrier
    bob = out.login
    asterisk.vpbx("sip", "set", bob, "--ring-timeout", "5", "--no-answer", f"tel:{MOBILE}",
                  "--max-outbound-calls", "0")                   # bob's toll-fraud guards do not apply to forwards
    alice = _login("alice")
    alice_pw = _account(asterisk, alice)
    asterisk.vpbx("reload")
    bob_phone = _phone(asterisk, sipp, bob, out.password, "uas_busy.xml")
    engine.start()
    res = sipp.uac(bob, login=alice, password=alice_pw, hold_ms=1000, timeout_s=40).wait(50)
    assert res.ok, res.describe()
    assert invites(bob_phone), "bob's phone was never rung"
    got = carrier_invites(out)
    assert len(got) == 1 and got[0].request_uri == f"sip:{MOBILE}@127.0.0.1:{out.carrier.port}", \
        [str(m) for m in out.carrier.messages()]
    # the forward goes out as bob's own call: his caller-ID number (a Ukrainian mobile may see it), not alice's login
    assert f"sip:{caller_id}@" in (got[0].header("P-Asserted-Identity") or ""), str(got[0])
    assert "id" not in (got[0].header("Privacy") or "").lower(), str(got[0])
    record = wait_record(asterisk, f"sip:{bob}")
    assert (record["disposition"], record["reached"]) == ("answered", f"tel:{MOBILE}"), record
    wait_no_channels(asterisk)


@pytest.mark.parametrize("dialled", ["1,{bob}", "{bob},x", "+380671234567,{bob}", "{bob}(x)", "{bob}$x",
                                     "{bob}'", "{bob}%2C1", "{bob}%22"])
def test_nothing_a_phone_dials_can_inject_into_the_dialplan(asterisk, sipp, engine, dialled):
    """Characters SIP allows in a request URI's user part (RFC 3261 user-unreserved and marks, %-escapes) that would
    split, quote or expand Stasis() arguments are refused before Stasis (404): `1,bob` would otherwise reach the
    engine as a call to 1 placed by SIP account bob. (A '"' or '\\' as such is no valid URI: PJSIP drops it.)"""
    alice, alice_pw, bob, bob_phone = _colleagues(asterisk, sipp)
    engine.start()
    mark = engine.log_path.stat().st_size
    res = sipp.uac(dialled.format(bob=bob), login=alice, password=alice_pw, timeout_s=20).wait(30)
    assert 200 not in res.statuses("INVITE"), res.describe()
    assert res.final_response("INVITE") == 404, res.describe()
    assert not invites(bob_phone)
    touched = [e for e in engine.entries(mark) if "/channels" in str(e.get("message", ""))]
    assert not touched, f"the call reached the engine: {touched}"      # the engine logs every ARI request (debug)
    assert json.loads(asterisk.vpbx("calls", "list", "--number", f"sip:{bob}", "--json").stdout) == []
    shown = json.loads(asterisk.vpbx("sip", "show", bob, "--json").stdout)["outbound"]
    assert shown["refused_today"] == {} and shown["today_calls"] == 0, shown


def test_an_unknown_login_or_extension_and_oneself_are_404(asterisk, sipp, engine):
    alice, alice_pw, _bob, _phone_proc = _colleagues(asterisk, sipp)
    engine.start()
    for dialled in ("nosuch-colleague", "99", alice):
        res = sipp.uac(dialled, login=alice, password=alice_pw, timeout_s=20).wait(30)
        assert res.final_response("INVITE") == 404, (dialled, res.describe())
    wait_no_channels(asterisk)

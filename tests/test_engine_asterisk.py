"""`vpbx serve` against the real Asterisk 22 sandbox, with sipp as the carrier's caller and as registered phones.

Each test configures numbers with the real CLI, runs the engine as a real subprocess (`vpbx serve`) and reads what
happened from three independent places: sipp's SIP message logs, the engine's JSON call log (ARI playback events
carry the media Asterisk played) and the call records (`vpbx calls list --json`).
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from conftest import Engine, channels_left  # noqa: F401 - Engine: tests/test_security.py imports it from here

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parent.parent
_seq = itertools.count(1)
CALLER = "+380671112233"


def _unique_number() -> str:
    # Kyiv numbers +38044 55x xxxx: valid, geographic, distinct per test run
    return f"+38044{5500000 + (os.getpid() % 1000) * 100 + next(_seq):07d}"


def _unique_tollfree() -> str:
    # Russian toll-free numbers +7 800 55x xxxx (vpbx.domain.numbers classifies them as tollfree)
    return f"+7800{5500000 + (os.getpid() % 1000) * 100 + next(_seq):07d}"


def calls_for(asterisk, number: str) -> list[dict[str, Any]]:
    return json.loads(asterisk.vpbx("calls", "list", "--number", number, "--json").stdout)


def wait_record(asterisk, number: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = calls_for(asterisk, number)
        if rows and rows[0].get("ended_at"):
            return rows[0]
        time.sleep(0.2)
    raise AssertionError(f"no finished call record for {number}: {calls_for(asterisk, number)}")


def wait_no_channels(asterisk, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not channels_left(asterisk):
            return
        time.sleep(0.2)
    raise AssertionError(f"channels still up: {channels_left(asterisk)}")


def phone(asterisk, sipp, login: str, scenario: str = "uas_answer.xml", hold_ms: int = 30000) -> Any:
    """A registered phone (SIP account `login`) answering with `scenario`."""
    password = json.loads(asterisk.vpbx("sip", "add", login, "--json").stdout)["password"]
    asterisk.vpbx("reload")
    proc = sipp.register(login, password, domain=asterisk.cfg.domain, hold_ms=hold_ms, ooc=scenario)
    proc.wait_for(lambda ms: any(m.status == 200 and m.method == "REGISTER" and m.direction == "received" for m in ms))
    return proc


def invites(proc: Any) -> list[Any]:
    return [m for m in proc.messages() if m.is_request and m.method == "INVITE" and m.direction == "received"]


def _login(prefix: str) -> str:
    return f"{prefix}{os.getpid() % 10000}{next(_seq)}"


# ---- 1. greeting then hang-up ----------------------------------------------------------------------------------
def test_greeting_then_hangup(asterisk, sipp, engine):
    number = _unique_number()
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "route", number, "hangup", "--greeting", "welcome")
    asterisk.vpbx("reload")
    engine.start()
    call = sipp.uac(number, from_user=CALLER, scenario="uac_remote_bye.xml", timeout_s=30)
    res = call.wait(40)
    assert res.ok, res.describe()
    assert res.final_response("INVITE") == 200
    assert res.saw("BYE", "received"), "the PBX did not hang up after the greeting"
    record = wait_record(asterisk, number)
    played = [e for e in engine.playbacks(record["call_id"]) if e["ari_event"] == "PlaybackFinished"]
    assert [e["media"] for e in played] == ["sound:vpbx/welcome"], engine.playbacks()
    assert not [e for e in engine.playbacks(record["call_id"]) if e["ari_event"] == "PlaybackFailed"]
    assert record["caller"] == CALLER and record["answered_at"], record
    assert record["duration"] >= 1
    wait_no_channels(asterisk)


def test_unknown_number_is_rejected(asterisk, sipp, engine):
    engine.start()
    call = sipp.uac("+380449998877", from_user=CALLER, timeout_s=20)
    res = call.wait(30)
    assert res.final_response("INVITE") in (404, 403, 480, 503), res.describe()
    assert 200 not in res.statuses("INVITE")


# ---- 2. IVR with RFC 2833 DTMF -----------------------------------------------------------------------------------
def _ivr_number(asterisk, name: str, *options: str, timeout: int = 5, retries: int = 3,
                fallback: str = "hangup") -> str:
    number = _unique_number()
    asterisk.vpbx("number", "add", number)
    args = ["ivr", "add", name, "--prompt", "menu", "--timeout", str(timeout), "--retries", str(retries)]
    for opt in options:
        args += ["--option", opt]
    asterisk.vpbx(*args)
    asterisk.vpbx("number", "route", number, f"ivr:{name}", "--fallback", fallback)
    asterisk.vpbx("reload")
    return number


def test_ivr_digit_routes_to_registered_phone(asterisk, sipp, engine):
    bob = _login("bob")
    bob_phone = phone(asterisk, sipp, bob)
    number = _ivr_number(asterisk, _login("ivr"), f"1=sip:{bob}")
    engine.start()
    call = sipp.uac(number, from_user=CALLER, dtmf="1", gap_ms=600, hold_ms=3000, timeout_s=40)
    res = call.wait(60)
    assert res.ok, res.describe()
    assert invites(bob_phone), "the IVR option never rang the registered phone"
    assert bob_phone.messages() and any(m.status == 200 and m.direction == "sent" for m in bob_phone.messages())
    record = wait_record(asterisk, number)
    assert record["reached"] == f"sip:{bob}" and record["disposition"] == "answered", record
    assert record["billsec"] >= 1
    wait_no_channels(asterisk)


def test_ivr_invalid_digit_then_retry(asterisk, sipp, engine):
    bob = _login("bob")
    bob_phone = phone(asterisk, sipp, bob)
    number = _ivr_number(asterisk, _login("ivr"), f"1=sip:{bob}")
    engine.start()
    call = sipp.uac(number, from_user=CALLER, dtmf="51", gap_ms=3500, hold_ms=2000, timeout_s=40)
    res = call.wait(60)
    assert res.ok, res.describe()
    record = wait_record(asterisk, number)
    media = [e["media"] for e in engine.playbacks(record["call_id"])]
    assert "sound:vpbx/invalid-option" in media, media
    assert media.count("sound:vpbx/menu") >= 1
    assert invites(bob_phone) and record["reached"] == f"sip:{bob}", record


def test_ivr_timeouts_exhaust_retries_then_fallback(asterisk, sipp, engine):
    number = _ivr_number(asterisk, _login("ivr"), "1=hangup", timeout=1, retries=2, fallback="play:short")
    engine.start()
    t0 = time.monotonic()
    call = sipp.uac(number, from_user=CALLER, scenario="uac_remote_bye.xml", timeout_s=40)
    res = call.wait(60)
    assert res.ok and res.saw("BYE", "received"), res.describe()
    record = wait_record(asterisk, number)
    media = [e["media"] for e in engine.playbacks(record["call_id"]) if e["ari_event"] == "PlaybackFinished"]
    # the menu once plus once per retry, then the fallback prompt
    assert media.count("sound:vpbx/menu") == 3, media
    assert media[-1] == "sound:vpbx/short", media
    assert time.monotonic() - t0 >= 3          # three 1 s waits for a key


# ---- 3. simultaneous: first answer wins, the other gets CANCEL -------------------------------------------------
def test_simultaneous_first_answer_wins(asterisk, sipp, engine):
    fast, slow = _login("fast"), _login("slow")
    fast_phone = phone(asterisk, sipp, fast, "uas_answer.xml")
    slow_phone = phone(asterisk, sipp, slow, "uas_silent.xml")
    number = _unique_number()
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "forward", number, "--to", f"sip:{slow}", "--to", f"sip:{fast}", "--mode", "simultaneous",
                  "--timeout", "20")
    asterisk.vpbx("reload")
    engine.start()
    res = sipp.uac(number, from_user=CALLER, hold_ms=2000, timeout_s=40).wait(60)
    assert res.ok, res.describe()
    assert invites(fast_phone) and invites(slow_phone), "both phones must ring"
    slow_msgs = slow_phone.wait_for(lambda ms: any(m.is_request and m.method == "CANCEL" for m in ms), timeout=10)
    assert any(m.is_request and m.method == "CANCEL" for m in slow_msgs), "the losing phone got no CANCEL"
    record = wait_record(asterisk, number)
    assert record["reached"] == f"sip:{fast}" and record["disposition"] == "answered", record
    wait_no_channels(asterisk)


# ---- 4. sequential: busy / silent first, then the second answers -----------------------------------------------
@pytest.mark.parametrize("first_scenario", ["uas_busy.xml", "uas_silent.xml"])
def test_sequential_moves_on(asterisk, sipp, engine, first_scenario):
    first, second = _login("first"), _login("second")
    first_phone = phone(asterisk, sipp, first, first_scenario)
    second_phone = phone(asterisk, sipp, second, "uas_answer.xml")
    number = _unique_number()
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "forward", number, "--to", f"sip:{first}", "--to", f"sip:{second}", "--mode", "sequential",
                  "--timeout", "3")
    asterisk.vpbx("reload")
    engine.start()
    t0 = time.monotonic()
    res = sipp.uac(number, from_user=CALLER, hold_ms=1500, timeout_s=40).wait(60)
    assert res.ok, res.describe()
    first_inv, second_inv = invites(first_phone), invites(second_phone)
    assert first_inv and second_inv
    if first_scenario == "uas_silent.xml":
        assert time.monotonic() - t0 >= 3, "the second phone rang before the first one's timeout"
        assert any(m.is_request and m.method == "CANCEL" for m in first_phone.messages())
    record = wait_record(asterisk, number)
    assert record["reached"] == f"sip:{second}" and record["disposition"] == "answered", record


# ---- 5. channel limit ------------------------------------------------------------------------------------------
def test_channel_limit_fifth_call_is_busy(asterisk, sipp, engine):
    number = _ivr_number(asterisk, _login("ivr"), "1=hangup", timeout=30, retries=1)
    engine.start()
    held = [sipp.uac(number, from_user=CALLER, hold_ms=8000, timeout_s=40) for _ in range(4)]
    for proc in held:
        proc.wait_for(lambda ms: any(m.status == 200 and m.method == "INVITE" and m.direction == "received"
                                     for m in ms),
                      timeout=15)
    fifth = sipp.uac(number, from_user=CALLER, hold_ms=0, timeout_s=20).wait(30)
    assert fifth.final_response("INVITE") == 486, fifth.describe()
    for proc in held:
        assert proc.wait(40).ok
    rows = calls_for(asterisk, number)
    assert sorted(r["disposition"] for r in rows if r.get("ended_at")).count("busy") == 1, rows
    wait_no_channels(asterisk)


# ---- 6. engine killed while a call waits in an IVR ------------------------------------------------------------
def test_engine_kill9_call_is_adopted(asterisk, sipp, engine, tmp_path):
    bob = _login("bob")
    bob_phone = phone(asterisk, sipp, bob, hold_ms=60000)
    number = _ivr_number(asterisk, _login("ivr"), f"1=sip:{bob}", timeout=5, retries=3)
    engine.start()
    # the caller presses 1 only after the engine has been killed and restarted
    scenario = (REPO / "tests/sipp/uac_call.xml").read_text().replace(
        "<!--MEDIA-->", '<pause milliseconds="8000"/>\n  <nop><action><exec play_pcap_audio='
                        '"/usr/share/sip-tester/dtmf_2833_1.pcap"/></action></nop>\n  <pause milliseconds="500"/>')
    path = tmp_path / "uac_late_dtmf.xml"
    path.write_text(scenario)
    call = sipp.uac(number, from_user=CALLER, scenario=path, hold_ms=2000, timeout_s=60)
    call.wait_for(lambda ms: any(m.status == 200 and m.method == "INVITE" and m.direction == "received" for m in ms))
    time.sleep(1.0)
    engine.kill9()
    engine.start()
    engine.wait_log(lambda e: e.get("event") == "adopted", timeout=10)
    res = call.wait(60)
    assert res.ok, res.describe()
    assert invites(bob_phone), "the adopted call never reached the IVR option"
    record = wait_record(asterisk, number)
    assert record["reached"] == f"sip:{bob}", record
    wait_no_channels(asterisk)


# ---- 7. Asterisk restarted under a running engine -------------------------------------------------------------
def test_engine_reconnects_after_asterisk_restart(asterisk, sipp, engine):
    from conftest import sandbox

    number = _unique_number()
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "route", number, "hangup", "--greeting", "short")
    asterisk.vpbx("reload")
    engine.start()
    mark = engine.log_path.stat().st_size
    sandbox("restart", timeout=120)
    engine.wait_log(lambda e: "ARI connected" in e.get("message", ""), timeout=30, since=mark)
    res = sipp.uac(number, from_user=CALLER, scenario="uac_remote_bye.xml", timeout_s=30).wait(40)
    assert res.ok and res.saw("BYE", "received"), res.describe()
    record = wait_record(asterisk, number)
    assert [e["media"] for e in engine.playbacks(record["call_id"]) if e["ari_event"] == "PlaybackFinished"] == \
        ["sound:vpbx/short"]


# ---- uri: destination: another PBX reached by address -----------------------------------------------------------
def test_forward_to_uri_destination(asterisk, sipp, engine):
    other_pbx = sipp.uas("uas_answer.xml")
    number = _unique_number()
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "route", number, f"uri:sip:reception@127.0.0.1:{other_pbx.port}")
    asterisk.vpbx("reload")
    engine.start()
    res = sipp.uac(number, from_user=CALLER, hold_ms=1500, timeout_s=30).wait(40)
    assert res.ok, res.describe()
    got = [m for m in other_pbx.messages() if m.is_request and m.method == "INVITE"]
    assert got and got[0].request_uri.startswith(f"sip:reception@127.0.0.1:{other_pbx.port}"), other_pbx.messages()
    record = wait_record(asterisk, number)
    assert record["reached"] == f"uri:sip:reception@127.0.0.1:{other_pbx.port}" and record["disposition"] == "answered"


# ---- a greeting uploaded as 44.1 kHz stereo plays on a live call ------------------------------------------------
def test_uploaded_hifi_stereo_greeting_plays(asterisk, sipp, engine, tmp_path):
    import numpy as np
    import soundfile as sf

    t = np.arange(int(44100 * 1.5)) / 44100
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    src = tmp_path / "studio.wav"
    sf.write(src, np.stack([tone, tone * 0.5], axis=1), 44100, subtype="PCM_24")
    asterisk.vpbx("prompt", "add", "studio", str(src))
    number = _unique_number()
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "route", number, "hangup", "--greeting", "studio")
    asterisk.vpbx("reload")
    engine.start()
    res = sipp.uac(number, from_user=CALLER, scenario="uac_remote_bye.xml", timeout_s=30).wait(40)
    assert res.ok, res.describe()
    record = wait_record(asterisk, number)
    events = engine.playbacks(record["call_id"])
    assert [(e["ari_event"], e["media"]) for e in events] == [("PlaybackFinished", "sound:vpbx/studio")], events


# ---- voicemail: nobody answers, the caller leaves a message, it arrives by e-mail -------------------------------
class _Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.original_content)
        return "250 OK"


@contextlib.contextmanager
def smtp_server_at(asterisk, port: int) -> Iterator[None]:
    """This session's vpbx.toml points [smtp] at 127.0.0.1:port (plain SMTP) while the block runs."""
    from vpbx.config import write_config

    original = asterisk.config_path.read_text()
    cfg = replace(asterisk.cfg, smtp=replace(asterisk.cfg.smtp, host="127.0.0.1", port=port, security="none"))
    write_config(cfg, asterisk.config_path, force=True)
    try:
        yield
    finally:
        asterisk.config_path.write_text(original)


def _voicemail_number(asterisk, sipp) -> tuple[str, Any]:
    """A number forwarded to a phone that never answers, with voicemail to office@example.com as the fallback."""
    silent = _login("nobody")
    silent_phone = phone(asterisk, sipp, silent, "uas_silent.xml")
    number = _unique_number()
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "forward", number, "--to", f"sip:{silent}", "--mode", "sequential", "--timeout", "2",
                  "--fallback", "voicemail", "--vm-email", "office@example.com")
    asterisk.vpbx("reload")
    return number, silent_phone


def _leave_message(sipp, number: str, tmp_path: Path) -> Any:
    """Call `number`: ring 2 s, voicemail intro (~5.7 s) and beep, then 7 s of speech (g711a.pcap); the caller hangs
    up mid-message."""
    scenario = (REPO / "tests/sipp/uac_call.xml").read_text().replace(
        "<!--MEDIA-->", '<pause milliseconds="8500"/>\n  <nop><action><exec play_pcap_audio='
                        '"/usr/share/sip-tester/g711a.pcap"/></action></nop>\n  <pause milliseconds="7000"/>')
    path = tmp_path / "uac_message.xml"
    path.write_text(scenario)
    return sipp.uac(number, from_user=CALLER, scenario=path, hold_ms=0, timeout_s=60).wait(60)


def _voicemail_rows(asterisk, number: str, pending: bool = False) -> list[dict[str, Any]]:
    rows = json.loads(asterisk.vpbx("voicemail", "list", *(["--pending"] if pending else []), "--json").stdout)
    return [r for r in rows if r["number"] == number]


def _voicemail_mails(inbox: _Inbox, number: str) -> list[bytes]:
    """The voicemail e-mails for `number` (the engine's one outbox also delivers notices other tests left pending)."""
    return [m for m in inbox.messages if f"Subject: Voicemail for {number} ".encode() in m]


def _wait_inbox(inbox: _Inbox, timeout: float, number: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (_voicemail_mails(inbox, number) if number else inbox.messages):
            return
        time.sleep(0.2)


def _check_voicemail_mail(raw: bytes, number: str, recorded_s: float) -> None:
    """The e-mail names the called number and the caller; its one WAV attachment is 8 kHz mono and as long as the
    recording Asterisk reported (and as the 7 s of speech the caller sent, give or take the beep and hang-up)."""
    import email
    import io

    import soundfile as sf

    msg = email.message_from_bytes(raw)
    assert number in msg["Subject"] and CALLER in msg["Subject"], msg["Subject"]
    wavs = [p for p in msg.walk() if p.get_content_type() == "audio/wav"]
    assert len(wavs) == 1
    data, rate = sf.read(io.BytesIO(wavs[0].get_payload(decode=True)))
    assert rate == 8000 and data.ndim == 1
    seconds = len(data) / rate
    assert 4.0 <= seconds <= 12.0, seconds
    assert abs(seconds - recorded_s) <= 1.5, (seconds, recorded_s)


def test_voicemail_reaches_smtp(asterisk, sipp, engine, tmp_path):
    from aiosmtpd.controller import Controller

    from sipp import free_tcp_port

    inbox = _Inbox()
    port = free_tcp_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with smtp_server_at(asterisk, port):
            number, silent_phone = _voicemail_number(asterisk, sipp)
            engine.start()
            res = _leave_message(sipp, number, tmp_path)
            assert res.ok, res.describe()
            assert invites(silent_phone)
            _wait_inbox(inbox, 30, number)
            assert len(_voicemail_mails(inbox, number)) == 1, asterisk.vpbx("voicemail", "list", "--json").stdout
            rows = _voicemail_rows(asterisk, number)
            assert len(rows) == 1 and rows[0]["delivered_at"], rows
            _check_voicemail_mail(_voicemail_mails(inbox, number)[0], number, float(rows[0]["duration"]))
            record = wait_record(asterisk, number)
            assert record["voicemail"] == 1 and record["disposition"] == "voicemail", record
    finally:
        controller.stop()


def test_voicemail_kept_while_smtp_is_down_then_delivered(asterisk, sipp, engine, tmp_path):
    """SMTP is down when the message is left: it stays in the outbox (and the spool) and the engine's own backoff
    delivers it, exactly once, after the mail server comes back. No `vpbx voicemail retry`: the sysadmin only fixes
    the mail server."""
    from aiosmtpd.controller import Controller

    from sipp import free_tcp_port
    from vpbx.services.outbox import BACKOFF_FIRST_S, SPOOL_DIR_NAME, spool_path

    port = free_tcp_port()            # nothing listens there yet: the mail server is down
    with smtp_server_at(asterisk, port):
        number, _ = _voicemail_number(asterisk, sipp)
        engine.start()
        res = _leave_message(sipp, number, tmp_path)
        assert res.ok, res.describe()
        deadline = time.monotonic() + 30
        while not ((rows := _voicemail_rows(asterisk, number)) and rows[0]["attempts"] >= 1):
            assert time.monotonic() < deadline, f"no failed delivery attempt recorded: {rows}"
            time.sleep(0.5)
        kept = rows[0]
        assert kept["delivered_at"] is None and f"127.0.0.1:{port}" in kept["last_error"], kept
        assert [r["recording"] for r in _voicemail_rows(asterisk, number, pending=True)] == [kept["recording"]]
        spooled = spool_path(asterisk.dir / SPOOL_DIR_NAME, kept["recording"])
        assert spooled.stat().st_size > 8000, "the message is not kept in the spool"
        engine.wait_log(lambda e: "attempt 1 failed" in e.get("message", ""), timeout=5)

        inbox = _Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()                                    # the mail server is back
        try:
            # retries come 5 s, 10 s, 20 s ... after each failure
            _wait_inbox(inbox, 4 * BACKOFF_FIRST_S + 15, number)
            assert _voicemail_mails(inbox, number), asterisk.vpbx("voicemail", "list", "--json").stdout
            time.sleep(BACKOFF_FIRST_S + 2)                   # a second copy would come with the next pass
            assert len(_voicemail_mails(inbox, number)) == 1, len(_voicemail_mails(inbox, number))
        finally:
            controller.stop()
        delivered = _voicemail_rows(asterisk, number)
        assert len(delivered) == 1 and delivered[0]["delivered_at"] and delivered[0]["attempts"] >= 2, delivered
        assert not _voicemail_rows(asterisk, number, pending=True)
        assert not spooled.exists(), "the spool copy outlived the delivery"
        _check_voicemail_mail(_voicemail_mails(inbox, number)[0], number, float(delivered[0]["duration"]))
        record = wait_record(asterisk, number)
        assert record["voicemail"] == 1 and record["disposition"] == "voicemail", record


# ---- outbound: a SIP account calls out through its caller-ID number's trunk -------------------------------------
TRUNK_PASSWORD = "trunk-secret-1"


@dataclass
class Outbound:
    login: str               # the SIP account that dials out
    password: str
    carrier: Any             # the trunk's sipp UAS
    trunk: str
    trunk_login: str


def _outbound_setup(asterisk, sipp, caller_id: str, direction: str, scenario: str = "uas_answer.xml") -> Outbound:
    """A trunk to a sipp carrier (running `scenario`, keys login/password = the trunk's credentials), caller_id added
    on it with `direction`, and a SIP account presenting caller_id."""
    trunk = f"out{os.getpid() % 10000}{next(_seq)}"
    trunk_login = "u" + trunk
    carrier_uas = sipp.uas(scenario, keys={"login": trunk_login, "password": TRUNK_PASSWORD})
    asterisk.vpbx("trunk", "add", trunk, "--server", "127.0.0.1", "--port", str(carrier_uas.port),
                  "--login", trunk_login, "--password", TRUNK_PASSWORD, "--no-register")
    asterisk.vpbx("number", "add", caller_id, "--direction", direction, "--trunk", trunk)
    login = _login("dialer")
    password = json.loads(asterisk.vpbx("sip", "add", login, "--caller-id", caller_id, "--json").stdout)["password"]
    asterisk.vpbx("reload")
    return Outbound(login, password, carrier_uas, trunk, trunk_login)


def carrier_invites(out: Outbound) -> list[Any]:
    return [m for m in out.carrier.messages() if m.is_request and m.method == "INVITE"]


def _assert_refused(res: Any, out: Outbound) -> None:
    """The caller got a final failure and nothing reached the carrier."""
    assert 200 not in res.statuses("INVITE"), res.describe()
    finals = [s for s in res.statuses("INVITE") if s >= 300]
    assert finals and finals[-1] >= 400, res.describe()
    assert not carrier_invites(out), "the call got out to the carrier"


@pytest.mark.parametrize("dest,shown", [("+380671234567", True), ("+4930123456", False)])
def test_outbound_call_through_trunk_caller_id_rule(asterisk, sipp, engine, dest, shown):
    caller_id = _unique_number()
    out = _outbound_setup(asterisk, sipp, caller_id, "both")
    # the toll-fraud guard lets an account call its caller-ID number's country only, unless allowed more
    asterisk.vpbx("sip", "set", out.login, "--allow-countries", "UA,DE")
    engine.start()
    res = sipp.uac(dest, login=out.login, password=out.password, hold_ms=1000, timeout_s=30).wait(40)
    assert res.ok, res.describe()
    got = carrier_invites(out)
    assert got and got[0].request_uri == f"sip:{dest}@127.0.0.1:{out.carrier.port}", out.carrier.messages()
    assert len(got) == 1, "re-INVITE after the answer:\n" + "\n".join(map(str, out.carrier.messages()))
    pai = got[0].header("P-Asserted-Identity") or ""
    privacy = (got[0].header("Privacy") or "").lower()
    assert f"sip:{caller_id}@" in pai, str(got[0])          # the carrier always learns who calls
    if shown:
        assert "id" not in privacy, str(got[0])
    else:
        assert "id" in privacy, str(got[0])                  # ... and is told to withhold it from the callee
    record = wait_record(asterisk, caller_id)
    assert record["reached"] == f"tel:{dest}" and record["disposition"] == "answered", record


def _digest_params(header: str) -> dict[str, str]:
    scheme, _, rest = header.strip().partition(" ")
    assert scheme.lower() == "digest", header
    return {k.lower(): v.strip('"') for k, v in re.findall(r'([A-Za-z-]+)\s*=\s*("[^"]*"|[^,\s]+)', rest)}


def _digest_response(p: dict[str, str], method: str, password: str) -> str:
    """RFC 2617 / RFC 3261 MD5 digest response (with qop=auth when the challenge asked for it)."""
    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = md5(f"{p['username']}:{p['realm']}:{password}")
    ha2 = md5(f"{method}:{p['uri']}")
    if p.get("qop"):
        return md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{p['qop']}:{ha2}")
    return md5(f"{ha1}:{p['nonce']}:{ha2}")


def test_outbound_call_answers_the_carriers_digest_challenge(asterisk, sipp, engine):
    """The carrier answers the first INVITE with 401 + WWW-Authenticate; Asterisk re-sends it with an Authorization
    whose digest is right for the trunk's login and password; the call connects; the caller-ID rule still holds."""
    caller_id = _unique_number()
    dest = "+380671234567"
    out = _outbound_setup(asterisk, sipp, caller_id, "both", scenario="uas_auth_answer.xml")
    engine.start()
    res = sipp.uac(dest, login=out.login, password=out.password, hold_ms=1000, timeout_s=30).wait(40)
    assert res.ok, res.describe()
    msgs = out.carrier.messages()
    got = carrier_invites(out)
    assert len(got) == 2, "\n".join(map(str, msgs))
    first, second = got
    assert first.header("Authorization") is None
    challenge = next(m for m in msgs if m.direction == "sent" and m.status == 401)
    nonce = _digest_params(challenge.header("WWW-Authenticate") or "")["nonce"]
    auth = _digest_params(second.header("Authorization") or "Digest")
    assert auth["username"] == out.trunk_login, auth
    assert auth["realm"] == "carrier" and auth["nonce"] == nonce and auth.get("qop") == "auth", auth
    assert auth["uri"] == second.request_uri == f"sip:{dest}@127.0.0.1:{out.carrier.port}", (auth, str(second))
    assert auth["response"] == _digest_response(auth, "INVITE", TRUNK_PASSWORD), auth
    assert auth["response"] != _digest_response(auth, "INVITE", TRUNK_PASSWORD + "x")
    # sipp's own verifyauth agreed (it answers 403 otherwise), and the call was answered
    assert not [m for m in msgs if m.direction == "sent" and m.status == 403]
    assert [m for m in msgs if m.direction == "sent" and m.status == 200 and m.method == "INVITE"]
    assert second.call_id == first.call_id
    assert f"sip:{caller_id}@" in (second.header("P-Asserted-Identity") or ""), str(second)
    assert "id" not in (second.header("Privacy") or "").lower(), str(second)
    record = wait_record(asterisk, caller_id)
    assert record["reached"] == f"tel:{dest}" and record["disposition"] == "answered", record


def test_outbound_refused_for_inbound_only_caller_id(asterisk, sipp, engine):
    caller_id = _unique_number()
    out = _outbound_setup(asterisk, sipp, caller_id, "in")
    engine.start()
    res = sipp.uac("+380671234567", login=out.login, password=out.password, hold_ms=0, timeout_s=20).wait(30)
    _assert_refused(res, out)


@pytest.mark.parametrize("stored_direction", ["in", "both"])
def test_outbound_refused_for_tollfree_caller_id(asterisk, sipp, engine, stored_direction):
    """A toll-free caller-ID number never calls out. The CLI keeps toll-free numbers inbound-only; "both" is a
    database that says otherwise anyway (written before the rule, or by another tool): the engine still refuses.
    Such a row also stops `vpbx reload` (the renderers check every number), so everything the test needs from Asterisk
    is set up first, and the row is put right afterwards (the session's later tests reload)."""
    from vpbx.storage.store import Store

    tollfree = _unique_tollfree()
    out = _outbound_setup(asterisk, sipp, tollfree, "in")
    refused = asterisk.vpbx("number", "set", tollfree, "--direction", "both", check=False)
    assert refused.returncode == 1 and "toll-free" in refused.stderr, refused
    # the same trunk takes calls: a geographic caller-ID number on it gets out
    control_number = _unique_number()
    asterisk.vpbx("number", "add", control_number, "--direction", "both", "--trunk", out.trunk)
    control = _login("control")
    added = asterisk.vpbx("sip", "add", control, "--caller-id", control_number, "--json")
    password = json.loads(added.stdout)["password"]
    asterisk.vpbx("reload")
    try:
        if stored_direction == "both":
            with Store.open(asterisk.cfg.db) as st:
                st.numbers.update([tollfree], direction="both")
        shown = json.loads(asterisk.vpbx("number", "show", tollfree, "--json").stdout)
        assert shown["type"] == "tollfree" and shown["direction"] == stored_direction, shown
        engine.start()
        res = sipp.uac("+380671234567", login=out.login, password=out.password, hold_ms=0, timeout_s=20).wait(30)
        _assert_refused(res, out)
        engine.wait_log(lambda e: "refused" in e.get("message", "") and out.login in e.get("message", ""), timeout=5)
        ok = sipp.uac("+380671234567", login=control, password=password, hold_ms=0, timeout_s=20).wait(30)
        assert ok.ok and carrier_invites(out), ok.describe()
    finally:
        with Store.open(asterisk.cfg.db) as st:
            st.numbers.update([tollfree], direction="in")


@pytest.mark.parametrize("peer", ["other-address", "trunk-address", "wrong-password"])
def test_unknown_peer_cannot_call_out(asterisk, sipp, engine, tmp_path, peer):
    """Only SIP accounts reach the outbound route. other-address: a stranger at 127.0.0.2 (no trunk or account
    there); trunk-address: a stranger at 127.0.0.1, the address the carrier trunks are identified by (its call
    lands in the inbound context: unallocated); wrong-password: an account's name without its password."""
    from sipp import Sipp

    caller_id = _unique_number()
    dest = "+380671234567"
    out = _outbound_setup(asterisk, sipp, caller_id, "both")
    engine.start()
    if peer == "other-address":
        stranger = Sipp(tmp_path / "stranger", local_ip="127.0.0.2")
        try:
            res = stranger.uac(dest, from_user=_login("stranger"), hold_ms=0, timeout_s=20).wait(30)
        finally:
            stranger.cleanup()
    elif peer == "trunk-address":
        res = sipp.uac(dest, from_user=_login("stranger"), hold_ms=0, timeout_s=20).wait(30)
        assert res.final_response("INVITE") == 404, res.describe()
    else:
        res = sipp.uac(dest, login=out.login, password="not-" + out.password, hold_ms=0, timeout_s=20).wait(30)
    _assert_refused(res, out)
    # the account itself, with its password, does get out through the same trunk
    ok = sipp.uac(dest, login=out.login, password=out.password, hold_ms=0, timeout_s=20).wait(30)
    assert ok.ok and len(carrier_invites(out)) == 1, ok.describe()

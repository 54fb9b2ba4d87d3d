"""Phones on a real network (issue 11, tests 1-4): real PJSIP phones (tests/phone.py) in network namespaces
(tests/netns.py) against vpbx's Asterisk, with the transports vpbx renders from vpbx.toml [sip].

1. A LAN phone registers to the server's LAN address, calls through an IVR and is called by a forward.
2. A phone behind a masquerading router (which forgets an idle UDP mapping after 40 s) registers with its own NAT
   keep-alives off, and is called (and calls) more than 60 s later: Asterisk's qualify kept the binding open.
3. Server behind NAT: with [sip] external_address, the Contact, Via and SDP a phone outside local_net sees carry the
   public address (read from the phone's own SIP trace); a loopback phone (always local) sees no rewrite.
4. TLS: a CA and a server certificate made here (openssl); a phone registers over TLS checking the certificate against
   that CA, places an SRTP (SDES) call with two-way audio; a plain-RTP offer from the SRTP-only account is refused.
Audio is checked by tone frequency both ways, as in tests/test_media.py.

The sandbox Asterisk is shared: `sip_config` writes this session's vpbx.toml with the test's [sip] settings,
regenerates, restarts Asterisk (transports change only on a restart) and, also when the test fails, puts back the
config it found and restarts again. Every namespace is removed at the end (LabNet), also on failure.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import Engine, channels_left, sandbox
from netns import LabNet
from phone import Phone, carries, tone_levels
from test_engine_asterisk import _unique_number

from vpbx.config import write_config

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(400)]

A_HZ, B_HZ = 700, 1100
LOOPBACK = "127.0.0.1:5060"
TALK_S = 4


# ---- the sandbox on other [sip] settings ----------------------------------------------------------------------
def _apply(asterisk: Any, cfg: Any) -> None:
    write_config(cfg, asterisk.config_path, force=True)
    asterisk.cfg = cfg
    asterisk.generate()
    sandbox("restart")
    asterisk.reload()          # proves the AMI login works on the restarted Asterisk


@contextmanager
def sip_config(asterisk: Any, bind: str | None = None, **sip: Any) -> Iterator[Any]:
    """Asterisk running with these [sip] settings; afterwards the config found before, also on failure."""
    before = asterisk.cfg
    cfg = replace(before, sip_bind=bind or before.sip_bind, sip=replace(before.sip, **sip))
    try:
        _apply(asterisk, cfg)
        yield cfg
    finally:
        _apply(asterisk, before)


def _make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=vpbx test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    (directory / "ext.cnf").write_text("basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n"
                                       "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    (directory / "server.key").chmod(0o600)
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


@pytest.fixture(scope="module")
def tls_files(asterisk: Any) -> Iterator[tuple[Path, Path, Path]]:
    # inside the sandbox's root: Asterisk runs chrooted there (vpbx names the files as it sees them)
    directory = asterisk.root / "tmp" / f"vpbx-tls-{os.getpid()}"
    try:
        yield _make_tls(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def open_asterisk(asterisk: Any, tls_files: tuple[Path, Path, Path]) -> Iterator[Any]:
    """The sandbox listening on every address (UDP and TCP 5060, TLS 5061 with the test's certificate)."""
    _, cert, key = tls_files
    with sip_config(asterisk, bind="0.0.0.0", tls_cert=str(cert), tls_key=str(key)):
        yield asterisk


@pytest.fixture
def engine(open_asterisk: Any, engine: Engine) -> Engine:
    """conftest's engine, on the sandbox listening on every address (open_asterisk is set up first)."""
    return engine


@pytest.fixture
def net() -> Iterator[LabNet]:
    with LabNet() as lab:
        yield lab


# ---- helpers --------------------------------------------------------------------------------------------------
def _login(prefix: str) -> str:
    return f"{prefix}{os.getpid() % 100000}{int(time.monotonic() * 1000) % 100000}"


def account(asterisk: Any, login: str, *options: str) -> str:
    return json.loads(asterisk.vpbx("sip", "add", login, *options, "--json").stdout)["password"]


def forward_number(asterisk: Any, login: str) -> str:
    number = _unique_number()
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "forward", number, "--to", f"sip:{login}", "--mode", "simultaneous", "--timeout", "20")
    return number


def route_number(asterisk: Any, dest: str) -> str:
    number = _unique_number()
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "route", number, dest, "--fallback", "hangup")
    return number


def contact_of(asterisk: Any, login: str) -> str:
    """The contact URI Asterisk holds for the account (`pjsip show contacts`)."""
    out = asterisk.cli("pjsip show contacts")
    found = re.findall(rf"Contact:\s+{re.escape(login)}/(\S+)", out)
    assert found, f"{login} is not registered:\n{out}"
    return found[0]


def talk(caller: Phone, callee: Phone, uri: str, *, before_answer: Any = None) -> tuple[Path, Path]:
    """caller calls `uri`, callee answers; both talk for TALK_S; -> (what the caller heard, what the callee heard)
    while they were connected: WAV files complete once the phones have quit."""
    caller.call(uri)
    if before_answer is not None:
        before_answer()
    callee.wait("incoming", timeout=25)
    callee.answer()
    callee.wait("confirmed", timeout=20)
    if before_answer is None:               # (else the caller's call was confirmed already, by an IVR)
        caller.wait("confirmed", timeout=20)
    time.sleep(0.5)
    caller.segment("talk")
    callee.segment("talk")
    time.sleep(TALK_S)
    caller.hangup()
    caller.wait("disconnected", timeout=10)
    callee.wait("disconnected", timeout=10)
    return caller.segment_recording("talk"), callee.segment_recording("talk")


def assert_two_way(heard_by_a: Path, a_hz: int, heard_by_b: Path, b_hz: int) -> None:
    assert carries(heard_by_a, b_hz), f"A did not hear B's tone: {tone_levels(heard_by_a, b_hz)}"
    assert carries(heard_by_b, a_hz), f"B did not hear A's tone: {tone_levels(heard_by_b, a_hz)}"
    assert not carries(heard_by_a, a_hz, min_share=0.3), "A heard its own tone echoed back"


def received_invites(phone: Phone) -> list[str]:
    return [m for m in phone.sip_messages() if m.startswith("INVITE ")]


# ---- 1. a phone on the LAN --------------------------------------------------------------------------------------
def test_lan_phone_registers_calls_through_an_ivr_and_is_called_by_a_forward(open_asterisk, engine, net, tmp_path):
    asterisk = open_asterisk
    lan = net.lan_host()
    far, desk = _login("lan"), _login("desk")
    far_pw, desk_pw = account(asterisk, far), account(asterisk, desk)
    menu = _login("menu")
    ivr = _unique_number()
    asterisk.vpbx("number", "add", ivr)
    asterisk.vpbx("ivr", "add", menu, "--prompt", "menu", "--option", f"1=sip:{desk}", "--timeout", "8",
                  "--retries", "1")
    asterisk.vpbx("number", "route", ivr, f"ivr:{menu}", "--fallback", "hangup")
    forwarded = forward_number(asterisk, far)
    asterisk.reload()
    engine.start()
    server = f"{lan.server}:5060"
    domain = asterisk.cfg.domain
    with Phone("lan", A_HZ, tmp_path / "lan", bind=lan.address, prefix=lan.run) as a, \
            Phone("desk", B_HZ, tmp_path / "desk") as b:
        a.register(far, far_pw, server, domain)                 # before vpbx rendered [sip] bind: 408 after 32 s
        b.register(desk, desk_pw, LOOPBACK, domain)
        assert contact_of(asterisk, far).startswith(f"sip:{far}@{lan.address}:")

        def press_1() -> None:
            a.wait("confirmed", timeout=20)                        # the IVR answers
            time.sleep(1.0)
            a.dtmf("1")

        ivr_call = talk(a, b, f"sip:{ivr}@{server}", before_answer=press_1)
        forward_call = talk(b, a, f"sip:{forwarded}@{LOOPBACK}")
    assert_two_way(ivr_call[0], A_HZ, ivr_call[1], B_HZ)
    assert_two_way(forward_call[0], B_HZ, forward_call[1], A_HZ)
    invite = received_invites(a)[-1]
    assert f"c=IN IP4 {lan.server}" in invite, "the LAN phone gets media from the server's LAN address"


# ---- 2. a phone behind NAT ---------------------------------------------------------------------------------------
NAT_UDP_TIMEOUT = 40        # the router forgets an idle UDP mapping after this (> the accounts' qualify, 25 s)
CALLED_AFTER_S = 65


def test_phone_behind_nat_is_reached_more_than_60_s_after_registering(open_asterisk, engine, net, tmp_path):
    asterisk = open_asterisk
    nat = net.nat_host(udp_timeout=NAT_UDP_TIMEOUT)
    far, desk = _login("nat"), _login("desk")
    far_pw, desk_pw = account(asterisk, far), account(asterisk, desk)
    to_far = forward_number(asterisk, far)
    to_desk = route_number(asterisk, f"sip:{desk}")
    asterisk.reload()
    engine.start()
    server = f"{nat.server}:5060"
    domain = asterisk.cfg.domain
    with Phone("nat", A_HZ, tmp_path / "nat", bind=nat.address, prefix=nat.run) as a, \
            Phone("desk", B_HZ, tmp_path / "desk") as b:
        # the phone sends no keep-alives of its own and writes its private address into Contact and SDP
        a.register(far, far_pw, server, domain, keepalive=0)
        registered = time.monotonic()
        b.register(desk, desk_pw, LOOPBACK, domain)
        contact = contact_of(asterisk, far)
        assert contact.startswith(f"sip:{far}@{nat.public}:"), f"rewrite_contact: the router's address, not {contact}"
        time.sleep(max(0.0, CALLED_AFTER_S - (time.monotonic() - registered)))
        called = talk(b, a, f"sip:{to_far}@{LOOPBACK}")
        assert time.monotonic() - registered > 60
        calling = talk(a, b, f"sip:{to_desk}@{server}")
    assert_two_way(called[0], B_HZ, called[1], A_HZ)
    assert_two_way(calling[0], A_HZ, calling[1], B_HZ)
    received = a.sip_messages()
    first_invite = next(i for i, m in enumerate(received) if m.startswith("INVITE "))
    qualifies = [m for m in received[:first_invite] if m.startswith("OPTIONS ")]
    assert len(qualifies) >= 2, "Asterisk's qualify (every 25 s) is what kept the router's mapping open"


# ---- 3. the server behind NAT ----------------------------------------------------------------------------------
def test_external_address_is_what_a_phone_outside_local_net_sees(open_asterisk, carrier, prompts, net,
                                                                  tmp_path):
    asterisk = open_asterisk
    lan = net.lan_host()
    # the server's "public" address: another address of this machine, as a port forward would lead to it
    public = net.alias(lan, 100)
    far, desk = _login("out"), _login("desk")
    far_pw, desk_pw = account(asterisk, far), account(asterisk, desk)
    to_far = forward_number(asterisk, far)
    # local_net: the server's private side (here its LAN-side address stands for it; Asterisk rewrites the SDP only
    # when its own address is local); the phone, 10.77.N.2, is outside it - like a phone on the internet
    with sip_config(asterisk, external_address=public, local_net=(f"{lan.server}/32",)):
        pjsip = (asterisk.etc / "pjsip_vpbx.conf").read_text()
        assert f"external_media_address = {public}" in pjsip and "local_net = 127.0.0.0/8" in pjsip
        eng = Engine(asterisk, tmp_path / "engine.log").start()
        try:
            domain = asterisk.cfg.domain
            with Phone("outside", A_HZ, tmp_path / "outside", bind=lan.address, prefix=lan.run) as a, \
                    Phone("desk", B_HZ, tmp_path / "desk") as b:
                a.register(far, far_pw, f"{public}:5060", domain)
                b.register(desk, desk_pw, LOOPBACK, domain)
                heard_by_b, heard_by_a = talk(b, a, f"sip:{to_far}@{LOOPBACK}")
        finally:
            eng.stop()
            if channels_left(asterisk):
                asterisk.cli("channel request hangup all")
    assert_two_way(heard_by_b, B_HZ, heard_by_a, A_HZ)
    invite = received_invites(a)[-1]
    contact = re.search(r"^Contact:\s*(.*)$", invite, re.M)
    via = re.search(r"^Via:\s*(.*)$", invite, re.M)
    assert contact is not None and f"@{public}:5060" in contact.group(1), invite
    assert via is not None and f" {public}:5060" in via.group(1), invite
    sdp = [line for line in invite.splitlines() if line.startswith(("c=", "o="))]
    assert sdp and all(line.endswith(f" IP4 {public}") for line in sdp), invite
    # the loopback phone is local (127.0.0.0/8 is always in local_net): no rewrite for it
    answers = [m for m in b.sip_messages() if m.startswith("SIP/2.0 200") and "c=IN IP4" in m]
    assert answers and "c=IN IP4 127.0.0.1" in answers[-1] and public not in answers[-1], answers


# ---- 4. TLS and SRTP -------------------------------------------------------------------------------------------
def test_tls_registration_srtp_call_and_a_plain_rtp_offer_refused(open_asterisk, engine, tls_files, tmp_path,
                                                                    request):
    asterisk = open_asterisk
    ca, _, _ = tls_files
    sec, desk = _login("sec"), _login("desk")
    sec_pw = account(asterisk, sec, "--transport", "tls", "--srtp")
    # a TLS account cannot be rendered once the session's config has no certificate again: gone before that
    request.addfinalizer(lambda: asterisk.vpbx("sip", "remove", sec, check=False))
    desk_pw = account(asterisk, desk)
    shown = json.loads(asterisk.vpbx("sip", "show", sec, "--json").stdout)
    assert (shown["transport"], shown["srtp"]) == ("tls", True), shown
    to_desk = route_number(asterisk, f"sip:{desk}")
    asterisk.reload()
    endpoint = asterisk.cli(f"pjsip show endpoint {sec}")
    assert re.search(r"media_encryption\s+:\s+sdes", endpoint), endpoint
    assert re.search(r"media_encryption_optimistic\s+:\s+false", endpoint), endpoint
    engine.start()
    tls_server = "127.0.0.1:5061"
    domain = asterisk.cfg.domain
    with Phone("sec", A_HZ, tmp_path / "sec", transport="tls", ca_file=ca) as a, \
            Phone("desk", B_HZ, tmp_path / "desk") as b:
        a.register(sec, sec_pw, tls_server, domain, srtp="mandatory")    # the server's certificate checked
        b.register(desk, desk_pw, LOOPBACK, domain)
        contact_of(asterisk, sec)
        heard_by_a, heard_by_b = talk(a, b, f"sip:{to_desk}@{tls_server}")
    trace = (tmp_path / "sec" / "sip-trace.log").read_text(errors="replace")     # complete once the phone quit
    assert re.search(r"Response msg 200/REGISTER/\S+ \S+ from TLS 127\.0\.0\.1:5061", trace), \
        "the phone's REGISTER was answered 200 OK over TLS"
    assert_two_way(heard_by_a, A_HZ, heard_by_b, B_HZ)
    answer = [m for m in a.sip_messages() if m.startswith("SIP/2.0 200") and "m=audio" in m][-1]
    assert "RTP/SAVP" in answer and "a=crypto:" in answer, "Asterisk answered with SRTP (SDES)"

    # the same account offering plain RTP: refused, nobody rings
    with Phone("plain", A_HZ, tmp_path / "plain", transport="tls", ca_file=ca) as p, \
            Phone("desk2", B_HZ, tmp_path / "desk2") as b:
        p.register(sec, sec_pw, tls_server, domain, srtp="disabled")
        b.register(desk, desk_pw, LOOPBACK, domain)
        p.call(f"sip:{to_desk}@{tls_server}")
        refused = p.wait("disconnected", timeout=20)
        assert refused["code"] == 488, refused
        with pytest.raises(AssertionError):
            b.wait("incoming", timeout=3)
    invite = [m for m in p.sip_messages("TX") if m.startswith("INVITE ")][-1]
    assert "RTP/AVP" in invite and "a=crypto" not in invite, "the refused offer was plain RTP"

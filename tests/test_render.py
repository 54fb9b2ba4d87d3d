"""vpbx.asterisk.render: golden files, round-trip properties, and config-injection refusal.

Golden files live in tests/golden/; regenerate them after an intended change with
    VPBX_UPDATE_GOLDEN=1 python -m pytest tests/test_render.py -k golden
and review the diff.
"""
from __future__ import annotations

import os
import re
import string
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpbx.asterisk.render import (
    FILES,
    SECRET_FILES,
    parse_pjsip,
    password_digest,
    render_all,
    render_ari_users,
    render_extensions,
    render_manager_users,
    render_pjsip,
)
from vpbx.asterisk.render.pjsip import parse_sections
from vpbx.config import AmiSettings, AriSettings, Config
from vpbx.domain import rules
from vpbx.domain import validation as validate
from vpbx.domain.errors import ConflictError, ValidationError
from vpbx.domain.records import Number, SipAccount, Trunk

GOLDEN = Path(__file__).parent / "golden"

CFG = Config(
    path=Path("/srv/vpbx/vpbx.toml"), db=Path("/srv/vpbx/vpbx.db"), domain="pbx.example.com",
    asterisk_config_dir=Path("/etc/asterisk"),
    ari=AriSettings(password="ari-secret-0123456789abcdef"),
    ami=AmiSettings(secret="ami-secret-0123456789abcdef"),
)
ACCOUNTS = [
    SipAccount("alice", "alice-password-1", domain="pbx.example.com", caller_id="+380441234567", channels=2),
    SipAccount("101", "s3cret-101-pass", domain="pbx.example.com", channels=1),
]
TRUNKS = [
    Trunk("carrier", "sip.carrier.example", "acct42", "carrier-pass", port=5060),
    Trunk("backup", "192.0.2.10", "backup.user", "b-pass", port=5080, transport="tcp"),
    Trunk("secure", "tls.carrier.example", "sec", "tls pass with spaces", port=5061, transport="tls", register=False),
]
NUMBERS = [
    Number("+380441234567", comment="main line"),
    Number("+380441234568", direction="both", language="ru"),
    Number("+380501112233", direction="out"),
]


# ---- golden files ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FILES)
def test_golden(name):
    text = render_all(CFG, NUMBERS, ACCOUNTS, TRUNKS)[name]
    path = GOLDEN / name
    if os.environ.get("VPBX_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; review, then VPBX_UPDATE_GOLDEN=1 to accept"


def test_golden_empty_install():
    """A fresh install (nothing in the DB) renders loadable files: Asterisk includes them on first boot."""
    files = render_all(CFG, [], [], [])
    assert set(files) == set(FILES)
    for text in files.values():
        parse_sections(text)                         # well-formed
    assert "[vpbx-inbound]" in files["extensions_vpbx.conf"]
    assert "type = endpoint" not in files["pjsip_vpbx.conf"]


def test_render_is_pure_and_deterministic():
    assert render_all(CFG, NUMBERS, ACCOUNTS, TRUNKS) == render_all(CFG, NUMBERS, ACCOUNTS, TRUNKS)


# ---- what the pjsip file says ------------------------------------------------------------------------------
def test_accounts_carry_a_digest_never_the_password():
    text = render_pjsip(ACCOUNTS, TRUNKS, CFG.domain)
    for a in ACCOUNTS:
        assert a.password not in text
        assert f"password_digest = {password_digest(a.login, CFG.domain, a.password)}" in text
    assert "auth_type = digest" in text and "md5_cred" not in text


def test_password_digest_is_rfc2617_ha1():
    # HA1 = MD5(username:realm:password); the example of Asterisk's pjsip.conf.sample
    assert password_digest("fred", "asterisk", "mypass") == "MD5:43a8d9be3da524f9a59ca0593d7b1b5d"


def test_trunk_passwords_are_plain_for_outbound_auth():
    text = render_pjsip([], TRUNKS, CFG.domain)
    for t in TRUNKS:
        assert f"password = {t.password}" in text


def _endpoint(text: str, login: str):
    return next(sec for sec in parse_sections(text) if sec.name == login and sec.get("type") == "endpoint")


def test_account_codecs_and_dtmf_mode():
    accounts = [
        SipAccount("plain", "plain-password-1"),
        SipAccount("wide", "wide-password-1", codecs=("opus", "g722", "ulaw"), dtmf="info"),
        SipAccount("old", "old-password-1", dtmf="inband"),
        SipAccount("auto", "auto-password-1", codecs=("alaw",), dtmf="auto"),
    ]
    text = render_pjsip(accounts, TRUNKS[:1], "pbx.example.com", codecs=("g722", "opus", "alaw", "ulaw"), opus=True)
    assert [_endpoint(text, a.login).get("allow") for a in accounts] == [
        "g722,opus,alaw,ulaw", "opus,g722,ulaw", "alaw,ulaw", "alaw"]
    assert [_endpoint(text, a.login).get("dtmf_mode") for a in accounts] == ["rfc4733", "info", "inband", "auto"]
    for a in accounts:
        assert _endpoint(text, a.login).get("disallow") == "all"
    # without codec_opus in Asterisk opus is never offered: neither from the install's list nor an account's own
    text = render_pjsip(accounts, TRUNKS[:1], "pbx.example.com", codecs=("g722", "opus", "alaw", "ulaw"), opus=False)
    assert [_endpoint(text, a.login).get("allow") for a in accounts] == [
        "g722,alaw,ulaw", "g722,ulaw", "alaw,ulaw", "alaw"]
    # trunks keep G.711 and RFC 4733 whatever the accounts use
    assert _endpoint(text, "carrier").get("allow") == "ulaw,alaw"
    assert _endpoint(text, "carrier").get("dtmf_mode") == "rfc4733"


@pytest.mark.parametrize("codecs", [(), ("g729",), ("G722",), ("alaw", "alaw"), ("alaw,ulaw",), ("ulaw ",)])
def test_bad_codec_lists_refused(codecs):
    with pytest.raises(ValidationError):
        render_pjsip([], [], "pbx.example.com", codecs=codecs)
    if codecs:
        with pytest.raises(ValidationError, match="SIP account bad"):
            render_pjsip([SipAccount("bad", "bad-password-1", codecs=codecs)], [], "pbx.example.com")


@pytest.mark.parametrize("dtmf", ["", "rfc2833", "INBAND", "info\n", "auto;x"])
def test_bad_dtmf_modes_refused(dtmf):
    with pytest.raises(ValidationError, match="DTMF mode"):
        render_pjsip([SipAccount("bad", "bad-password-1", dtmf=dtmf)], [], "pbx.example.com")


def test_inband_needs_g711():
    with pytest.raises(ValidationError, match="inband DTMF"):
        render_pjsip([SipAccount("bad", "bad-password-1", codecs=("g722",), dtmf="inband")], [], "pbx.example.com")


def test_transports_udp_tcp_always_tls_only_when_used():
    # (vpbx.asterisk.render.transports; tests/test_transports.py has the [sip] settings)
    udp_only = render_all(CFG, [], [], [TRUNKS[0]])["pjsip_vpbx.conf"]
    assert "[transport-udp]" in udp_only and "[transport-tcp]" in udp_only and "[transport-tls]" not in udp_only
    both = render_all(CFG, [], [], TRUNKS)["pjsip_vpbx.conf"]
    assert "[transport-tcp]" in both and "bind = 127.0.0.1:5060" in both
    assert "[transport-tls]" in both and "bind = 127.0.0.1:5061" in both


def test_registration_only_when_register():
    sections = parse_sections(render_pjsip([], TRUNKS, CFG.domain))
    regs = {s.name for s in sections if s.get("type") == "registration"}
    assert regs == {"carrier", "backup"}
    reg = next(s for s in sections if s.get("type") == "registration" and s.name == "backup")
    assert reg.get("server_uri") == "sip:192.0.2.10:5080;transport=tcp"
    assert reg.get("client_uri") == "sip:backup.user@192.0.2.10:5080;transport=tcp"
    assert reg.get("outbound_auth") == "backup-auth"


def test_identification_split():
    sections = parse_sections(render_pjsip(ACCOUNTS, TRUNKS, CFG.domain))
    endpoints = {s.name: s for s in sections if s.get("type") == "endpoint"}
    for a in ACCOUNTS:
        assert endpoints[a.login].get("identify_by") == "username,auth_username"
        assert endpoints[a.login].get("context") == "vpbx-outbound"
    for t in TRUNKS:
        assert endpoints[t.name].get("identify_by") == "ip"
        assert endpoints[t.name].get("context") == "vpbx-inbound"
    identifies = {s.name: s.get("match") for s in sections if s.get("type") == "identify"}
    assert identifies == {t.name: t.server for t in TRUNKS}


def test_account_and_trunk_names_must_not_clash():
    with pytest.raises(ConflictError, match="both named 'alice'"):
        render_pjsip(ACCOUNTS, [replace(TRUNKS[0], name="alice")], CFG.domain)
    with pytest.raises(ConflictError, match="appears twice"):
        render_pjsip([ACCOUNTS[0], ACCOUNTS[0]], [], CFG.domain)


# ---- the dialplan ------------------------------------------------------------------------------------------
def test_inbound_numbers_with_and_without_plus():
    text = render_extensions(NUMBERS, ACCOUNTS)
    assert "exten => +380441234567,1,Set(CHANNEL(language)=en)" in text
    assert "exten => 380441234567,1,Set(CHANNEL(language)=en)" in text
    assert text.count("Stasis(vpbx,inbound,+380441234567)") == 2
    assert "Set(CHANNEL(language)=ru)" in text
    assert "380501112233" not in text          # outbound-only number takes no calls


def test_no_route_out_of_the_inbound_context():
    text = render_extensions(NUMBERS, ACCOUNTS)
    inbound = text.split("[vpbx-inbound]", 1)[1].split("\n[", 1)[0]
    apps = set(re.findall(r",(?:\d+|n),(\w+)\(", inbound))
    assert apps <= {"Set", "Stasis", "GotoIf", "Hangup"}, apps
    assert "Dial(" not in text and "PJSIP/" not in text.replace("hint,PJSIP/", "")
    assert "include => " not in text
    assert "exten => _X.,1,Hangup(1)" in inbound and "exten => _+X.,1,Hangup(1)" in inbound


def test_outbound_goes_only_through_stasis():
    text = render_extensions(NUMBERS, ACCOUNTS, app="myapp")
    outbound = text.split("[vpbx-outbound]", 1)[1].split("\n[", 1)[0]
    dialled = "${FILTER(0-9A-Za-z--._+*#,${EXTEN})}"
    assert (f"exten => _[+0-9A-Za-z*#].,1,GotoIf($[${{LEN({dialled})}} != ${{LEN(${{EXTEN}})}}]?i,1)\n"
            f" same => n,Stasis(myapp,outbound,{dialled},${{CHANNEL(endpoint)}})\n") in outbound
    assert "exten => _[0-9*#],1,Stasis(myapp,outbound,${EXTEN},${CHANNEL(endpoint)})" in outbound
    assert set(re.findall(r",(?:\d+|n),(\w+)\(", outbound)) <= {"Stasis", "GotoIf", "Hangup"}


def _filter_set(spec: str) -> set[str]:
    """The characters Asterisk's FILTER() allows for `spec` (func_strings.c: `a-b` is a range, anything else itself)."""
    allowed, i = set(), 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            allowed |= {chr(c) for c in range(ord(spec[i]), ord(spec[i + 2]) + 1)}
            i += 3
        else:
            allowed.add(spec[i])
            i += 1
    return allowed


def test_phones_context_passes_logins_and_numbers_and_nothing_that_splits_arguments():
    """Every character of a valid login, an E.164 number and the dial keys passes FILTER(); no character that
    Asterisk's argument parser or the dialplan treats specially does (the real-Asterisk side: tests/
    test_colleague_calls.py sends `1,bob` and friends)."""
    from vpbx.asterisk.render.extensions import DIAL_CHARS

    allowed = _filter_set(DIAL_CHARS)
    assert allowed == set(string.ascii_letters + string.digits + "-._+*#")
    for login in ("bob", "acc-carol", "j.doe_2", "101", "A1"):
        validate.login(login)
        assert set(login) <= allowed
    assert set("+380441234567") <= allowed
    assert not allowed & set(',"\\()[]{}$;|& \t\r\n:@%=/\'<>!?^`~')


def test_hints_for_extensions_and_bad_or_clashing_extensions_refused():
    bob = SipAccount("bob", "secret-password-1", extension="201")
    text = render_extensions([], [*ACCOUNTS, bob])
    assert "exten => 201,hint,PJSIP/bob" in text and "exten => bob,hint,PJSIP/bob" in text
    for bad in ("1", "1234567", "20a", "2\n#include x", "٢٠١"):
        with pytest.raises(ValidationError, match="extension"):
            render_extensions([], [replace(bob, extension=bad)])
    with pytest.raises(ConflictError, match="extension"):
        render_extensions([], [*ACCOUNTS, replace(bob, extension="101")])      # account 101's login


def test_stasis_failure_fallback():
    text = render_extensions(NUMBERS, ACCOUNTS)
    assert text.count('GotoIf($["${STASISSTATUS}" = "FAILED"]?vpbx-stasis-failed,s,1)') == 2 * 2 + 2
    failed = text.split("[vpbx-stasis-failed]", 1)[1]
    assert "Playback(ss-noservice,noanswer)" in failed and "Hangup(34)" in failed


def test_hints_for_blf():
    text = render_extensions([], ACCOUNTS)
    assert "exten => alice,hint,PJSIP/alice" in text and "exten => 101,hint,PJSIP/101" in text


# ---- ARI / AMI users ---------------------------------------------------------------------------------------
def test_ari_user():
    sections = parse_sections(render_ari_users(CFG))
    assert len(sections) == 1 and sections[0].name == "vpbx"
    assert dict(sections[0].options) == {"type": "user", "read_only": "no", "password_format": "plain",
                                          "password": CFG.ari.password}


def test_ami_user_is_loopback_only_and_minimal():
    s = parse_sections(render_manager_users(CFG))[0]
    assert s.name == "vpbx" and s.get("secret") == CFG.ami.secret
    assert s.get("deny") == "0.0.0.0/0.0.0.0" and s.get("permit") == "127.0.0.1/255.255.255.255"
    assert s.get("write") == "system"     # Reload only: no originate, no command
    assert s.get("read") == "system,security"     # + failed SIP logins (the brute-force watcher); no call events


@pytest.mark.parametrize("bad", ["short", "has space in it 123456", "semi;colon-0123456789", ""])
def test_weak_or_injecting_secrets_refused(bad):
    with pytest.raises(ValidationError):
        render_ari_users(replace(CFG, ari=replace(CFG.ari, password=bad)))
    with pytest.raises(ValidationError):
        render_manager_users(replace(CFG, ami=replace(CFG.ami, secret=bad)))


def test_secret_files_are_marked():
    assert {"pjsip_vpbx.conf", "ari_vpbx.conf", "manager_vpbx.conf"} == SECRET_FILES


# ---- injection -----------------------------------------------------------------------------------------------
INJECTIONS = ["x\n[evil]", "x\x85[evil]", "x\u2028[evil]", "x\r\ntype=endpoint", "[evil]", "a]b", "a;b", "a=b",
              "#include /etc/passwd", "x\x00y",
              "x\ncontext=default"]


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("field", ["login", "password", "domain", "caller_id"])
def test_account_injection_refused(field, payload):
    account = replace(ACCOUNTS[0], **{field: "alice-password-1" + payload if field == "password" else payload})
    with pytest.raises(ValidationError):
        render_pjsip([account], [], CFG.domain)


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("field", ["name", "server", "login", "password"])
def test_trunk_injection_refused(field, payload):
    trunk = replace(TRUNKS[0], **{field: payload})
    with pytest.raises(ValidationError):
        render_pjsip([], [trunk], CFG.domain)


@pytest.mark.parametrize("payload", INJECTIONS)
def test_domain_injection_refused(payload):
    with pytest.raises(ValidationError):
        render_pjsip(ACCOUNTS, [], payload)
    with pytest.raises(ValidationError):
        render_all(replace(CFG, domain=payload), [], ACCOUNTS, [])


@pytest.mark.parametrize("payload", [*INJECTIONS, "+38044,Dial(PJSIP/x)", "+380441234567)", "${SHELL(id)}"])
def test_number_injection_refused(payload):
    with pytest.raises(ValidationError):
        render_extensions([Number(payload)], [])


@pytest.mark.parametrize("field,value", [("direction", "in\n[x]"), ("language", "en)\nexten => _X.,1,Dial(x)"),
                                         ("language", "e,n"), ("channels", 0)])
def test_number_fields_refused(field, value):
    with pytest.raises(ValidationError):
        render_extensions([replace(NUMBERS[0], **{field: value})], [])


@pytest.mark.parametrize("app", ["vpbx,inbound", "vpbx)", "a\nb", "a b", ""])
def test_app_name_refused(app):
    with pytest.raises(ValidationError):
        render_extensions(NUMBERS, ACCOUNTS, app=app)


@pytest.mark.parametrize("payload", INJECTIONS)
def test_comments_never_reach_the_config(payload):
    """Number comments are not rendered at all, so no comment can inject anything."""
    files = render_all(CFG, [replace(NUMBERS[0], comment=payload, city=payload, operator=payload)], ACCOUNTS, TRUNKS)
    for text in files.values():
        assert payload not in text


@pytest.mark.parametrize("field,value", [("port", 0), ("port", 70000), ("port", "5060"), ("transport", "ws"),
                                         ("transport", "udp\n"), ("register", "yes")])
def test_trunk_fields_refused(field, value):
    with pytest.raises(ValidationError):
        render_pjsip([], [replace(TRUNKS[0], **{field: value})], CFG.domain)


# ---- properties ------------------------------------------------------------------------------------------------
def _from_regex(rx: re.Pattern[str]) -> st.SearchStrategy[str]:
    return st.from_regex(rx, fullmatch=True)


# The documented rule (vpbx.domain.validation): config text is printable (`str.isprintable()`: no C0/C1 controls,
# format characters such as U+00AD, surrogates, private-use or unassigned code points, line/paragraph separators,
# spaces other than ' ') and holds none of FORBIDDEN. Every character drawn here is allowed by that rule.
NOT_PRINTABLE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp")
safe_char = st.characters(min_codepoint=33, max_codepoint=0x2FF,
                          blacklist_characters="".join(validate.FORBIDDEN),
                          blacklist_categories=NOT_PRINTABLE)
account_passwords = st.text(safe_char, min_size=8, max_size=40)
trunk_passwords = st.builds(lambda a, mid, b: a + mid + b, safe_char,
                            st.text(st.sampled_from(list("ab ._-")), max_size=5)
                            | st.text(safe_char, max_size=20), safe_char)
hostnames = st.from_regex(r"\A[a-z]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z]([a-z0-9-]{0,10}[a-z0-9])?){0,3}\Z")
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
hosts = hostnames | ipv4
logins = _from_regex(validate.LOGIN_RE)
e164 = st.from_regex(r"\A\+[1-9][0-9]{6,14}\Z")

codec_lists = st.just(()) | st.lists(st.sampled_from(rules.CODECS), min_size=1, unique=True).map(tuple)
accounts_st = st.builds(SipAccount, login=logins, password=account_passwords, domain=hostnames,
                        caller_id=st.none() | e164, channels=st.integers(1, 1000), codecs=codec_lists,
                        dtmf=st.sampled_from(rules.DTMF_MODES)).filter(
    lambda a: a.dtmf != "inband" or not a.codecs or bool(set(a.codecs) & set(rules.INBAND_CODECS)))
trunks_st = st.builds(Trunk, name=logins, server=hosts, login=logins, password=trunk_passwords,
                      port=st.integers(1, 65535), transport=st.sampled_from(["udp", "tcp", "tls"]),
                      register=st.booleans())


@st.composite
def installs(draw):
    accounts = draw(st.lists(accounts_st, max_size=5, unique_by=lambda a: a.login))
    taken = {a.login for a in accounts}
    trunks = draw(st.lists(trunks_st.filter(lambda t: t.name not in taken), max_size=4, unique_by=lambda t: t.name))
    domain = draw(hostnames)
    return accounts, trunks, domain


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(installs())
def test_pjsip_round_trip(install):
    accounts, trunks, domain = install
    text = render_pjsip(accounts, trunks, domain)
    parsed_accounts, parsed_trunks = parse_pjsip(text)
    # an account's codecs read back as what its endpoint allows (its own list, else the install's; opus only where
    # Asterisk has codec_opus, G.711 only for inband DTMF)
    assert parsed_accounts == [replace(a, password=password_digest(a.login, domain, a.password),
                                       codecs=rules.effective_codecs(a, rules.DEFAULT_CODECS, False))
                               for a in accounts]
    assert parsed_trunks == trunks


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(installs())
def test_pjsip_sections_are_exactly_the_objects(install):
    accounts, trunks, domain = install
    sections = parse_sections(render_pjsip(accounts, trunks, domain))
    expected: list[tuple[str, str]] = []
    for a in accounts:
        expected += [(a.login, "endpoint"), (f"{a.login}-auth", "auth"), (a.login, "aor")]
    for t in trunks:
        expected += ([(t.name, "registration")] if t.register else [])
        expected += [(f"{t.name}-auth", "auth"), (t.name, "aor"), (t.name, "endpoint"), (t.name, "identify")]
    got = [(s.name, s.get("type")) for s in sections if not s.name.startswith("transport-")]
    assert got == expected
    for s in sections:
        keys = [k for k, _ in s.options]
        assert keys.count("type") == 1


@settings(max_examples=100)
@given(st.lists(st.builds(Number, number=e164, direction=st.sampled_from(["in", "out", "both"]),
                          language=st.sampled_from(["en", "ru", "uk", "en_GB"])), max_size=6,
                unique_by=lambda n: n.number),
       st.lists(accounts_st, max_size=4, unique_by=lambda a: a.login))
def test_extensions_cover_exactly_the_inbound_numbers(numbers, accounts):
    text = render_extensions(numbers, accounts)
    inbound = text.split("[vpbx-inbound]", 1)[1].split("\n[", 1)[0]
    extens = set(re.findall(r"^exten => ([^,]+),1,Set", inbound, re.M))
    want = set()
    for n in numbers:
        if n.direction in ("in", "both"):
            want |= {n.number, n.number[1:]}
    assert extens == want
    sections = [s.name for s in parse_sections(text)]
    assert sections == ["vpbx-inbound", "vpbx-outbound", "vpbx-hints", "vpbx-stasis-failed"]


def test_safe_chars_are_what_the_validator_accepts():
    """The generators above follow the validator's rule: no drawn character is refused, every other one is."""
    allowed = [chr(c) for c in range(33, 0x300) if chr(c) not in validate.FORBIDDEN and chr(c).isprintable()]
    assert all(validate.config_text("x", ch) == ch for ch in allowed)
    for ch in (chr(c) for c in range(0, 0x300)):
        if ch not in allowed and ch != " ":
            with pytest.raises(ValidationError):
                validate.config_text("x", ch)


@settings(max_examples=200)
@given(st.text(min_size=1, max_size=30))
def test_write_and_render_refuse_the_same_trunk_passwords(payload):
    """One rule at write time and at render time: `vpbx trunk add` refuses a password iff the renderer does."""
    from vpbx.domain import rules

    trunk = Trunk("t1", "h.example", "u1", payload)
    try:
        rules.check_trunk(trunk)
        written = True
    except ValidationError:
        written = False
    try:
        render_pjsip([], [trunk], "d.example")
        rendered = True
    except ValidationError:
        rendered = False
    assert written == rendered


@settings(max_examples=200)
@given(st.text(min_size=1, max_size=30))
def test_any_text_either_refused_or_harmless(payload):
    """Whatever a login/host/password holds, the renderer refuses it or it lands as one value on one line."""
    try:
        text = render_pjsip([], [Trunk("t1", "h.example", "u1", payload)], "d.example")
    except ValidationError:
        return
    sections = parse_sections(text)
    assert [s.name for s in sections] == ["t1", "t1-auth", "t1", "t1", "t1"]
    auth = sections[1]
    assert auth.get("password") == payload

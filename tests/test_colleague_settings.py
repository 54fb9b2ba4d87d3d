"""Calls between colleagues, the settings side: `vpbx sip add/set --extension --ring-timeout --no-answer --vm-email`,
`sip show` / `sip list`, the store's checks (an extension is unique, never another account's all-digit login or an
organisation ID) and lookup (`find_dialled`), the engine's `resolve` on a real store, and refused input that changes
nothing. The pure decision is tests/test_dialplan_colleagues.py; real calls are tests/test_colleague_calls.py.
"""
from __future__ import annotations

import wave
from pathlib import Path

import pytest
from test_cli_foundation import Vpbx, invoke, ok, one_json

from vpbx.engine.calls import resolve
from vpbx.engine.events import CallStart
from vpbx.services.flows import extension_map
from vpbx.storage.store import Store

KYIV = "+380441234567"
KYIV_IN = "+380441234568"
MOBILE = "+380671234567"


@pytest.fixture
def vp(tmp_path: Path) -> Vpbx:
    v = Vpbx(tmp_path)
    ok(invoke(["--config", v.cfg, "init", "--dir", tmp_path]))
    ok(v("trunk", "add", "carrier", "--server", "sip.example.net", "--login", "u", "--password", "trunkpass1",
         "--no-register"))
    ok(v("number", "add", KYIV, "--direction", "both", "--trunk", "carrier"))
    ok(v("number", "add", KYIV_IN, "--direction", "in"))
    for login in ("alice", "bob", "101"):
        ok(v("sip", "add", login, "--password", "secretpass1"))
    return v


def test_set_show_list(vp: Vpbx) -> None:
    shown = one_json(vp("sip", "set", "bob", "--extension", "201", "--ring-timeout", "20", "--no-answer", "voicemail",
                        "--vm-email", "bob@example.com", "--json"))
    assert "password" not in shown
    assert (shown["extension"], shown["ring_timeout"], shown["no_answer"], shown["vm_emails"]) == \
        ("201", 20, "voicemail", ["bob@example.com"])
    show = one_json(vp("sip", "show", "bob", "--json"))
    show.pop("outbound")
    assert show == shown
    table = ok(vp("sip", "show", "bob")).stdout
    assert all(text in table for text in ("extension", "201", "no_answer", "voicemail", "bob@example.com"))
    listed = {a["login"]: a for a in one_json(vp("sip", "list", "--json"))}
    assert listed["bob"]["extension"] == "201" and listed["alice"]["extension"] is None
    lines = ok(vp("sip", "list")).stdout.splitlines()
    assert any("extension" in line for line in lines) and any("201" in line and "bob" in line for line in lines)
    # defaults of an account that never set them
    alice = one_json(vp("sip", "show", "alice", "--json"))
    assert (alice["extension"], alice["ring_timeout"], alice["no_answer"], alice["vm_emails"]) == \
        (None, 20, "hangup", [])


def test_add_with_colleague_settings_and_forward_to_a_mobile(vp: Vpbx) -> None:
    carol = one_json(vp("sip", "add", "carol", "--caller-id", KYIV, "--extension", "202", "--ring-timeout", "10",
                        "--no-answer", f"tel:{MOBILE}", "--json"))
    assert (carol["extension"], carol["ring_timeout"], carol["no_answer"]) == ("202", 10, f"tel:{MOBILE}")
    # the forward's way out is checked on every change it depends on
    vp.fails("sip", "set", "carol", "--caller-id", "", needles=("SIP account carol", MOBILE, "no caller-ID number"))
    vp.fails("sip", "set", "carol", "--caller-id", KYIV_IN, needles=("SIP account carol", "direction 'in'"))
    ok(vp("sip", "set", "carol", "--codecs", "g722,alaw"))          # unrelated changes are not blocked by it
    ok(vp("sip", "set", "carol", "--no-answer", "hangup", "--caller-id", ""))


def test_extension_none_and_vm_email_none(vp: Vpbx) -> None:
    ok(vp("sip", "set", "bob", "--extension", "201", "--no-answer", "voicemail", "--vm-email", "a@example.com",
          "--vm-email", "b@example.com", "--vm-email", "a@example.com"))
    assert one_json(vp("sip", "show", "bob", "--json"))["vm_emails"] == ["a@example.com", "b@example.com"]
    vp.fails("sip", "set", "bob", "--vm-email", "none", needles=("SIP account bob", "--vm-email"))
    ok(vp("sip", "set", "bob", "--no-answer", "play:goodbye", "--vm-email", "none", "--extension", "none"))
    bob = one_json(vp("sip", "show", "bob", "--json"))
    assert (bob["extension"], bob["no_answer"], bob["vm_emails"]) == (None, "play:goodbye", [])
    ok(vp("sip", "set", "alice", "--extension", "201"))              # free again


@pytest.mark.parametrize("args,needles", [
    (("--extension", "2"), ("SIP account bob", "extension '2'", "2-6 digits")),
    (("--extension", "1234567"), ("extension '1234567'", "7 or more digits")),
    (("--extension", "20a"), ("extension '20a'",)),
    (("--extension", "٢٠١"), ("extension",)),
    (("--extension", "201\n"), ("extension",)),
    (("--extension", "101"), ("extension 101 is SIP account 101's login",)),
    (("--extension", "301"), ("extension 301 is SIP account alice's extension",)),
    (("--extension", "555"), ("extension 555 is account acme's organisation ID",)),
    (("--ring-timeout", "4"), ("SIP account bob", "ring timeout 4", "5..300")),
    (("--ring-timeout", "301"), ("ring timeout 301",)),
    (("--no-answer", "sip:alice"), ("SIP account bob", "--no-answer 'sip:alice'", "tel:+E164")),
    (("--no-answer", "group:sales"), ("--no-answer 'group:sales'",)),
    (("--no-answer", "uri:sip:a@example.com"), ("--no-answer",)),
    (("--no-answer", "hours:office?open=voicemail&closed=hangup"), ("--no-answer",)),
    (("--no-answer", "tel:+380"), ("--no-answer 'tel:+380'",)),
    (("--no-answer", "voicemail\n#include x"), ("--no-answer",)),
    (("--no-answer", "voicemail"), ("SIP account bob", "voicemail needs at least one --vm-email")),
    (("--no-answer", "play:nosuch"), ("SIP account bob", "prompt nosuch is not installed")),
    (("--no-answer", "voicemail", "--vm-email", "bob@"), ("SIP account bob", "e-mail address 'bob@'")),
    (("--no-answer", f"tel:{MOBILE}"), ("SIP account bob", MOBILE, "no caller-ID number")),
    (("--caller-id", KYIV_IN, "--no-answer", f"tel:{MOBILE}"), ("SIP account bob", "direction 'in'")),
])
def test_bad_input_is_refused_and_changes_nothing(vp: Vpbx, args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    ok(vp("sip", "set", "alice", "--extension", "301"))
    ok(vp("account", "add", "acme", "--email", "acme@example.com", "--org-id", "555"))
    vp.fails("sip", "set", "bob", *args, needles=needles)


def test_a_prompt_played_on_no_answer_cannot_be_removed(vp: Vpbx, tmp_path: Path) -> None:
    wav = tmp_path / "away.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\x00\x10" * 8000)
    ok(vp("prompt", "add", "away", wav))
    ok(vp("sip", "set", "bob", "--no-answer", "play:away"))
    vp.fails("prompt", "remove", "away", needles=("away", "SIP account bob"))
    ok(vp("sip", "set", "bob", "--no-answer", "hangup"))
    ok(vp("prompt", "remove", "away"))


def test_ring_timeout_not_a_number_is_a_usage_error(vp: Vpbx) -> None:
    vp.usage("sip", "set", "bob", "--ring-timeout", "long")


def test_a_forward_without_any_trunk_is_refused(tmp_path: Path) -> None:
    v = Vpbx(tmp_path)
    ok(invoke(["--config", v.cfg, "init", "--dir", tmp_path]))
    ok(v("number", "add", KYIV, "--direction", "both"))
    v.fails("sip", "add", "bob", "--caller-id", KYIV, "--no-answer", f"tel:{MOBILE}",
            needles=("SIP account bob", "no trunk"))
    assert one_json(v("sip", "list", "--json")) == []


def test_logins_org_ids_and_extensions_never_collide(vp: Vpbx) -> None:
    ok(vp("sip", "set", "bob", "--extension", "201"))
    vp.fails("sip", "add", "201", needles=("SIP account 201", "SIP account bob's extension"))
    vp.fails("account", "add", "acme", "--email", "a@example.com", "--org-id", "201",
             needles=("organisation ID 201", "SIP account bob's extension"))
    ok(vp("account", "add", "acme", "--email", "a@example.com", "--org-id", "202"))
    vp.fails("account", "set", "acme", "--org-id", "201", needles=("organisation ID 201",))
    vp.fails("sip", "add", "carol", "--extension", "202", needles=("extension 202", "organisation ID"))
    vp.fails("sip", "add", "carol", "--extension", "201", needles=("extension 201", "bob's extension"))
    ok(vp("sip", "set", "bob", "--extension", "201"))                # its own extension again: fine
    ok(vp("sip", "set", "101", "--extension", "101"))                # its own login as extension: harmless


def test_store_lookup_extension_map_and_resolve(vp: Vpbx) -> None:
    ok(vp("sip", "set", "bob", "--extension", "201", "--ring-timeout", "15", "--no-answer", "voicemail",
          "--vm-email", "bob@example.com"))
    with Store.open(vp.db) as store:
        assert store.sip_accounts.find_dialled("201").login == "bob"          # type: ignore[union-attr]
        assert store.sip_accounts.find_dialled("bob").login == "bob"          # type: ignore[union-attr]
        assert store.sip_accounts.find_dialled("101").login == "101"          # type: ignore[union-attr]
        assert store.sip_accounts.find_dialled("202") is None
        assert extension_map(store) == {"101": "sip:101", "201": "sip:bob"}

        def start(exten: str, login: str = "alice", direction: str = "outbound") -> CallStart:
            return CallStart(channel_id="c1", caller="alice", direction=direction, exten=exten, login=login,
                             answered=False)

        for exten in ("bob", "201"):
            resolved = resolve(store, start(exten), None)
            assert resolved.number is not None and resolved.number.number == "sip:bob", resolved
            assert resolved.flow is not None and resolved.flow.start == "sip:bob"
            assert resolved.outbound is None and resolved.refused is None and resolved.caller == "alice"
        for exten, login in (("carol", "alice"), ("299", "alice"), ("bob", "bob"), ("bob", "nobody")):
            resolved = resolve(store, start(exten, login), None)
            assert (resolved.number, resolved.flow, resolved.refused) == (None, None, None), resolved   # 404
        # an adopted call (vpbx.engine.recovery passes the record's number) goes on as a colleague call
        adopted = resolve(store, start("sip:bob", "", "inbound"), None)
        assert adopted.flow is not None and adopted.flow.number == "sip:bob"
        assert resolve(store, start("sip:gone", "", "inbound"), None).flow is None
        # numbers keep their way: 7+ digits or '+'
        internal = resolve(store, start(KYIV[1:]), None)
        assert internal.number is not None and internal.number.number == KYIV

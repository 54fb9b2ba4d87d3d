"""The use cases the CLI (and the engine, and a future API) share: vpbx.services.numbers, .routing, .sip_accounts,
.trunks, .groups, .ivrs, .calls, and the record rules of vpbx.domain.rules - called directly, without Click.

Every refused change raises a VpbxError naming the object and writes nothing (the database dump is unchanged).
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from clitools import dump
from vpbx.config import Config, new_config
from vpbx.domain import rules
from vpbx.domain.errors import ConflictError, NotFoundError, ValidationError
from vpbx.domain.records import Number, SipAccount, Trunk
from vpbx.services import calls, groups, ivrs, lifecycle, numbers, routing, sip_accounts, trunks
from vpbx.storage.store import Store

KYIV = "+380441234567"          # geographic
KYIV2 = "+380442718459"         # geographic
UA_TOLLFREE = "+380800123456"   # toll-free


@pytest.fixture
def world(tmp_path: Path):
    store = Store.open(tmp_path / "v.db")
    cfg: Config = replace(new_config(tmp_path), db=tmp_path / "v.db")
    try:
        yield store, cfg, tmp_path / "v.db"
    finally:
        store.close()


def refused(db: Path, exc: type[Exception], match: str, fn, *args, **kwargs) -> None:
    before = dump(db)
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)
    assert dump(db) == before, "a refused change wrote something"


# ---- domain rules ----------------------------------------------------------------------------------------------
def test_toll_free_is_inbound_only_everywhere() -> None:
    assert rules.inbound_only("tollfree") and not rules.inbound_only("geographic")
    assert rules.outbound_problem("tollfree", "both") == "is toll-free, which is inbound-only"
    assert rules.outbound_problem("geographic", "in") == "has direction 'in'; outbound needs out or both"
    assert rules.outbound_problem("mobile", "out") is None and rules.outbound_problem("geographic", "both") is None
    assert rules.check_direction(UA_TOLLFREE, "tollfree", "in") == "in"
    for direction in ("out", "both"):
        with pytest.raises(ValidationError, match=r"toll-free, which is inbound-only; use --direction in"):
            rules.check_direction(UA_TOLLFREE, "tollfree", direction)
    with pytest.raises(ValidationError, match="must be in, out or both"):
        rules.check_direction(KYIV, "geographic", "sideways")
    assert rules.takes_inbound("both") and not rules.takes_inbound("out")


@pytest.mark.parametrize("channels", [0, 3, -1, True, "4"])
def test_a_number_comes_with_at_least_four_channels(channels: object) -> None:
    with pytest.raises(ValidationError, match="channels must be at least 4"):
        rules.check_channels(KYIV, channels)  # type: ignore[arg-type]
    assert rules.check_channels(KYIV, rules.MIN_CHANNELS) == 4


def test_record_checks_refuse_what_reaches_a_config_file() -> None:
    rules.check_number(Number(KYIV))
    for bad in (Number(KYIV + "\n"), Number(KYIV, language="en\n"), Number(UA_TOLLFREE, type="tollfree",
                                                                             direction="both")):
        with pytest.raises(ValidationError):
            rules.check_number(bad)
    rules.check_sip_account(SipAccount("alice", "x" * 24, caller_id=KYIV))
    for account in (SipAccount("alice\n", "x" * 24), SipAccount("alice", "short"),
                    SipAccount("alice", "x" * 24, caller_id=KYIV + "\u2028"), SipAccount("alice", "x" * 24, channels=0),
                    SipAccount("alice", "x" * 24, channels=1001), SipAccount("alice", "x" * 24, domain="a b")):
        with pytest.raises(ValidationError):
            rules.check_sip_account(account)
    rules.check_trunk(Trunk("t1", "sip.example.net", "u1", "pass with spaces"))
    for trunk in (Trunk("t1", "sip.example.net", "u1", " padded"), Trunk("t1", "sip.example.net", "u1", ""),
                  Trunk("t1", "sip.example.net\n", "u1", "p"), Trunk("t1", "h.example", "u1", "p\x85x"),
                  Trunk("t1", "h.example", "u1", "p", port=0), Trunk("t1", "h.example", "u1", "p", transport="ws")):
        with pytest.raises(ValidationError):
            rules.check_trunk(trunk)


# ---- numbers ---------------------------------------------------------------------------------------------------
def test_build_takes_what_phonenumbers_says_and_the_defaults() -> None:
    n = numbers.build(KYIV)
    assert (n.type, n.country, n.channels, n.direction, n.category) == ("geographic", "UA", 4, "in", "gold")
    assert numbers.build(KYIV, city="Kyiv", operator="", comment="main", channels=8).city == "Kyiv"


@pytest.mark.parametrize("kwargs, match", [
    ({"direction": "out"}, "toll-free, which is inbound-only"),
    ({"type": "geographic", "direction": "both"}, "toll-free, which is inbound-only"),   # its real type still counts
    ({"channels": 3}, "channels must be at least 4"),
    ({"type": "fax"}, "type 'fax'"),
    ({"comment": "a;b"}, "comment contains ';'"),
    ({"city": "Kyiv\n"}, "city contains"),
    ({"trunk": "t 1"}, "trunk name"),
])
def test_build_refuses(kwargs: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        numbers.build(UA_TOLLFREE, **kwargs)


def test_build_refuses_numbers_that_are_not_e164() -> None:
    for text in (KYIV + "\n", "380441234567", "+38044123456７", ""):
        with pytest.raises(ValidationError, match="number"):
            numbers.build(text)


def test_import_is_all_or_nothing_and_strips_nothing(world) -> None:
    store, _cfg, db = world
    header = "number,channels,direction,trunk,comment,city,operator,type\n"
    added = numbers.import_csv(store, header + f"{KYIV},,,,,,,\n{KYIV2},6,both,,x,,,\n", "a.csv")
    assert [n.number for n in added.numbers] == [KYIV, KYIV2] and added.notices == 0
    assert store.numbers.get(KYIV2).channels == 6
    for row, match in ((f'"{UA_TOLLFREE}\n",,,,,,,', "b.csv line 3"), (f"{UA_TOLLFREE},4\u2028,,,,,,", "not a whole"),
                       (f"{UA_TOLLFREE}, 4,,,,,,", "not a whole"), (f"{UA_TOLLFREE},,out,,,,,", "inbound-only")):
        refused(db, ValidationError, match, numbers.import_csv, store, header + f"+380441777777,,,,,,,\n{row}\n",
                "b.csv")
    refused(db, ValidationError, "needs a header row", numbers.import_csv, store, "phone\n" + KYIV, "c.csv")
    refused(db, ConflictError, "already exists", numbers.import_csv, store, f"number\n+380441777777\n{KYIV}\n", "d")
    seen: list[tuple[str, int, int]] = []
    numbers.import_csv(store, "number\n+380441777777\n", "e.csv", progress=lambda *a: seen.append(a))
    assert seen == [("checking", 1, 1), ("importing", 1, 1)]


def test_update_is_checked_whole_before_it_is_written(world) -> None:
    store, _cfg, db = world
    numbers.add(store, numbers.build(KYIV))
    numbers.add(store, numbers.build(UA_TOLLFREE))
    refused(db, ValidationError, "toll-free", numbers.update, store, [KYIV, UA_TOLLFREE], direction="both")
    refused(db, ValidationError, "channels must be at least 4", numbers.update, store, [KYIV], channels=2)
    refused(db, ValidationError, "comment contains", numbers.update, store, [KYIV], comment="x\ny")
    refused(db, NotFoundError, "not found", numbers.update, store, [KYIV, "+380449999999"], comment="x")
    refused(db, ValidationError, "nothing to change", numbers.update, store, [KYIV])
    assert [n.direction for n in numbers.update(store, [KYIV], direction="both")] == ["both"]
    with pytest.raises(ValidationError, match="must be digits only"):
        numbers.search(store, contains="12a")


# ---- routing ---------------------------------------------------------------------------------------------------
def test_every_destination_string_is_parsed_before_anything_is_written(world) -> None:
    store, cfg, db = world
    numbers.add(store, numbers.build(KYIV))
    sip_accounts.add(store, cfg, "alice")
    for dest in ("sip:alice\n", "nosuch:x", "group:", "tel:12345", "uri:sip:x", "play:a b"):
        refused(db, ValidationError, re.escape(f"number {KYIV}: route"), routing.route, store, [KYIV], dest)
    refused(db, ValidationError, "there is no SIP account 'bob'", routing.route, store, [KYIV], "sip:bob")
    refused(db, ValidationError, "fallback", routing.route, store, [KYIV], "sip:alice", fallback="sip:alice")
    refused(db, ValidationError, "voicemail needs at least one --vm-email", routing.route, store, [KYIV],
            "sip:alice", fallback="voicemail")
    refused(db, ValidationError, "e-mail address", routing.route, store, [KYIV], "voicemail", vm_emails=["a@b.c\n"])
    refused(db, ValidationError, "forward target", routing.forward, store, [KYIV], ["group:sales"], "sequential", 20)
    refused(db, NotFoundError, "not found", routing.route, store, [KYIV, "+380449999999"], "sip:alice")
    assert routing.route(store, [KYIV], "sip:alice", greeting="")[0].route == "sip:alice"
    fwd = routing.forward(store, [KYIV], ["sip:alice", "tel:+380442718459"], "sequential", 15, fallback="hangup")
    assert (fwd[0].route, fwd[0].forward_to, fwd[0].forward_timeout) == (None, ("sip:alice", "tel:+380442718459"), 15)


def test_groups_and_ivrs_are_checked_as_if_a_number_routed_to_them(world) -> None:
    store, cfg, db = world
    sip_accounts.add(store, cfg, "alice")
    refused(db, ValidationError, "group sales: member", groups.add, store, "sales", ["ivr:main"])
    refused(db, ValidationError, "there is no SIP account 'bob'", groups.add, store, "sales", ["sip:bob"])
    groups.add(store, "sales", ["sip:alice", "tel:+380442718459"], strategy="sequential", timeout=10)
    refused(db, ValidationError, "there is no group 'support'", ivrs.add, store, "main", "hello", ["1=group:support"])
    refused(db, ValidationError, "option '12=sip:alice' must be KEY=DEST", ivrs.add, store, "main", "hello",
            ["12=sip:alice"])
    refused(db, ValidationError, "key 1 is given twice", ivrs.add, store, "main", "hello",
            ["1=sip:alice", "1=group:sales"])
    refused(db, ValidationError, "IVR main: option 2", ivrs.add, store, "main", "hello", ["2=sip:alice;x"])
    refused(db, ValidationError, "at least one --option", ivrs.add, store, "main", "hello", [])
    menu = ivrs.add(store, "main", "hello", ["1=sip:alice", "A=group:sales", "#=hangup", "*=ivr:main"])
    assert menu.options == (("1", "sip:alice"), ("A", "group:sales"), ("#", "hangup"), ("*", "ivr:main"))


# ---- SIP accounts and trunks -----------------------------------------------------------------------------------
def test_sip_accounts_get_a_generated_password_and_only_own_caller_ids(world) -> None:
    store, cfg, db = world
    numbers.add(store, numbers.build(KYIV))
    a = sip_accounts.add(store, cfg, "alice", caller_id=KYIV)
    assert len(a.password) == 24 and a.domain == cfg.domain
    assert sip_accounts.new_password(store, "alice").password not in (a.password, "")
    refused(db, ValidationError, "caller ID", sip_accounts.add, store, cfg, "bob", caller_id=KYIV + "\x85")
    refused(db, NotFoundError, "is not a number of this install", sip_accounts.add, store, cfg, "bob",
            caller_id="+380449999999")
    refused(db, ValidationError, "SIP account bob: channels", sip_accounts.add, store, cfg, "bob", channels=0)
    refused(db, ValidationError, "password", sip_accounts.add, store, cfg, "bob", password="semi;colon1")


@pytest.mark.parametrize("option,value,match", [
    ("allow_countries", "ZZ", "allowed country 'ZZ'"),
    ("allow_countries", "UA,,PL", "allowed country ''"),
    ("allow_countries", "UA,UA", "an allowed country is listed twice"),
    ("allow_countries", "all,UA", "allowed country 'ALL'"),
    ("allow_countries", "001", "allowed country '001'"),
    ("allow_countries", "U\u0410", "allowed country"),          # a Cyrillic A
    ("allow_prefixes", "4930", "allowed prefix '4930'"),
    ("allow_prefixes", "+0", "allowed prefix"),
    ("allow_prefixes", "+4930\n", "allowed prefix"),
    ("allow_prefixes", "+1234567890123456", "allowed prefix"),
    ("max_outbound_calls", "-1", "max outbound calls '-1'"),
    ("max_outbound_calls", "1001", "max outbound calls must be 0-1000"),
    ("max_outbound_calls", "\u0662", "not a whole number"),         # an Arabic-Indic two
    ("daily_minutes", "0", "daily minutes must be"),
    ("daily_minutes", "1e3", "not a whole number"),
])
def test_toll_fraud_guards_are_checked_before_anything_is_written(world, option: str, value: str, match: str) -> None:
    store, cfg, db = world
    numbers.add(store, numbers.build(KYIV))
    sip_accounts.add(store, cfg, "alice", caller_id=KYIV)
    refused(db, ValidationError, f"SIP account alice: .*{re.escape(match)}", sip_accounts.update, store, cfg, "alice",
            **{option: value})
    refused(db, ValidationError, "SIP account bob", sip_accounts.add, store, cfg, "bob", **{option: value})


def test_toll_fraud_guards_set_show_and_reset(world) -> None:
    store, cfg, _db = world
    numbers.add(store, numbers.build(KYIV))
    sip_accounts.add(store, cfg, "alice", caller_id=KYIV)
    shown = sip_accounts.show(store, "alice")["outbound"]
    assert (shown["allowed"], shown["max_calls"], shown["daily_minutes"]) == ("UA", 2, None)
    a = sip_accounts.update(store, cfg, "alice", allow_countries="ua,pl", max_outbound_calls="3", daily_minutes="300")
    assert (a.allow_countries, a.max_outbound_calls, a.daily_minutes) == (("UA", "PL"), 3, 300)
    assert store.sip_accounts.get("alice") == a
    a = sip_accounts.update(store, cfg, "alice", allow_prefixes="+881,+4930")
    assert sip_accounts.show(store, "alice")["outbound"]["allowed"] == "UA,PL,+881,+4930"
    a = sip_accounts.update(store, cfg, "alice", allow_countries="all", max_outbound_calls="none",
                            daily_minutes="none")
    assert (a.allow_countries, a.max_outbound_calls, a.daily_minutes) == (("*",), None, None)
    assert sip_accounts.show(store, "alice")["outbound"]["allowed"] == "all"
    a = sip_accounts.update(store, cfg, "alice", allow_countries="default", allow_prefixes="none")
    assert (a.allow_countries, a.allow_prefixes) == ((), ())
    assert "password" not in sip_accounts.show(store, "alice")


def test_todays_outbound_use_counts_calls_minutes_and_refusals(world) -> None:
    from datetime import timedelta

    from vpbx.domain.timestamps import local_day_start, to_iso, utc_now

    store, cfg, _db = world
    numbers.add(store, numbers.build(KYIV))
    sip_accounts.add(store, cfg, "alice", caller_id=KYIV)
    today = local_day_start(utc_now())
    yesterday = to_iso(utc_now() - timedelta(days=2))
    store.calls.add("c1", KYIV, KYIV, "outbound", started_at=today, sip_account="alice")
    store.calls.finish("c1", ended_at=today, billsec=90)
    store.calls.add("c2", KYIV, KYIV, "outbound", started_at=yesterday, sip_account="alice")   # another day
    store.calls.finish("c2", ended_at=yesterday, billsec=600)
    store.calls.add("c3", KYIV, KYIV, "outbound", sip_account="alice")                          # in progress
    store.calls.add("c4", KYIV, "bob", "inbound")                                                # not alice's
    store.calls.add_refusal("alice", "+4930123456", "destination", "not allowed")
    store.calls.add_refusal("alice", "+380671234567", "concurrent", "too many")
    store.calls.add_refusal("alice", "+380671234567", "concurrent", "too many")
    assert store.calls.outbound_seconds("alice", today) == 90
    out = sip_accounts.show(store, "alice")["outbound"]
    assert (out["today_calls"], out["today_minutes"], out["in_progress"]) == (2, 1.5, 1)
    assert out["refused_today"] == {"refused_concurrent": 2, "refused_destination": 1}


def test_trunks_are_checked_by_the_renderers_rule(world) -> None:
    store, _cfg, db = world
    trunks.add(store, "t1", server="sip.example.net", login="u1", password="pass with spaces", transport="tls")
    refused(db, ValidationError, "start/end with spaces", trunks.add, store, "t2", server="h.example", login="u",
            password="secret ")
    refused(db, ValidationError, "server 'h example'", trunks.add, store, "t2", server="h example", login="u",
            password="p")


# ---- calls and lifecycle names ---------------------------------------------------------------------------------
def test_calls_simulate_and_list(world) -> None:
    store, cfg, _db = world
    numbers.add(store, numbers.build(KYIV))
    sip_accounts.add(store, cfg, "alice")
    routing.route(store, [KYIV], "sip:alice")
    lines = calls.simulate(store, KYIV, busy=["sip:alice"])
    assert lines and any("alice" in line for line in lines)
    with pytest.raises(ValidationError, match="DTMF"):
        calls.simulate(store, KYIV, dtmf="1\n")
    with pytest.raises(ValidationError, match="is not a date"):
        calls.recent(store, since="yesterday")
    assert calls.recent(store, since="2026-01-01") == [] and calls.stats(store) == []


def test_the_balance_rule_says_what_it_does() -> None:
    assert hasattr(lifecycle, "suspend_or_reactivate") and not hasattr(lifecycle, "settle")

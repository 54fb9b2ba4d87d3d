"""The caller blocklist on live calls: real Asterisk, `vpbx serve`, sipp as the carrier's caller and as the phone.

A blocked caller is refused before answer with 403 and nobody is rung; a prefix rule catches every caller starting
with it; a rule of one number leaves another number's calls alone; a rule with a prompt answers, plays it and hangs
up. Each refusal is counted on its rule (`vpbx block list`) and leaves a call record with disposition "blocked".
The rules of a test are removed at its end (the sandbox's database is shared by the session).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Engine
from test_engine_asterisk import CALLER, _login, _unique_number, calls_for, invites, phone, wait_no_channels

pytestmark = [pytest.mark.asterisk, pytest.mark.timeout(180)]


def _played(eng: Engine, call_id: str) -> list[str]:
    return [e["media"] for e in eng.playbacks(call_id) if e["ari_event"] == "PlaybackFinished"]


@pytest.fixture
def rules(asterisk) -> Iterator[list[int]]:
    """`vpbx block add ...` for this test; every rule it added is removed afterwards."""
    added: list[int] = []
    yield added
    if added:
        asterisk.vpbx("block", "remove", *map(str, added), check=False)


def _block(asterisk, rules: list[int], *args: str) -> int:
    rule_id = int(json.loads(asterisk.vpbx("block", "add", *args, "--json").stdout)["id"])
    rules.append(rule_id)
    return rule_id


def _counts(asterisk, want: dict[int, int], timeout: float = 10) -> dict[int, dict[str, Any]]:
    """The rules `want` names once each has refused that many calls (the engine counts through its writer)."""
    deadline = time.monotonic() + timeout
    while True:
        got = {r["id"]: r for r in json.loads(asterisk.vpbx("block", "list", "--json").stdout) if r["id"] in want}
        if {i: r["blocked_calls"] for i, r in got.items()} == want or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def _refused(sipp, number: str, caller: str) -> Any:
    res = sipp.uac(number, from_user=caller, hold_ms=0, timeout_s=20).wait(30)
    assert res.final_response("INVITE") == 403, res.describe()
    assert 200 not in res.statuses("INVITE") and not res.saw(180), res.describe()
    return res


def test_blocked_callers_get_403_and_nobody_is_rung(asterisk, sipp, engine, rules):
    blocked, other = _unique_number(), _unique_number()
    login = _login("blk")
    ph = phone(asterisk, sipp, login, hold_ms=60000)
    for number in (blocked, other):
        asterisk.vpbx("number", "add", number)
        asterisk.vpbx("number", "route", number, f"sip:{login}")
    prefix = f"+99{os.getpid() % 1000:03d}7"                 # a prefix no other test calls from
    exact = _block(asterisk, rules, CALLER, "--number", blocked, "--comment", "test: this number only")
    by_prefix = _block(asterisk, rules, prefix, "--prefix")
    anonymous = _block(asterisk, rules, "anonymous", "--number", blocked)
    asterisk.vpbx("reload")
    engine.start()

    _refused(sipp, blocked, CALLER)                           # the number's own rule: exact caller
    _refused(sipp, other, f"{prefix}1234567")                 # install-wide prefix: any number of the install
    _refused(sipp, blocked, "anonymous")                      # a withheld caller
    assert invites(ph) == [], "a blocked caller's call rang the phone"

    # the same caller calling another number is not blocked there: the phone rings and answers
    res = sipp.uac(other, from_user=CALLER, hold_ms=1000, timeout_s=30).wait(40)
    assert res.ok and res.final_response("INVITE") == 200, res.describe()
    assert len(invites(ph)) == 1

    counted = _counts(asterisk, {exact: 1, by_prefix: 1, anonymous: 1})
    assert {i: r["blocked_calls"] for i, r in counted.items()} == {exact: 1, by_prefix: 1, anonymous: 1}, counted
    assert all(r["last_blocked_at"] for r in counted.values()), counted
    records = calls_for(asterisk, blocked)
    assert sorted(r["disposition"] for r in records) == ["blocked", "blocked"], records
    assert all(r["ended_at"] and not r["answered_at"] and r["billsec"] == 0 for r in records), records
    assert CALLER in [r["caller"] for r in records]
    to_other = calls_for(asterisk, other)
    assert sorted(r["disposition"] for r in to_other if r["ended_at"]) == ["answered", "blocked"], to_other
    engine.wait_log(lambda e: f"blocked by rule {exact}" in e.get("message", ""), timeout=5)
    wait_no_channels(asterisk)
    ph.stop()


def test_a_rule_with_a_prompt_plays_it_then_hangs_up(asterisk, sipp, engine, rules):
    number = _unique_number()
    login = _login("blkp")
    ph = phone(asterisk, sipp, login, hold_ms=60000)
    asterisk.vpbx("number", "add", number)
    asterisk.vpbx("number", "route", number, f"sip:{login}", "--greeting", "welcome")
    rule = _block(asterisk, rules, CALLER, "--number", number, "--prompt", "short")
    asterisk.vpbx("reload")
    engine.start()

    res = sipp.uac(number, from_user=CALLER, scenario="uac_remote_bye.xml", hold_ms=1000, timeout_s=30).wait(40)
    assert res.ok, res.describe()
    assert res.final_response("INVITE") == 200 and res.saw("BYE", "received"), res.describe()
    assert invites(ph) == [], "a blocked caller's call rang the phone"
    deadline = time.monotonic() + 15
    while not ((rows := calls_for(asterisk, number)) and rows[0].get("ended_at")) and time.monotonic() < deadline:
        time.sleep(0.2)
    record = rows[0]
    assert record["disposition"] == "blocked" and record["answered_at"] and record["node"] == "blocked", record
    assert _played(engine, record["call_id"]) == ["sound:vpbx/short"], engine.playbacks()   # not the greeting
    assert _counts(asterisk, {rule: 1})[rule]["blocked_calls"] == 1
    wait_no_channels(asterisk)
    ph.stop()
